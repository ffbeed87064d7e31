"""The exception hierarchy: catch ``AgentAssemblyError`` for everything.

The classes are defined here and raised by the Rust extension too, so every one of them is
``agent_assembly.<Name>``, in tracebacks and for pickle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._native import Decision

__all__ = [
    "AgentAssemblyError",
    "ConfigError",
    "GatewayUnavailable",
    "InvalidAction",
    "PolicyDenied",
]


class AgentAssemblyError(Exception):
    """Base class of every Agent Assembly error."""

    __module__ = "agent_assembly"


class ConfigError(AgentAssemblyError):
    """The configuration is incomplete or invalid."""

    __module__ = "agent_assembly"


class GatewayUnavailable(AgentAssemblyError):
    """The gateway could not be reached in time."""

    __module__ = "agent_assembly"


class InvalidAction(AgentAssemblyError):
    """An action or outcome is malformed."""

    __module__ = "agent_assembly"


class PolicyDenied(AgentAssemblyError):
    """An action was denied before it ran.

    ``reason`` is the stable code (``forbidden``, ``no_permit``, ``budget_exceeded``,
    ``suspended``, ``unavailable``, ...), ``policy_ids`` the determining policies,
    ``decision_id`` the audit reference, ``budget`` the budget that denied, if any.
    """

    __module__ = "agent_assembly"

    def __init__(self, decision: Decision, action: str | None = None) -> None:
        self.decision = decision
        self.reason: str = decision.reason
        self.message: str = decision.message
        self.policy_ids: list[str] = decision.policy_ids
        self.decision_id: str = decision.decision_id
        self.budget: str | None = decision.budget
        self.action = action
        super().__init__(f"{decision.reason}: {decision.message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the decision (which pickles as its JSON), not from the message.
        return (type(self), (self.decision, self.action), self.__dict__)
