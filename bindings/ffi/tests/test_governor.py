"""The governor through the C ABI: embedded, remote, the tool-call path, typed errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import aa_ffi
import pytest

from conftest import PERMISSIVE, ROOT, Gateway

AASM = os.environ["AASM"]
BUDGETS = ROOT / "conformance" / "policies" / "budgets"
RM_RF = json.dumps({"kind": "process_exec", "path": "/bin/rm", "argv": ["rm", "-rf", "/"]})


def embedded(tmp_path: Path, policy: Path = PERMISSIVE, agent: str = "ffi-agent") -> aa_ffi.Governor:
    return aa_ffi.Governor(aa_ffi.GovernorConfig(policy=str(policy), agent_id=agent,
                                                 audit_file=str(tmp_path / "audit.jsonl")))


def test_embedded_decide_allows_and_denies(tmp_path: Path) -> None:
    g = embedded(tmp_path)
    assert g.mode() == "embedded" and g.agent_id() == "ffi-agent"
    ok = g.decide(json.dumps({"kind": "tool_call", "tool": "web_search", "args": {"query": "cedar"}}))
    assert ok.allowed() and ok.effect() == "allow" and ok.policy_ids() == ["allow-all"]
    no = g.decide(RM_RF)
    assert not no.allowed() and no.reason() == "forbidden"
    assert sorted(no.policy_ids()) == ["no-rm-rf", "no-rm-rf-via-shell"] and no.decision_id()
    g.close(5.0)


def test_a_denied_tool_call_carries_its_fields(tmp_path: Path) -> None:
    g = embedded(tmp_path, BUDGETS, "a")
    allowed = 0
    with pytest.raises(aa_ffi.AaError.PolicyDenied) as info:
        for _ in range(10):
            call = g.decide_tool("cheap", "{}", [])
            assert call.decision().allowed()
            call.done_ok(None)
            allowed += 1
    e = info.value
    assert allowed == 5
    assert e.reason == "budget_exceeded" and e.budget == "agent-hour"
    assert "5/5 calls this hour" in e.detail and e.decision_id and e.policy_ids == []
    assert isinstance(e, aa_ffi.AaError)
    g.close(5.0)


def test_a_forbidden_tool_call_names_its_policies(tmp_path: Path) -> None:
    g = embedded(tmp_path, ROOT / "examples" / "policies" / "strict", "analyst")
    with pytest.raises(aa_ffi.AaError.PolicyDenied) as info:
        g.decide_tool("shell", json.dumps({"cmd": "id"}), [])
    assert info.value.reason == "no_permit" and info.value.budget is None
    g.close(5.0)


def test_a_bad_policy_is_a_typed_error_with_its_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "base.cedar").write_text('permit(principal, action, resource);\n\nforbid(principal, action, resource) when { ;\n')
    with pytest.raises(aa_ffi.AaError.Policy) as info:
        embedded(tmp_path, bad)
    diags = info.value.diagnostics
    assert diags, info.value
    d = diags[0]
    assert d.file == "base.cedar" and d.line == 3 and d.column is not None and d.column > 1, d
    assert f"base.cedar:3:{d.column}" in info.value.detail


def test_bad_input_and_config_are_typed_errors(tmp_path: Path) -> None:
    g = embedded(tmp_path)
    with pytest.raises(aa_ffi.AaError.InvalidInput) as info:
        g.decide('{"kind": "tool_call",')
    assert "line 1" in info.value.detail
    with pytest.raises(aa_ffi.AaError.InvalidInput):
        g.decide_tool("t", "[1, 2]", [])
    with pytest.raises(aa_ffi.AaError.Config):
        aa_ffi.Governor(aa_ffi.GovernorConfig(agent_id="x"))
    with pytest.raises(aa_ffi.AaError.Config):
        aa_ffi.Governor(aa_ffi.GovernorConfig(agent_id="x", policy=str(tmp_path / "nowhere")))
    g.close(5.0)


def test_embedded_audit_file_verifies_with_aasm(tmp_path: Path) -> None:
    g = embedded(tmp_path)
    for i in range(20):
        call = g.decide_tool("search", json.dumps({"query": "cedar", "i": i, "api_key": "sk-secret"}), ["query"])
        if i % 2:
            call.done_error("TimeoutError")
        else:
            call.done_ok(3)
    g.close(5.0)
    audit = tmp_path / "audit.jsonl"
    out = subprocess.run([AASM, "--json", "audit", "verify", str(audit), "--strict"], capture_output=True, text=True)
    report = json.loads(out.stdout)["data"]
    assert out.returncode == 0 and report["records"] == 40 and report["sealed_seq"] == 40, out.stdout
    records = [json.loads(line) for line in audit.read_text().splitlines() if not line.startswith('{"checkpoint"')]
    first = records[0]["action"]["args"]
    assert first["api_key"] == "[redacted]" and first["query"] == "[redacted]" and first["i"] == 0
    ends = [r["outcome"] for r in records if "outcome" in r]
    assert ends[0]["status"] == "ok" and ends[0]["result_size"] == 3
    assert ends[1]["status"] == "error" and ends[1]["error"] == "TimeoutError"


def test_report_records_an_outcome(tmp_path: Path) -> None:
    g = embedded(tmp_path)
    action = json.dumps({"kind": "tool_call", "tool": "web_search", "args": {}})
    d = g.decide(action)
    g.report(action, d, aa_ffi.Outcome(status=aa_ffi.OutcomeStatus.OK, duration_us=7, result_size=2))
    g.flush(5.0)
    g.close(5.0)
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines() if '"outcome"' in x]
    assert records[-1]["outcome"] == {"duration_us": 7, "result_size": 2, "status": "ok"}


def test_remote_mode_against_a_real_gateway(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.api("POST", "/v1/agents", {"agent_id": "ffi-remote"})["token"]  # type: ignore[index]
    g = aa_ffi.Governor(aa_ffi.GovernorConfig(gateway_url=gateway.url, agent_id="ffi-remote", token=token,
                                              mode="remote", spill_dir=str(tmp_path / "spill")))
    assert g.mode() == "remote"
    call = g.decide_tool("web_search", json.dumps({"query": "cedar"}), [])
    assert call.decision().policy_ids() == ["allow-all"]
    call.done_ok(5)
    with pytest.raises(aa_ffi.AaError.PolicyDenied) as info:
        g.decide_tool("shell", json.dumps({"cmd": "rm -rf /"}), [])
    assert info.value.reason == "forbidden" and info.value.policy_ids
    g.flush(10.0)
    assert g.stats().shipped >= 1
    g.close(5.0)
    records = gateway.records()
    mine = [r for r in records if r["agent_id"] == "ffi-remote"]
    assert any(r.get("outcome", {}).get("result_size") == 5 for r in mine), mine
    assert any(r["decision"]["decision_id"] == info.value.decision_id for r in mine), mine


def test_remote_mode_fails_closed_when_the_gateway_is_down(tmp_path: Path) -> None:
    g = aa_ffi.Governor(aa_ffi.GovernorConfig(gateway_url="http://127.0.0.1:9", agent_id="lonely", token="aa_x",
                                              mode="remote", spill_dir=str(tmp_path / "spill")))
    with pytest.raises(aa_ffi.AaError.PolicyDenied) as info:
        g.decide_tool("web_search", "{}", [])
    assert info.value.reason == "unavailable"
    g.close(0.5)
