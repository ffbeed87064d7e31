"""Local and remote modes against a real `aasm gateway` process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import agent_assembly as aa
from conftest import ROOT, Gateway, python, wait_for


def _records_decision(r: dict) -> bool:
    """A decision's own record: no outcome, or its outcome combined into it before shipping."""
    return "outcome" not in r or bool(r.get("combined"))


def test_local_mode_decides_in_process_and_ships_the_audit(gateway: Gateway) -> None:
    token = gateway.register("local-agent")
    g = aa.init(gateway_url=gateway.url, agent_id="local-agent", token=token)
    assert g.mode == "local"
    assert aa.stats()["policy_version"] == gateway.request("GET", "/v1/policy")["version"]

    @aa.govern(tool="shell")
    def shell(cmd: str) -> str:
        return "ok"

    assert shell("ls") == "ok"
    with pytest.raises(aa.PolicyDenied) as exc:
        shell("rm -rf /")
    assert exc.value.policy_ids == ["no-rm-rf-via-shell"]
    aa.flush()
    recs = gateway.records()
    # The quick call's outcome comes while its decision is still queued: one combined record.
    assert [(r["decision"]["effect"], "outcome" in r, bool(r.get("combined"))) for r in recs] == [
        ("allow", True, True), ("deny", False, False)]
    assert all(r["agent_id"] == "local-agent" and r["layer"] == "sdk" for r in recs)
    assert gateway.verify()["ok"]


async def test_remote_mode_async_tool(gateway: Gateway) -> None:
    token = gateway.register("remote-agent")
    aa.init(gateway_url=gateway.url, agent_id="remote-agent", token=token, mode="remote")

    @aa.govern(tool="shell")
    async def shell(cmd: str) -> str:
        return cmd

    assert await shell("ls") == "ls"
    with pytest.raises(aa.PolicyDenied) as exc:
        await shell("rm -rf /")
    assert exc.value.reason == "forbidden"
    aa.flush()
    recs = gateway.records()
    # The gateway recorded both decisions; the client reported the allowed call's outcome.
    decisions = [r for r in recs if "outcome" not in r]
    outcomes = [r for r in recs if "outcome" in r]
    assert [r["decision"]["effect"] for r in decisions] == ["allow", "deny"]
    assert len(outcomes) == 1
    assert outcomes[0]["decision"]["decision_id"] == decisions[0]["decision"]["decision_id"]


def test_budget_is_shared_by_two_python_processes_in_remote_mode(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "p.cedar").write_text("permit(principal, action, resource);")
    (policy / "budgets.toml").write_text('[[budget]]\nname = "team-calls"\nper = "team"\nwindow = "total"\ncalls = 10\n')
    gw = Gateway(tmp_path / "gw.db", policy)
    try:
        tokens = [gw.register(f"worker-{i}", team="crew") for i in range(2)]
        code = """
import agent_assembly as aa
@aa.govern
def step(i): return i
ok = denied = 0
for i in range(8):
    try:
        step(i); ok += 1
    except aa.PolicyDenied as e:
        assert e.reason == "budget_exceeded" and e.budget == "team-calls", e
        denied += 1
aa.shutdown()
print(ok, denied)
"""
        procs = [
            python(code, {"AA_GATEWAY_URL": gw.url, "AA_AGENT_ID": f"worker-{i}", "AA_TOKEN": tokens[i],
                          "AA_MODE": "remote", "AA_SPILL_DIR": str(tmp_path / f"spill{i}")})
            for i in range(2)
        ]
        results = [tuple(map(int, p.stdout.split())) for p in procs]
        assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
        assert sum(ok for ok, _ in results) == 10
        assert sum(d for _, d in results) == 6
    finally:
        gw.stop(signal.SIGKILL)


def test_gateway_down_then_back_delivers_every_record_exactly_once(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.register("resilient")
    aa.init(gateway_url=gateway.url, agent_id="resilient", token=token, spill_dir=tmp_path / "spill")

    @aa.govern
    def step(i: int) -> int:
        return i

    for i in range(30):
        step(i)
    aa.flush()
    port = gateway.port
    gateway.stop(signal.SIGKILL)
    # Local mode keeps deciding with the cached policy; the audit spills to disk.
    for i in range(30, 80):
        step(i)
    assert wait_for(lambda: aa.stats()["spilled"] > 0), aa.stats()
    with pytest.raises(aa.GatewayUnavailable):
        aa.flush(timeout=0.5)
    assert list((tmp_path / "spill").glob("*.spill.jsonl"))
    gateway.start(port=port)
    aa.flush(timeout=20)
    stats = aa.stats()
    assert (stats["queued"], stats["spilled"]) == (0, 0), stats
    recs = gateway.records()
    ids = [r["id"] for r in recs]
    assert len(set(ids)) == len(ids), (len(ids), len(set(ids)))
    # Every call's decision and its outcome, once each (combined into one record or not).
    decided = sorted(r["action"]["args"]["i"] for r in recs if _records_decision(r))
    ended = sorted(r["action"]["args"]["i"] for r in recs if "outcome" in r)
    assert decided == ended == list(range(80)), (decided, ended)
    assert gateway.verify()["ok"]
    assert not list((tmp_path / "spill").glob("*.spill.jsonl"))


def test_spilled_records_of_a_dead_process_are_replayed_by_the_next(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.register("phoenix")
    port = gateway.port
    gateway.stop(signal.SIGKILL)
    env = {"AA_GATEWAY_URL": f"http://127.0.0.1:{port}", "AA_AGENT_ID": "phoenix", "AA_TOKEN": token,
           "AA_MODE": "remote", "AA_SPILL_DIR": str(tmp_path / "spill"), "AA_FAIL_OPEN": "true"}
    # A process that runs while the gateway is down (fail_open so its actions run), then exits.
    out = python("""
import agent_assembly as aa
@aa.govern
def step(i): return i
for i in range(5):
    step(i)
aa.shutdown(timeout=0.5)
print(aa.__version__)
""", env)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "spill").glob("*.spill.jsonl"))
    gateway.start(port=port)
    # The next process replays what the first one left.
    out = python("import agent_assembly as aa\naa.governor()\naa.flush(timeout=20)\naa.shutdown()", env)

    assert out.returncode == 0, out.stderr
    recs = gateway.records()
    assert len(recs) == 5 and all(r["outcome"]["status"] == "ok" for r in recs)


def test_remote_mode_fails_closed_when_the_gateway_is_down(tmp_path: Path) -> None:
    aa.init(gateway_url="http://127.0.0.1:9", agent_id="lonely", token="aa_x", mode="remote")
    ran = []

    @aa.govern
    def act() -> None:
        ran.append(1)

    with pytest.raises(aa.PolicyDenied) as exc:
        act()
    assert exc.value.reason == "unavailable" and ran == []
    # Explicitly failing open allows, flagged.
    aa.init(gateway_url="http://127.0.0.1:9", agent_id="lonely", token="aa_x", mode="remote", fail_open=True)
    d = aa.decide({"kind": "tool_call", "tool": "act"})
    assert d.allowed and d.fail_open and d.reason == "unavailable"


def test_local_mode_without_a_reachable_gateway_fails_closed(tmp_path: Path) -> None:
    aa.init(gateway_url="http://127.0.0.1:9", agent_id="lonely", token="aa_x")
    d = aa.decide({"kind": "tool_call", "tool": "x"})
    assert (d.effect, d.reason) == ("deny", "unavailable")


def test_kill_switch_reaches_local_mode_within_one_poll(gateway: Gateway) -> None:
    token = gateway.register("rogue")
    aa.init(gateway_url=gateway.url, agent_id="rogue", token=token)
    assert aa.decide({"kind": "tool_call", "tool": "x"}).allowed
    started = time.monotonic()
    gateway.request("POST", "/v1/agents/rogue/suspend", {})
    assert wait_for(lambda: aa.decide({"kind": "tool_call", "tool": "x"}).reason == "suspended", timeout=5)
    assert time.monotonic() - started < 5


def test_a_forked_child_gets_its_own_shipper(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.register("forker")
    aa.init(gateway_url=gateway.url, agent_id="forker", token=token, spill_dir=tmp_path / "spill")

    @aa.govern
    def step(who: str) -> str:
        return who

    step("parent-before")
    aa.flush()
    pid = os.fork()
    if pid == 0:  # the child: its own governor, its own background thread
        code = 0
        try:
            step("child")
            aa.flush(timeout=10)
        except BaseException:
            code = 1
        os._exit(code)
    step("parent-after")
    aa.flush()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    recs = gateway.records()
    # Each call's decision and its outcome once each (as one combined record or two).
    decided = sorted(r["action"]["args"]["who"] for r in recs if _records_decision(r))
    ended = sorted(r["action"]["args"]["who"] for r in recs if "outcome" in r)
    assert decided == ended == ["child", "parent-after", "parent-before"], recs
    assert len({r["id"] for r in recs}) == len(recs)
    assert ROOT.exists() and json
