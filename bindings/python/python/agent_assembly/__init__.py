"""Agent Assembly: every action of your agent decided by policy before it runs, counted
against budgets, and written to a hash-chained audit log.

    import agent_assembly as aa
    aa.init(gateway_url=..., agent_id=..., token=...)   # or AA_* env vars, or policy=DIR

    @aa.govern
    def run_shell(cmd: str) -> str: ...
"""

from __future__ import annotations

from ._errors import (
    AgentAssemblyError,
    ConfigError,
    GatewayUnavailable,
    InvalidAction,
    PolicyDenied,
)
from ._govern import decide, govern, governed, report
from ._native import PyDecision as Decision
from ._native import __version__
from ._runtime import get as governor
from ._runtime import init, shutdown
from .usage import extract_usage, model_call


def flush(timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds) until every audit event is delivered; raises
    ``GatewayUnavailable`` if not (the events stay spilled on disk and are replayed)."""
    governor().flush(timeout)


def stats() -> dict[str, object]:
    """Queued, spilled, shipped and rejected event counts, last error, policy version."""
    return dict(governor().stats())


__all__ = [
    "AgentAssemblyError",
    "ConfigError",
    "Decision",
    "GatewayUnavailable",
    "InvalidAction",
    "PolicyDenied",
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
