"""Model calls: decide a ``model_call`` before it is sent, and charge its token usage (and
cost, priced from the model price table) after, from an OpenAI or Anthropic response."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._errors import PolicyDenied
from ._govern import decide, report

__all__ = ["ModelCall", "extract_usage", "model_call"]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def extract_usage(response: Any) -> dict[str, int] | None:
    """Token usage from an OpenAI Chat Completions or Responses object, an Anthropic Message,
    or the same shapes as dicts. ``None`` when the response carries no usage."""
    usage = _get(response, "usage")
    if usage is None:
        return None
    # Responses API and Anthropic: input_tokens / output_tokens. Chat Completions:
    # prompt_tokens / completion_tokens.
    inp = _get(usage, "input_tokens")
    out = _get(usage, "output_tokens")
    if inp is None and out is None:
        inp = _get(usage, "prompt_tokens")
        out = _get(usage, "completion_tokens")
    if inp is None and out is None:
        return None
    # Anthropic reports cached prompt tokens separately; they are still input tokens.
    for extra in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        inp = (inp or 0) + (_get(usage, extra) or 0)
    return {"input_tokens": int(inp or 0), "output_tokens": int(out or 0)}


class ModelCall:
    """Handle of a governed model call; ``record(response)`` attaches its usage."""

    def __init__(self, decision: Any) -> None:
        self.decision = decision
        self.usage: dict[str, Any] | None = None

    def record(self, response: Any, cost_usd: float | None = None) -> None:
        usage: dict[str, Any] | None = extract_usage(response)
        if usage is not None and cost_usd is not None:
            usage["cost_usd"] = cost_usd
        self.usage = usage


@contextlib.contextmanager
def model_call(
    provider: str,
    model: str,
    *,
    tools: Sequence[str] = (),
    input_tokens: int | None = None,
) -> Iterator[ModelCall]:
    """Govern one LLM call::

        with agent_assembly.model_call("openai", "gpt-4o-mini") as call:
            resp = client.chat.completions.create(model="gpt-4o-mini", messages=...)
            call.record(resp)

    Raises ``PolicyDenied`` before the block runs when the policy or a budget says no; the
    usage recorded is charged to the budgets (cost priced from the model price table).
    """
    action: dict[str, Any] = {"kind": "model_call", "provider": provider, "model": model}
    if tools:
        action["tools"] = list(tools)
    if input_tokens is not None:
        action["input_tokens"] = input_tokens
    decision = decide(action)
    if not decision.allowed:
        raise PolicyDenied(decision, action=f"{provider}/{model}")
    handle = ModelCall(decision)
    started = time.perf_counter()
    try:
        yield handle
    except BaseException as e:
        report(action, decision, ok=False, duration_s=time.perf_counter() - started,
               error=type(e).__name__, usage=handle.usage)
        raise
    report(action, decision, ok=True, duration_s=time.perf_counter() - started, usage=handle.usage)
