"""The overhead @govern adds to a no-op function, in local and embedded mode, beside cedarpy
(PyPI) evaluating the same policy and request with is_authorized in the same run.

Run: scripts/bench.sh (or pytest bindings/python/bench --benchmark-only).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import cedarpy
import pytest

import agent_assembly as aa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import PERMISSIVE, Gateway

POLICY_TEXT = (PERMISSIVE / "base.cedar").read_text()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """The permissive example's policies without its budgets (a benchmark makes millions of calls)."""
    d = tmp_path / "policy"
    d.mkdir()
    (d / "base.cedar").write_text(POLICY_TEXT)
    return d


def noop(x: int) -> int:
    return x


def test_baseline_noop(benchmark) -> None:
    benchmark(noop, 1)


def test_govern_embedded(benchmark, tmp_path: Path, policy: Path) -> None:
    aa.init(policy=policy, agent_id="bench", audit_file=tmp_path / "audit.jsonl")
    governed = aa.govern(noop)
    benchmark(governed, 1)
    aa.shutdown()


def test_govern_local(benchmark, tmp_path: Path, policy: Path) -> None:
    gw = Gateway(tmp_path / "gw.db", policy)
    try:
        token = gw.register("bench")
        aa.init(gateway_url=gw.url, agent_id="bench", token=token, spill_dir=tmp_path / "spill",
                queue_capacity=2_000_000)
        governed = aa.govern(noop)
        benchmark(governed, 1)
        aa.shutdown(timeout=30)
    finally:
        gw.stop(signal.SIGKILL)


def test_cedarpy_is_authorized_same_policy_and_request(benchmark) -> None:
    """cedarpy on the same permissive policy set and the same tool_call request (the context our
    mapping builds), policies pre-parsed as in ../shared/bench/bench_cedarpy.py."""
    policies = cedarpy.PolicySet.from_str(POLICY_TEXT)
    request = {
        "principal": 'Agent::"bench"',
        "action": 'Action::"tool_call"',
        "resource": 'Tool::"noop"',
        "context": {
            "layer": "sdk",
            "budget": {"exceeded": False, "calls_remaining": 9_223_372_036_854_775_807,
                       "tokens_remaining": 9_223_372_036_854_775_807,
                       "cost_remaining_micros": 9_223_372_036_854_775_807, "utilization_pct": 0},
            "time": {"epoch_secs": 1_767_614_400, "hour": 12, "weekday": 1},
            "tool": "noop",
            "args_json": json.dumps({"x": 1}),
        },
    }
    entities = cedarpy.Entities.from_json_str("[]")
    result = cedarpy.is_authorized(request, policies, entities)
    assert str(result.decision).lower().endswith("allow"), result

    def run() -> None:
        cedarpy.is_authorized(request, policies, entities)

    benchmark(run)


@pytest.fixture(autouse=True)
def _reset() -> None:
    yield
    aa.shutdown(timeout=5)
