"""Call overhead: the same governed calls through the C ABI (uniffi, `aa_ffi`) and through the
pyo3 binding (`agent_assembly._native`), in one run, on the same embedded policy.
`scripts/ffi.sh bench` prints the figures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aa_ffi
import pytest

from agent_assembly import _native

ROOT = Path(__file__).resolve().parents[3]
PERMISSIVE = ROOT / "examples" / "policies" / "permissive"
ACTION = json.dumps({"kind": "tool_call", "tool": "search", "args": {"query": "cedar", "n": 3}})
ARGS = {"query": "cedar", "n": 3, "filters": {"lang": ["en", "fr"]}}


@pytest.fixture
def unlimited(tmp_path: Path) -> str:
    """The permissive policies without the budgets, so every benchmarked call is allowed."""
    d = tmp_path / "unlimited"
    d.mkdir()
    shutil.copy(PERMISSIVE / "base.cedar", d / "base.cedar")
    return str(d)


@pytest.fixture
def ffi(tmp_path: Path, unlimited: str) -> Iterator[Any]:
    g = aa_ffi.Governor(aa_ffi.GovernorConfig(policy=unlimited, agent_id="bench",
                                              audit_file=str(tmp_path / "ffi.jsonl")))
    yield g
    g.close(5.0)


@pytest.fixture
def pyo3(tmp_path: Path, unlimited: str) -> Iterator[Any]:
    g = _native.Governor(policy=unlimited, agent_id="bench", audit_file=tmp_path / "pyo3.jsonl")
    yield g
    g.close(5.0)


def test_trivial_call_ffi(benchmark: Any, ffi: Any) -> None:
    assert benchmark(ffi.agent_id) == "bench"


def test_trivial_call_pyo3(benchmark: Any, pyo3: Any) -> None:
    assert benchmark(lambda: pyo3.agent_id) == "bench"


def test_decide_ffi(benchmark: Any, ffi: Any) -> None:
    assert benchmark(lambda: ffi.decide(ACTION).allowed())


def test_decide_pyo3(benchmark: Any, pyo3: Any) -> None:
    assert benchmark(lambda: pyo3.decide(ACTION).allowed)


def test_tool_call_ffi(benchmark: Any, ffi: Any) -> None:
    def once() -> None:
        call = ffi.decide_tool("search", json.dumps(ARGS), [])
        call.done_ok(3)

    benchmark(once)


def test_tool_call_pyo3(benchmark: Any, pyo3: Any) -> None:
    def once() -> None:
        call = pyo3.decide_tool("search", ARGS)
        assert call.allowed
        call.ok("abc")

    benchmark(once)
