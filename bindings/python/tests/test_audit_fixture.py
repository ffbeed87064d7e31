"""The audit records of a fixed set of governed calls, byte for byte (ids, times, hashes and
durations masked), against tests/fixtures/tool_calls.audit.jsonl.

The fixture was recorded before the tool-call path moved from Python into the Rust core, so
this test proves the move kept every record identical. Set ``UPDATE_AUDIT_FIXTURE=1`` to record
it again (only when a change of the records is intended).
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import math
import os
import re
from collections import OrderedDict, namedtuple
from pathlib import Path

import pytest

import agent_assembly as aa
from conftest import PERMISSIVE

FIXTURE = Path(__file__).parent / "fixtures" / "tool_calls.audit.jsonl"
MASKS = [
    (re.compile(r'"(decision_id|hash|id|prev_hash|ts)":"[^"]*"'), r'"\1":"<\1>"'),
    (re.compile(r'"duration_us":\d+'), '"duration_us":0'),
]


class Color(enum.IntEnum):
    RED = 1


class Label(str):
    """A str subclass (its repr is the plain string's)."""


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


Point = namedtuple("Point", "x y")


def masked(line: str) -> str:
    for pattern, repl in MASKS:
        line = pattern.sub(repl, line)
    return line


def run_calls() -> None:
    @aa.govern
    def search(query: str, limit: int = 3, *extra: object, **options: object) -> list[str]:
        return [query] * limit

    @aa.govern(tool="shell")
    def run(cmd: str) -> str:
        return "done"

    @aa.govern(args=["url"])
    def fetch(url: str, headers: dict[str, str]) -> bytes:
        return b"<html>"

    @aa.govern(args=lambda user, api_key, **kw: {"user": user, "api_key": api_key, "n": len(kw)})
    def login(user: str, api_key: str, **kw: object) -> bool:
        return True

    @aa.govern(redact=["ssn"])
    def lookup(name: str, ssn: str, password: str, *, db_token: str = "", note: str = "") -> dict[str, int]:
        return {"a": 1, "b": 2}

    @aa.govern
    def values(**kw: object) -> set[int]:
        return {1, 2, 3}

    @aa.govern
    def failing(n: int) -> None:
        raise ValueError("no")

    @aa.govern
    async def fetch_async(url: str) -> str:
        await asyncio.sleep(0)
        return url

    class Repo:
        @aa.govern
        def commit(self, message: str, files: tuple[str, ...]) -> int:
            return len(files)

    deep: list[object] = []
    cur = deep
    for _ in range(40):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt

    search("cedar")
    search("cedar", 2, "x", 3.5, sort="asc", filters={"lang": ["en", "fr"], "n": None})
    run("ls -l")
    with pytest.raises(aa.PolicyDenied):
        run("rm -rf /")
    fetch("https://example.com/a?b=c", {"Accept": "text/html"})
    login("ann", "sk-live-123", a=1, b=2)
    lookup("ann", "123-45-6789", "hunter2", db_token="t0k", note="fine")
    values(
        text="é" * 5000,
        raw=b"\x00\x01'abc\"\n\xff",
        bigint=2**70,
        neg=-(2**63),
        floats=[0.1, 1e300, -0.0, 3.0, math.nan, math.inf, -math.inf],
        flags=[True, False, None],
        when=datetime.datetime(2024, 1, 2, 3, 4, 5),
        day=datetime.date(2024, 1, 2),
        enum=Color.RED,
        label=Label("plain"),
        obj=Opaque(),
        mapping=OrderedDict([(1, "one"), ((1, 2), "pair"), (None, "none")]),
        point=Point(1, 2),
        bag=frozenset({5}),
        deep=deep,
        long_repr=[Opaque()] * 400,
        nested={"password": "kept-in-nested", "inner": {"k": ("t", 1)}},
        unicode="naïve ☃ \u2028 \x7f \t",
    )
    with pytest.raises(ValueError):
        failing(1)
    asyncio.run(fetch_async("https://example.org"))
    Repo().commit("init", ("a.py", "b.py"))
    with aa.governed("deploy", env="prod", secret_key="abc", replicas=3):
        pass
    with pytest.raises(KeyError), aa.governed("deploy", env="staging"):
        raise KeyError("x")


def test_governed_calls_write_the_recorded_audit_lines(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    aa.init(policy=PERMISSIVE, agent_id="fixture-agent", session_id="fixture-session", audit_file=audit)
    run_calls()
    aa.shutdown()
    lines = [masked(line) for line in audit.read_text(encoding="utf-8").splitlines()
             if not line.startswith('{"checkpoint"')]
    if os.environ.get("UPDATE_AUDIT_FIXTURE") == "1":
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    expected = FIXTURE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected)
    for got, want in zip(lines, expected):
        assert got == want
