"""The shared conformance table, through this binding."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from agent_assembly import _native

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "testsupport"))
from conformance import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance(case: dict[str, Any]) -> None:
    run_case(case, _native.Engine)


def test_the_table_is_not_empty() -> None:
    assert len(CASES) >= 30
