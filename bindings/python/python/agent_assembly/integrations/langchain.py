"""LangChain: govern ``@tool`` functions and existing ``BaseTool`` objects.

``@tool`` over ``@govern`` works as is (the signature and docstring are preserved)::

    @tool
    @agent_assembly.govern
    def search(query: str) -> str: ...

For a tool object you did not write, ``govern_tool(tool)`` returns a tool with the same name,
description and schema whose every invocation is decided first.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from .._govern import _DEFAULT_RULES, _start

__all__ = ["GovernedTool", "govern_tool"]


def _tool_args(tool_input: Any) -> dict[str, Any]:
    if isinstance(tool_input, dict):
        if tool_input.get("type") == "tool_call":
            return dict(tool_input.get("args") or {})
        return dict(tool_input)
    return {"input": tool_input}


class GovernedTool(BaseTool):
    """A tool whose invocations are decided by Agent Assembly before they run."""

    inner: BaseTool

    def __init__(self, inner: BaseTool, **kwargs: Any) -> None:
        super().__init__(
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            inner=inner,
            **kwargs,
        )

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        call = _start(self.name, _tool_args(input), _DEFAULT_RULES)
        try:
            result = self.inner.invoke(input, config, **kwargs)
        except BaseException as e:
            call.error(e)
            raise
        call.ok(result)
        return result

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        call = _start(self.name, _tool_args(input), _DEFAULT_RULES)
        try:
            result = await self.inner.ainvoke(input, config, **kwargs)
        except BaseException as e:
            call.error(e)
            raise
        call.ok(result)
        return result

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - invoke is the entry
        raise NotImplementedError("GovernedTool runs through invoke()")


def govern_tool(tool: BaseTool) -> GovernedTool:
    """Wrap an existing LangChain tool so every call is decided first."""
    return GovernedTool(tool)


