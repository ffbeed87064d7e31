"""Agent Assembly: every action of your agent decided by policy before it runs, counted
against budgets, and written to a hash-chained audit log.

    import agent_assembly as aa
    aa.init(gateway_url=..., agent_id=..., token=...)   # or AA_* env vars, or policy=DIR

    @aa.govern
    def run_shell(cmd: str) -> str: ...
"""

from __future__ import annotations

from typing import TypedDict, cast

from ._errors import (
    AgentAssemblyError,
    ConfigError,
    GatewayUnavailable,
    InvalidAction,
    PolicyDenied,
)
from ._govern import decide, govern, governed, report
from ._native import Decision, __version__
from ._runtime import get as governor
from ._runtime import init, shutdown
from .usage import extract_usage, model_call


def flush(timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds) until every audit event is delivered; raises
    ``GatewayUnavailable`` if not (the events stay spilled on disk and are replayed)."""
    governor().flush(timeout)


class Stats(TypedDict):
    """The counters of :func:`stats`."""

    #: Events waiting in memory.
    queued: int
    #: Events spilled to disk, not yet delivered.
    spilled: int
    #: Events the gateway acknowledged.
    shipped: int
    #: Events the gateway refused for good.
    rejected: int
    #: The last delivery error.
    last_error: str | None
    #: The policy version decisions are made against (local, embedded).
    policy_version: str | None


def stats() -> Stats:
    """Queued, spilled, shipped and rejected event counts, last error, policy version."""
    return cast(Stats, governor().stats())


__all__ = [
    "AgentAssemblyError",
    "ConfigError",
    "Decision",
    "GatewayUnavailable",
    "InvalidAction",
    "PolicyDenied",
    "Stats",
    "__version__",
    "decide",
    "extract_usage",
    "flush",
    "govern",
    "governed",
    "governor",
    "init",
    "model_call",
    "report",
    "shutdown",
    "stats",
]
