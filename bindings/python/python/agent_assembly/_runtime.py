"""The process-wide governor: ``init()``, env-var configuration, fork safety, exit flush."""

from __future__ import annotations

import atexit
import os
import threading

from ._errors import ConfigError, GatewayUnavailable
from ._native import Governor, reseed_after_fork

_lock = threading.Lock()
_governor: Governor | None = None
# Governors inherited across a fork: their threads did not survive, so they are never used or
# closed again (closing could write into the parent's audit file).
_orphans: list[Governor] = []

EXIT_FLUSH_TIMEOUT = 5.0


def init(
    *,
    gateway_url: str | None = None,
    agent_id: str | None = None,
    token: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    mode: str | None = None,
    team: str | None = None,
    session_id: str | None = None,
    fail_open: bool | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
    audit_file: str | os.PathLike[str] | None = None,
    ca_cert: str | os.PathLike[str] | None = None,
    queue_capacity: int | None = None,
) -> Governor:
    """Configure Agent Assembly for this process.

    Anything not given is read from ``AA_GATEWAY_URL``, ``AA_AGENT_ID``, ``AA_TOKEN``,
    ``AA_POLICY``, ``AA_MODE``, ``AA_TEAM``, ``AA_SESSION_ID``, ``AA_FAIL_OPEN``,
    ``AA_SPILL_DIR``, ``AA_AUDIT_FILE`` and ``AA_CA_CERT``. Modes: ``local`` (default with a
    gateway), ``remote`` and ``embedded`` (default with only a policy directory). Raises
    ``ConfigError`` with what is missing or wrong.
    """
    global _governor
    with _lock:
        if _governor is not None:
            _close_quietly(_governor)
        _governor = Governor(
            gateway_url=gateway_url,
            agent_id=agent_id,
            token=token,
            policy=policy,
            mode=mode,
            team=team,
            session_id=session_id,
            fail_open=fail_open,
            spill_dir=spill_dir,
            audit_file=audit_file,
            ca_cert=ca_cert,
            queue_capacity=queue_capacity,
        )
        return _governor


def get() -> Governor:
    """The process governor; initialised from the environment on first use."""
    global _governor
    g = _governor
    if g is not None:
        return g
    with _lock:
        if _governor is None:
            try:
                _governor = Governor()
            except ConfigError as e:
                raise ConfigError(
                    f"{e} (call agent_assembly.init(...) or set the AA_* environment variables)"
                ) from None
        return _governor


def shutdown(timeout: float = EXIT_FLUSH_TIMEOUT) -> bool:
    """Flush audit events (up to ``timeout`` seconds) and stop the background threads.

    Returns True when everything was delivered; False when some events are still spilled on
    disk (the next process with the same agent id and spill directory replays them)."""
    global _governor
    with _lock:
        g, _governor = _governor, None
    if g is None:
        return True
    try:
        g.close(timeout)
    except GatewayUnavailable:
        return False
    return True


def _close_quietly(g: Governor) -> None:
    try:
        g.close(EXIT_FLUSH_TIMEOUT)
    except Exception:
        pass  # undelivered events stay spilled and are replayed by the next process


def _after_fork_in_child() -> None:
    global _governor, _lock
    reseed_after_fork()
    _lock = threading.Lock()
    if _governor is None:
        return
    old = _governor
    _orphans.append(old)
    _governor = None
    try:
        # Configured like the parent's; in embedded mode with its own audit file (the core
        # names it), one writer per hash chain.
        _governor = old.after_fork()
    except Exception:
        _governor = None  # re-created lazily by get() from the environment


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    g = _governor
    if g is not None:
        _close_quietly(g)
