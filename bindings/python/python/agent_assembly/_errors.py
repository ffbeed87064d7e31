"""The exception hierarchy: catch ``AgentAssemblyError`` for everything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._native import AgentAssemblyError, ConfigError, GatewayUnavailable, InvalidAction

if TYPE_CHECKING:
    from ._native import PyDecision

__all__ = [
    "AgentAssemblyError",
    "ConfigError",
    "GatewayUnavailable",
    "InvalidAction",
    "PolicyDenied",
]


class PolicyDenied(AgentAssemblyError):
    """An action was denied before it ran.

    ``reason`` is the stable code (``forbidden``, ``no_permit``, ``budget_exceeded``,
    ``suspended``, ``unavailable``, ...), ``policy_ids`` the determining policies,
    ``decision_id`` the audit reference, ``budget`` the budget that denied, if any.
    """

    def __init__(self, decision: PyDecision, action: str | None = None) -> None:
        self.decision = decision
        self.reason: str = decision.reason
        self.message: str = decision.message
        self.policy_ids: list[str] = decision.policy_ids
        self.decision_id: str = decision.decision_id
        self.budget: str | None = decision.budget
        self.action = action
        super().__init__(f"{decision.reason}: {decision.message}")
