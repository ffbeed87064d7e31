"""Fixtures for the tests of `libaa_ffi.so` through its generated uniffi Python module.

`scripts/ffi.sh` builds the library, generates `aa_ffi.py` beside a copy of it and puts that
directory on `PYTHONPATH`; nothing generated is committed."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "testsupport"))

from aa_testing import Gateway  # noqa: E402

PERMISSIVE = ROOT / "examples" / "policies" / "permissive"
ADMIN = "ffi-tests-admin-token-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("AA_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AA_SPILL_DIR", str(tmp_path / "spill"))


@pytest.fixture
def unlimited(tmp_path: Path) -> Path:
    """The permissive example's policies without its budgets (600 calls a minute), for long loops."""
    d = tmp_path / "unlimited"
    d.mkdir()
    shutil.copy(PERMISSIVE / "base.cedar", d / "base.cedar")
    return d


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "gw.db", PERMISSIVE, ADMIN)
    assert gw.url.startswith("http://"), gw.url
    yield gw
    gw.stop()
