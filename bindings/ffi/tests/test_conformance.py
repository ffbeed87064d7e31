"""The shared conformance table, through the C ABI (the generated uniffi Python module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aa_ffi
import pytest

from conformance import CASES, run_case


def _engine(policy: Path, now_ms: int, fail_open: bool, suspended: list[str]) -> aa_ffi.ConformanceEngine:
    return aa_ffi.ConformanceEngine(str(policy), now_ms, fail_open, suspended)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance(case: dict[str, Any]) -> None:
    run_case(case, _engine)


def test_the_table_is_not_empty() -> None:
    assert len(CASES) >= 30
