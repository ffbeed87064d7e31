"""Every exported item is present in the generated Kotlin and Swift sources.

Debian 12's `kotlinc` is 1.3.31, which cannot parse what uniffi 0.32 generates (trailing commas
in parameter lists are Kotlin 1.4; `kotlinc aa_ffi.kt` stops with 158 "expecting a parameter
declaration" errors), and there is no Swift toolchain here; so the sources `scripts/ffi.sh`
generates are checked item by item. The list of items is read from the generated Python module
(the same library), so an export missing from Kotlin or Swift fails here."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import aa_ffi
import pytest

GENERATED = Path(os.environ.get("FFI_GENERATED", "/nonexistent"))
OBJECTS = ["Governor", "Decision", "ToolCall", "ConformanceEngine"]
RECORDS = ["GovernorConfig", "Outcome", "PolicyDiagnostic", "Stats"]
ERROR_VARIANTS = ["Config", "Policy", "InvalidInput", "Unavailable", "Audit", "PolicyDenied", "Internal"]
DENIED_FIELDS = ["reason", "detail", "policy_ids", "decision_id", "budget"]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def methods(cls: type) -> list[str]:
    return [n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")]


@pytest.fixture(scope="module")
def kotlin() -> str:
    return (GENERATED / "kotlin" / "uniffi" / "aa_ffi" / "aa_ffi.kt").read_text()


@pytest.fixture(scope="module")
def swift() -> str:
    return (GENERATED / "swift" / "aa_ffi.swift").read_text()


def test_the_python_module_exports_what_the_crate_does() -> None:
    assert set(methods(aa_ffi.Governor)) >= {"decide", "decide_tool", "report", "flush", "close", "stats"}
    assert set(methods(aa_ffi.ToolCall)) >= {"done_ok", "done_error", "decision"}
    for v in ERROR_VARIANTS:
        assert issubclass(getattr(aa_ffi.AaError, v), aa_ffi.AaError)


@pytest.mark.parametrize("obj", OBJECTS)
def test_objects_and_their_methods(obj: str, kotlin: str, swift: str) -> None:
    assert re.search(rf"^open class {obj}\b", kotlin, re.M), obj
    assert re.search(rf"^open class {obj}\b", swift, re.M), obj
    names = methods(getattr(aa_ffi, obj))
    assert names, obj
    for m in names:
        assert re.search(rf"override fun `{camel(m)}`\(", kotlin), (obj, m)
        assert re.search(rf"open func {camel(m)}\(", swift), (obj, m)


@pytest.mark.parametrize("record", RECORDS)
def test_records(record: str, kotlin: str, swift: str) -> None:
    assert re.search(rf"^data class {record} \(", kotlin, re.M), record
    assert re.search(rf"^public struct {record}\b", swift, re.M), record


def test_the_error_enum(kotlin: str, swift: str) -> None:
    assert "sealed class AaException" in kotlin and re.search(r"^(public )?enum AaError\b", swift, re.M)
    for v in ERROR_VARIANTS:
        assert re.search(rf"class {v}\(", kotlin), v
        assert re.search(rf"case {v}\(", swift), v
    denied = kotlin[kotlin.index("class PolicyDenied(") :][:1500]
    for f in DENIED_FIELDS:
        assert f"val `{camel(f)}`" in denied, f


def test_the_outcome_status_enum(kotlin: str, swift: str) -> None:
    assert "enum class OutcomeStatus" in kotlin and "public enum OutcomeStatus" in swift
