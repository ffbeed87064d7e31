"""The real framework packages (langchain-core, openai-agents), no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import agent_assembly as aa
from conftest import PERMISSIVE


@pytest.fixture(autouse=True)
def embedded(tmp_path: Path) -> Path:
    audit = tmp_path / "audit.jsonl"
    aa.init(policy=PERMISSIVE, agent_id="framework-agent", audit_file=audit)
    return audit


def test_langchain_tool_decorator_over_govern() -> None:
    from langchain_core.tools import tool

    ran: list[str] = []

    @tool
    @aa.govern
    def shell(cmd: str) -> str:
        """Run a shell command."""
        ran.append(cmd)
        return "done"

    assert shell.name == "shell"
    assert "cmd" in shell.args
    assert shell.invoke({"cmd": "ls -l"}) == "done"
    with pytest.raises(aa.PolicyDenied) as exc:
        shell.invoke({"cmd": "rm -rf /home"})
    assert exc.value.policy_ids == ["no-rm-rf-via-shell"]
    assert ran == ["ls -l"]


async def test_langchain_async_tool_and_tool_call_input() -> None:
    from langchain_core.tools import tool

    @tool
    @aa.govern
    async def fetch(url: str) -> str:
        """Fetch a URL."""
        return url

    msg = await fetch.ainvoke({"type": "tool_call", "id": "call-1", "name": "fetch", "args": {"url": "https://x.org"}})
    assert msg.content == "https://x.org" and msg.tool_call_id == "call-1"


def test_langchain_existing_base_tool_is_governed() -> None:
    from langchain_core.tools import BaseTool

    calls: list[str] = []

    class Shell(BaseTool):
        name: str = "shell"
        description: str = "Run a shell command"

        def _run(self, cmd: str) -> str:
            calls.append(cmd)
            return "ok"

    from agent_assembly.integrations.langchain import govern_tool

    governed = govern_tool(Shell())
    assert governed.name == "shell" and governed.description == "Run a shell command"
    assert governed.invoke({"cmd": "echo hi"}) == "ok"
    with pytest.raises(aa.PolicyDenied):
        governed.invoke({"cmd": "rm -rf ./build"})
    assert calls == ["echo hi"]


def _ctx(tool: Any, args: str) -> Any:
    from agents.tool_context import ToolContext

    return ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=args)


async def test_openai_agents_function_tool_over_govern() -> None:
    from agents import function_tool

    ran: list[str] = []

    @function_tool
    @aa.govern
    def run_shell(cmd: str) -> str:
        """Run a shell command."""
        ran.append(cmd)
        return "done"

    assert run_shell.name == "run_shell"
    assert run_shell.params_json_schema["properties"]["cmd"]["type"] == "string"
    assert await run_shell.on_invoke_tool(_ctx(run_shell, '{"cmd": "ls"}'), '{"cmd": "ls"}') == "done"
    # A deny reaches the model as the SDK's generic tool error; the function never runs.
    out = await run_shell.on_invoke_tool(_ctx(run_shell, '{"cmd": "rm -rf /"}'), '{"cmd": "rm -rf /"}')
    assert "error occurred" in str(out)
    assert ran == ["ls"]

    # With denial_message the model learns why, and not to retry.
    from agent_assembly.integrations.openai_agents import governed_function_tool

    @governed_function_tool
    def run_shell2(cmd: str) -> str:
        """Run a shell command."""
        ran.append(cmd)
        return "done"

    out = await run_shell2.on_invoke_tool(_ctx(run_shell2, '{"cmd": "rm -rf /"}'), '{"cmd": "rm -rf /"}')
    assert "denied this action (forbidden)" in out and "Do not retry" in out
    assert ran == ["ls"]


async def test_openai_agents_existing_function_tool_is_governed() -> None:
    from agents import function_tool

    from agent_assembly.integrations.openai_agents import govern_function_tool

    ran: list[str] = []

    @function_tool(failure_error_function=None)
    def run_shell(cmd: str) -> str:
        """Run a shell command."""
        ran.append(cmd)
        return "done"

    governed = govern_function_tool(run_shell)
    assert await governed.on_invoke_tool(_ctx(governed, '{"cmd": "pwd"}'), '{"cmd": "pwd"}') == "done"
    with pytest.raises(aa.PolicyDenied):
        await governed.on_invoke_tool(_ctx(governed, '{"cmd": "rm -rf /"}'), '{"cmd": "rm -rf /"}')
    assert ran == ["pwd"]


async def test_openai_agents_runner_loop_with_a_scripted_model(embedded: Path) -> None:
    """A whole agent run (Runner, tool routing) with a scripted local model: the model asks for a
    forbidden tool call, Agent Assembly denies it before the tool runs, the model sees the error."""
    from agents import Agent, ModelResponse, Runner, Usage, set_tracing_disabled
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    set_tracing_disabled(True)
    ran: list[str] = []

    from agent_assembly.integrations.openai_agents import governed_function_tool

    @governed_function_tool
    def run_shell(cmd: str) -> str:
        """Run a shell command."""
        ran.append(cmd)
        return "done"

    seen: list[Any] = []

    class Scripted(Model):
        def __init__(self) -> None:
            self.turn = 0

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            self.turn += 1
            seen.append(kwargs.get("input", args[1] if len(args) > 1 else None))
            if self.turn == 1:
                call = ResponseFunctionToolCall(id="fc1", call_id="call-1", name="run_shell",
                                                arguments=json.dumps({"cmd": "rm -rf /"}),
                                                type="function_call", status="completed")
                return ModelResponse(output=[call], usage=Usage(), response_id=None)
            text = ResponseOutputText(type="output_text", text="I was not allowed.", annotations=[])
            msg = ResponseOutputMessage(id="m1", type="message", role="assistant", status="completed", content=[text])
            return ModelResponse(output=[msg], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    agent = Agent(name="ops", instructions="Do ops.", tools=[run_shell], model=Scripted())
    result = await Runner.run(agent, "clean up the disk")
    assert result.final_output == "I was not allowed."
    assert ran == []
    text = json.dumps([str(i) for i in seen[-1]]) if seen[-1] else ""
    assert "forbidden" in text
    aa.governor().flush()
    recs = [json.loads(line) for line in embedded.read_text().splitlines() if line.startswith('{"action"')]
    assert [(r["action"]["tool"], r["decision"]["effect"]) for r in recs] == [("run_shell", "deny")]


@pytest.mark.parametrize("script", ["langchain_tools.py", "openai_agents_run.py"])
def test_examples_run(script: str, tmp_path: Path) -> None:
    from conftest import ROOT, python

    out = python((ROOT / "examples" / "python" / script).read_text().replace('if __name__ == "__main__":', "if True:"),
                 {"AA_POLICY": str(PERMISSIVE), "AA_AGENT_ID": "example-agent",
                  "AA_AUDIT_FILE": str(tmp_path / "example.jsonl")})
    assert out.returncode == 0, out.stderr
    assert "DENY" in out.stdout or "refused" in out.stdout, out.stdout
    if script == "langchain_tools.py":
        assert "DENY  shell forbidden ['no-rm-rf-via-shell']" in out.stdout
        assert "ALLOW fetch" in out.stdout
    else:
        assert "forbidden" in out.stdout and "(would run) df -h" in out.stdout
