"""OpenAI Agents SDK: govern function tools.

``@function_tool`` over ``@govern`` works as is::

    @function_tool
    @agent_assembly.govern
    def get_weather(city: str) -> str: ...

The SDK turns a tool's exception into a generic "An error occurred ... Please try again." for
the model. Pass ``failure_error_function=denial_message`` (or use ``governed_function_tool``) so
the model is told the action was denied, why, and not to retry it.

``govern_function_tool(tool)`` wraps an existing ``FunctionTool``: every invocation is decided
first; a deny raises ``PolicyDenied`` before the tool's function runs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agents import FunctionTool, function_tool

from .._errors import PolicyDenied
from .._govern import _DEFAULT_RULES, _start, govern

__all__ = ["denial_message", "govern_function_tool", "governed_function_tool"]


def denial_message(ctx: Any, error: Exception) -> str:
    """A tool-failure message for the model: the policy's reason for a deny, generic otherwise."""
    if isinstance(error, PolicyDenied):
        return (
            f"Agent Assembly denied this action ({error.reason}): {error.message}. "
            "It was not run. Do not retry it; choose another way or report back."
        )
    return "An error occurred while running the tool. Please try again."


def governed_function_tool(fn: Any = None, **kwargs: Any) -> Any:
    """``function_tool(govern(fn))`` with ``denial_message`` as the failure message.
    Keyword arguments go to ``function_tool``."""
    kwargs.setdefault("failure_error_function", denial_message)

    def make(f: Any) -> FunctionTool:
        return function_tool(govern(f), **kwargs)

    return make(fn) if fn is not None else make


def govern_function_tool(tool: FunctionTool) -> FunctionTool:
    """A copy of ``tool`` whose invocations are decided by Agent Assembly first."""
    inner = tool.on_invoke_tool

    async def on_invoke_tool(ctx: Any, input_json: str) -> Any:
        try:
            args = json.loads(input_json) if input_json else {}
        except ValueError:
            args = {"input": input_json}
        call = _start(tool.name, args if isinstance(args, dict) else {"input": args}, _DEFAULT_RULES)
        try:
            result = await inner(ctx, input_json)
        except BaseException as e:
            call.error(e)
            raise
        call.ok(result)
        return result

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)
