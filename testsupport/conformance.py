"""The shared conformance table (``conformance/cases.json``), driven through any binding.

Each binding's test gives a factory for its conformance engine (policy directory, start time in
unix ms, fail_open, suspended agents); decisions are compared in their wire form (``to_json()``),
so every binding is held to the same expectations by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
CASES: list[dict[str, Any]] = json.loads((ROOT / "conformance" / "cases.json").read_text())["case"]
DEFAULT_NOW_MS = 1_767_614_400_000


class Engine(Protocol):
    """What a binding's conformance engine offers."""

    def advance(self, ms: int) -> None: ...
    def decide(self, agent: str, action: str, layer: str) -> Any: ...
    def report(self, agent: str, action: str, layer: str, decision: Any, outcome: str) -> Any: ...


EngineFactory = Callable[[Path, int, bool, list[str]], Engine]


def _agent(spec: object) -> str:
    return json.dumps({"agent_id": spec} if isinstance(spec, str) else spec)


def _steps(case: dict[str, Any]) -> list[dict[str, Any]]:
    if "steps" in case:
        return case["steps"]
    keys = ("agent", "layer", "action", "outcome", "repeat", "advance_ms", "expect")
    return [{k: case[k] for k in keys if k in case}]


def _now_ms(case: dict[str, Any]) -> int:
    now = case.get("now")
    if not now:
        return DEFAULT_NOW_MS
    return int(datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp() * 1000)


def run_case(case: dict[str, Any], make_engine: EngineFactory) -> None:
    """Runs one case through the engine `make_engine` builds; asserts every expectation."""
    engine = make_engine(ROOT / "conformance" / case["policy"], _now_ms(case),
                         case.get("fail_open", False), case.get("suspended", []))
    for step in _steps(case):
        engine.advance(step.get("advance_ms", 0))
        expect = step["expect"]
        if isinstance(expect, str):
            expect = {"decision": expect}
        layer = step.get("layer", "sdk")
        agent, action = _agent(step["agent"]), json.dumps(step["action"])
        for _ in range(step.get("repeat", 1)):
            d = engine.decide(agent, action, layer)
            wire = json.loads(d.to_json())
            assert wire["effect"] == expect["decision"], (wire, expect)
            if "reason" in expect:
                assert wire["reason"] == expect["reason"], wire
            if "policy_ids" in expect:
                assert sorted(wire.get("policy_ids", [])) == sorted(expect["policy_ids"]), wire
            if "budget" in expect:
                assert wire.get("budget") == expect["budget"], wire
            if "message_contains" in expect:
                assert expect["message_contains"] in wire["message"], wire
            if wire["effect"] == "allow" and "outcome" in step:
                engine.report(agent, action, layer, d, json.dumps(step["outcome"]))
