"""The shared conformance table, through the C ABI (the generated uniffi Python module)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import aa_ffi
import pytest

ROOT = Path(__file__).resolve().parents[3]
CASES = json.loads((ROOT / "conformance" / "cases.json").read_text())["case"]
DEFAULT_NOW_MS = 1_767_614_400_000


def _agent(spec: object) -> str:
    return json.dumps({"agent_id": spec} if isinstance(spec, str) else spec)


def _steps(case: dict) -> list[dict]:
    if "steps" in case:
        return case["steps"]
    return [{k: case[k] for k in ("agent", "layer", "action", "outcome", "repeat", "advance_ms", "expect") if k in case}]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance(case: dict) -> None:
    now = case.get("now")
    now_ms = int(datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp() * 1000) if now else DEFAULT_NOW_MS
    engine = aa_ffi.ConformanceEngine(str(ROOT / "conformance" / case["policy"]), now_ms,
                                      case.get("fail_open", False), case.get("suspended", []))
    for step in _steps(case):
        engine.advance(step.get("advance_ms", 0))
        expect = step["expect"]
        if isinstance(expect, str):
            expect = {"decision": expect}
        for _ in range(step.get("repeat", 1)):
            layer = step.get("layer", "sdk")
            d = engine.decide(_agent(step["agent"]), json.dumps(step["action"]), layer)
            assert d.effect() == expect["decision"], (d.to_json(), expect)
            if "reason" in expect:
                assert d.reason() == expect["reason"], d.to_json()
            if "policy_ids" in expect:
                assert sorted(d.policy_ids()) == sorted(expect["policy_ids"]), d.to_json()
            if "budget" in expect:
                assert d.budget() == expect["budget"], d.to_json()
            if "message_contains" in expect:
                assert expect["message_contains"] in d.message(), d.to_json()
            if d.allowed() and "outcome" in step:
                engine.report(_agent(step["agent"]), json.dumps(step["action"]), layer, d, json.dumps(step["outcome"]))


def test_the_table_is_not_empty() -> None:
    assert len(CASES) >= 30
