"""The package's Python face: exceptions in ``agent_assembly``, public names, pickling, typed
stats, and the core's argument rules seen from Python (value redaction, cycles, bytes)."""

from __future__ import annotations

import json
import os
import pickle
import traceback
from pathlib import Path

import pytest

import agent_assembly as aa
from conftest import PERMISSIVE, records


def test_exceptions_live_in_agent_assembly_and_tracebacks_name_no_private_module() -> None:
    for cls in (aa.AgentAssemblyError, aa.ConfigError, aa.GatewayUnavailable, aa.InvalidAction, aa.PolicyDenied):
        assert cls.__module__ == "agent_assembly", cls
        assert getattr(aa, cls.__name__) is cls
    with pytest.raises(aa.ConfigError) as exc:
        aa.init(agent_id="x")  # raised by the Rust extension
    assert type(exc.value) is aa.ConfigError
    text = "".join(traceback.format_exception(exc.type, exc.value, exc.tb)[1:])
    assert "_native" not in text and "agent_assembly.ConfigError: " in text, text
    with pytest.raises(aa.InvalidAction) as bad:
        aa.init(policy=PERMISSIVE, agent_id="x")
        aa.decide({"kind": "teleport"})
    assert "_native" not in "".join(traceback.format_exception(bad.type, bad.value, bad.tb)[1:])


def test_classes_have_their_python_names(embedded: Path) -> None:
    d = aa.decide({"kind": "file_access", "path": "/tmp/x", "access": "read"})
    assert type(d) is aa.Decision
    assert type(d).__name__ == "Decision" and type(d).__module__ == "agent_assembly"
    assert "PyDecision" not in repr(d) and "PyDecision" not in dir(aa)


def test_policy_denied_pickles_with_its_fields(embedded: Path) -> None:
    @aa.govern(tool="shell")
    def run(cmd: str) -> None: ...

    with pytest.raises(aa.PolicyDenied) as exc:
        run("rm -rf /")
    back = pickle.loads(pickle.dumps(exc.value))
    assert type(back) is aa.PolicyDenied
    fields = ("reason", "message", "policy_ids", "decision_id", "budget", "action")
    assert [getattr(back, f) for f in fields] == [getattr(exc.value, f) for f in fields]
    assert back.decision == exc.value.decision and back.decision.to_json() == exc.value.decision.to_json()
    assert str(back) == str(exc.value) and back.action == "shell"
    err = pickle.loads(pickle.dumps(aa.ConfigError("bad")))
    assert type(err) is aa.ConfigError and str(err) == "bad"


def test_stats_is_a_typed_dict(embedded: Path) -> None:
    s = aa.stats()
    assert set(s) == set(aa.Stats.__annotations__)
    assert s["queued"] == 0 and s["policy_version"]


def test_secret_values_are_redacted_wherever_they_are(embedded: Path) -> None:
    @aa.govern
    def call(url: str, headers: dict[str, str], body: bytes, notes: list[str]) -> None: ...

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    call(
        "https://example.com/?key=AKIAIOSFODNN7EXAMPLE",
        {"Authorization": "Bearer abcdefghijklmnop0123456789", "X-Other": "fine"},
        b"sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        [f"token {jwt}", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----", "ghp_" + "a" * 36],
    )
    args = records(embedded)[0]["action"]["args"]
    assert args == {
        "url": "https://example.com/?key=[redacted]",
        "headers": {"Authorization": "[redacted]", "X-Other": "fine"},
        "body": "b'[redacted]'",
        "notes": ["token [redacted]", "[redacted]", "[redacted]"],
    }
    text = embedded.read_text()
    assert "AKIA" not in text and "abcdefghijklmnop" not in text and jwt not in text


def test_cycles_bytes_and_host_objects_follow_the_core_rule(embedded: Path) -> None:
    @aa.govern
    def call(loop: list[object], raw: bytes, mapping: dict[str, object]) -> None: ...

    loop: list[object] = [1]
    loop.append(loop)
    mapping: dict[str, object] = {"a": 1}
    mapping["self"] = mapping
    raw = bytes(range(0, 256, 7)) + b"'\""
    call(loop, raw, mapping)
    args = records(embedded)[0]["action"]["args"]
    assert args == {"loop": [1, "<cycle>"], "raw": repr(raw), "mapping": {"a": 1, "self": "<cycle>"}}


def test_a_forked_embedded_child_writes_its_own_audit_file(embedded: Path) -> None:
    @aa.govern
    def step(who: str) -> str:
        return who

    step("parent")
    aa.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            step("child")
            aa.shutdown()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = Path(f"{embedded}.{pid}")
    assert [r["action"]["args"]["who"] for r in records(child)] == ["child", "child"]
    assert [r["action"]["args"]["who"] for r in records(embedded)] == ["parent", "parent"]


def test_the_decision_is_in_the_audit_file_before_the_body_runs(embedded: Path) -> None:
    seen: list[dict] = []

    @aa.govern
    def body(n: int) -> int:
        lines = [json.loads(line) for line in embedded.read_text().splitlines()]
        seen.append(lines[-1])
        return n

    for i in range(3):
        body(i)
    assert [(r["action"]["args"], "outcome" in r) for r in seen] == [({"n": i}, False) for i in range(3)]
