"""LangChain tools governed by Agent Assembly.

Run (embedded mode, no gateway, no network):
    AA_POLICY=examples/policies/permissive AA_AGENT_ID=lc-agent python examples/python/langchain_tools.py
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, tool

import agent_assembly as aa
from agent_assembly.integrations.langchain import govern_tool


@tool
@aa.govern
def shell(cmd: str) -> str:
    """Run a shell command and return its output."""
    return f"(would run) {cmd}"


class Fetch(BaseTool):
    """A tool you did not write: wrap the instance."""

    name: str = "fetch"
    description: str = "Fetch a URL"

    def _run(self, url: str) -> str:
        return f"(would fetch) {url}"


def main() -> None:
    fetch = govern_tool(Fetch())
    # What an agent executor would do with the model's tool calls:
    for t, args in [
        (shell, {"cmd": "ls -l"}),
        (shell, {"cmd": "rm -rf /var/log"}),
        (fetch, {"url": "https://docs.python.org/3/"}),
    ]:
        try:
            print("ALLOW", t.name, t.invoke(args))
        except aa.PolicyDenied as e:
            print("DENY ", t.name, e.reason, e.policy_ids, "-", e.message)
    aa.shutdown()


if __name__ == "__main__":
    main()
