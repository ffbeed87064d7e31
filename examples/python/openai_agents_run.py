"""An OpenAI Agents SDK agent whose function tools are governed by Agent Assembly.

The model here is scripted (no network, no API key): it asks for a forbidden shell command, then
an allowed one. Swap in a real model to run it for real.

    AA_POLICY=examples/policies/permissive AA_AGENT_ID=ops-agent python examples/python/openai_agents_run.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from agents import Agent, ModelResponse, Runner, Usage, set_tracing_disabled
from agents.models.interface import Model
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import agent_assembly as aa
from agent_assembly.integrations.openai_agents import governed_function_tool


@governed_function_tool
def run_shell(cmd: str) -> str:
    """Run a shell command."""
    return f"(would run) {cmd}"


class ScriptedModel(Model):
    """Two tool calls, then a final answer."""

    script: ClassVar[list[tuple[str, dict[str, str]]]] = [
        ("run_shell", {"cmd": "rm -rf /"}),
        ("run_shell", {"cmd": "df -h"}),
    ]

    def __init__(self) -> None:
        self.turn = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.turn += 1
        if self.turn <= len(self.script):
            name, arguments = self.script[self.turn - 1]
            call = ResponseFunctionToolCall(id=f"fc{self.turn}", call_id=f"call-{self.turn}", name=name,
                                            arguments=json.dumps(arguments), type="function_call",
                                            status="completed")
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        text = ResponseOutputText(type="output_text", text="Checked the disk; deletion was refused.", annotations=[])
        msg = ResponseOutputMessage(id="m", type="message", role="assistant", status="completed", content=[text])
        return ModelResponse(output=[msg], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def main() -> None:
    set_tracing_disabled(True)
    agent = Agent(name="ops", instructions="Keep the disk tidy.", tools=[run_shell], model=ScriptedModel())
    result = await Runner.run(agent, "free some disk space")
    print(result.final_output)
    for item in result.new_items:
        if item.type == "tool_call_output_item":
            print("tool output:", item.output)
    aa.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
