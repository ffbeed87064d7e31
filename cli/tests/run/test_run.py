"""`aasm run` end to end, as root on the real kernel: the example agents (Python and TypeScript)
under all three layers against a real `aasm gateway` (asserted through its audit API), a program
that has never heard of Agent Assembly (`curl`), the governance levels, bypass responses, and
teardown after the child is SIGKILLed and after `aasm run` gets SIGINT.

Run from the repository root's scripts/test.sh (needs the venvs of scripts/setup.sh, the built
Node module and `examples/agents/typescript/build.sh`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "testsupport"))
from aa_testing import Gateway  # noqa: E402

AASM = os.environ.get("AASM", "/var/cache/aa/target/debug/aasm")
SDK_PY = os.environ.get("AA_SDK_VENV", "/var/cache/aa/venv-sdk") + "/bin/python"
UP_PY = os.environ.get("AA_PROXY_VENV", "/var/cache/aa/venv-proxy") + "/bin/python"
ADMIN = "run-test-admin-token-0123456789abcdef"
POLICY = ROOT / "examples/agents/policy"
NODE_AGENT = ROOT / "examples/agents/typescript/dist/agent.js"

if os.geteuid() != 0:
    pytest.skip("aasm run's kernel layer needs root (CI runs as root)", allow_module_level=True)


def cgroup2() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        f = line.split()
        if f[2] == "cgroup2":
            return Path(f[1])
    raise AssertionError("no cgroup2 mount")


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("upstreams")
    p = subprocess.Popen([UP_PY, str(ROOT / "examples/agents/upstreams.py"), "--dir", str(d)],
                         stdout=subprocess.PIPE, stderr=open(d / "err.log", "w"), text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("{"), (d / "err.log").read_text()
    yield json.loads(line)
    p.kill()
    p.wait()


def stats(up: dict[str, Any]) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=up["ca"])
    with urllib.request.urlopen(up["stats_url"], context=ctx, timeout=10) as r:
        return json.loads(r.read())


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 180,
        ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`aasm --json run ARGS`: the process and its run report."""
    p = subprocess.run([AASM, "--json", "run", *args], capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, **(env or {})))
    # The command's own output shares stdout; the report is the last line.
    last = p.stdout.rstrip("\n").rsplit("\n", 1)[-1]
    reports = []
    for start in (i for i, c in enumerate(last) if c == "{"):
        try:
            envelope = json.loads(last[start:])
        except ValueError:
            continue
        if envelope.get("type") == "run":
            reports.append(envelope["data"])
            break
    assert reports, (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p, reports[-1]


def assert_nothing_left(report: dict[str, Any]) -> None:
    """No cgroup, no process in it, the run's CA gone, the proxy's port closed."""
    leftover = list((cgroup2() / "agent-assembly").glob("run-*")) if (cgroup2() / "agent-assembly").exists() else []
    assert leftover == [], leftover
    state = Path(report["state_dir"])
    assert not (state / "ca").exists(), "the run's CA was left behind"
    assert (state / "gateway.db").exists() or report.get("joined"), "the audit database is kept"


def agent_env(up: dict[str, Any]) -> list[str]:
    return ["env", *(f"{k}={v}" for k, v in up["env"].items()), "AA_DEMO_LAYERS=sdk,proxy,ebpf"]


def agent_summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"agent"'):
            return json.loads(line)
    raise AssertionError(stdout[-3000:])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("gw") / "gw.db", POLICY, ADMIN)
    yield g
    g.stop()


def audit(gateway: Gateway, agent: str) -> list[dict[str, Any]]:
    """Every record of `agent`, a page at a time."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page: Any = gateway.api("GET", f"/v1/audit?limit=1000&agent={agent}&cursor={cursor}")
        out += page["records"]
        if not page.get("next_cursor"):
            return out
        cursor = page["next_cursor"]


@pytest.mark.parametrize("lang", ["python", "node"])
def test_the_example_agent_under_all_three_layers(lang: str, upstreams: dict[str, Any],
                                                   gateway: Gateway, tmp_path: Path) -> None:
    cmd = [SDK_PY, str(ROOT / "examples/agents/python/agent.py")] if lang == "python" else ["node", str(NODE_AGENT)]
    agent = f"demo-{lang}"
    before = stats(upstreams)
    p, report = run(["--gateway", gateway.url, "--agent-id", agent, "--level", "native",
                     "--upstream-ca", upstreams["ca"], "--llm", f"{upstreams['llm_host']}=openai",
                     "--state-dir", str(tmp_path / "run"), "--", *agent_env(upstreams), *cmd],
                    env={"AA_ADMIN_TOKEN": ADMIN})
    summary = agent_summary(p.stdout)
    assert p.returncode == 0, (p.stdout[-4000:], p.stderr[-4000:])
    assert summary["ok"], summary
    # The SDK announced itself: L3Native, governed.
    assert report["level"] == "L3Native" and report["governed"], report
    records = audit(gateway, agent)
    layers = {r["layer"] for r in records}
    assert {"sdk", "proxy", "ebpf"} <= layers, layers

    def denied(pred: Any) -> list[dict[str, Any]]:
        return [r for r in records if r["decision"]["effect"] == "deny" and pred(r)]

    # The denied tool call never ran (its body counter in the agent's summary) and was denied
    # at SDK depth.
    assert denied(lambda r: r["layer"] == "sdk" and r["action"].get("tool") == "delete_records")
    assert summary["steps"]["tool_forbidden"]["ok"], summary["steps"]["tool_forbidden"]
    # The budget denial came at the right call: 4 tool calls allowed, the 5th (the 4th
    # web_search) denied.
    tool_decisions = [r for r in records if r["layer"] == "sdk" and r["action"]["kind"] == "tool_call"
                      and ("outcome" not in r or r.get("combined"))
                      and r["action"]["tool"] != "delete_records"]
    effects = [r["decision"]["reason"] for r in tool_decisions]
    assert effects == ["permitted"] * 4 + ["budget_exceeded"], effects
    assert tool_decisions[-1]["action"]["tool"] == "web_search"
    # The denied egress and the forbidden MCP tool never reached their upstream.
    after = stats(upstreams)
    assert after["exfil_requests"] == before["exfil_requests"], after
    assert after["mcp_tool_calls"]["delete_all_orders"] == before["mcp_tool_calls"]["delete_all_orders"]
    assert after["mcp_tool_calls"]["lookup_order"] == before["mcp_tool_calls"]["lookup_order"] + 1
    assert denied(lambda r: r["layer"] == "proxy" and r["action"]["kind"] == "http_request"
                  and r["action"]["path"].startswith("/exfil"))
    assert denied(lambda r: r["layer"] == "proxy" and r["action"]["kind"] == "mcp_call"
                  and r["action"].get("tool") == "delete_all_orders")
    # The model call went through the proxy and its tokens were charged.
    usage = [r["outcome"]["usage"] for r in records if r["layer"] == "proxy"
             and r["action"]["kind"] == "model_call" and r.get("outcome", {}).get("usage")]
    assert usage and usage[0]["input_tokens"] == 21 and usage[0]["output_tokens"] == 9, usage
    assert report["input_tokens"] >= 21 and report["output_tokens"] >= 9
    # The forbidden exec was killed by the kernel layer before it ran.
    assert denied(lambda r: r["layer"] == "ebpf" and r["action"]["kind"] == "process_exec"
                  and r["action"]["path"] == "/usr/bin/perl")
    assert summary["steps"]["exec_forbidden"]["ok"], summary["steps"]["exec_forbidden"]
    # The raw socket to the LLM stub, around the proxy, is a bypass naming the process and
    # destination.
    bypass = [r for r in records if r["decision"]["reason"] == "bypass"]
    assert len(bypass) == 1, bypass
    assert bypass[0]["action"]["port"] == upstreams["llm_port"]
    assert "pid" in bypass[0]["decision"]["message"]
    assert len(report["bypasses"]) == 1
    # The chain verifies.
    v = subprocess.run([AASM, "audit", "verify", "--gateway", gateway.url], capture_output=True,
                       text=True, env=dict(os.environ, AA_TOKEN=ADMIN), timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    assert report["audit"]["verified"] is True
    assert_nothing_left(dict(report, joined=True))


def test_a_program_that_never_heard_of_agent_assembly(upstreams: dict[str, Any], tmp_path: Path) -> None:
    """`--level observe -- curl`: the embedded gateway, the proxy decides its request."""
    llm = upstreams["llm_url"].removesuffix("/v1")
    p, report = run(["--policy", str(POLICY), "--level", "observe", "--upstream-ca", upstreams["ca"],
                     "--state-dir", str(tmp_path / "run"), "--",
                     "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\n", f"{llm}/health",
                     upstreams["exfil_url"]])
    assert p.returncode == 0, p.stderr[-3000:]
    assert report["level"] == "L1Observe" and report["governed"]
    assert report["layers"]["proxy"]["allowed"] >= 1 and report["layers"]["proxy"]["denied"] == 1, report
    assert any("no-exfil" in d["why"] for d in report["top_denials"]), report["top_denials"]
    assert report["layers"]["ebpf"]["seen"] >= 1, report
    assert report["bypasses"] == [], report["bypasses"]
    assert report["audit"]["verified"] is True
    assert_nothing_left(report)


def test_level_native_without_an_sdk_is_not_governed(tmp_path: Path) -> None:
    p, report = run(["--policy", str(POLICY), "--level", "native", "--state-dir", str(tmp_path / "run"),
                     "--", "true"])
    assert p.returncode == 3 and report["governed"] is False and report["level"] == "L1Observe"


def free_port_listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def test_on_bypass_kill_kills_the_process(tmp_path: Path) -> None:
    lst = free_port_listener()
    port = lst.getsockname()[1]
    code = (f"import socket,time; s=socket.create_connection(('127.0.0.1',{port})); "
            "time.sleep(30); print('surv' + 'ived')")
    p, report = run(["--policy", str(POLICY), "--on-bypass", "kill", "--state-dir", str(tmp_path / "run"),
                     "--", sys.executable, "-c", code], timeout=60)
    lst.close()
    assert "survived" not in p.stdout
    assert p.returncode == 128 + signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    assert len(report["bypasses"]) == 1 and report["bypasses"][0]["stopped"] is True, report["bypasses"]
    assert_nothing_left(report)


def start_run(tmp_path: Path, *cmd: str) -> tuple[subprocess.Popen[str], int]:
    """`aasm run -- CMD` in the background; the command's pid from the progress line."""
    p = subprocess.Popen([AASM, "run", "--policy", str(POLICY), "--state-dir", str(tmp_path / "run"),
                          "--", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if "started" in line and "(pid " in line:
            return p, int(line.rsplit("(pid ", 1)[1].split(")")[0])
        assert line or p.poll() is None, "aasm run ended before the command started"
    raise AssertionError("the command never started")


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_sigkill_of_the_child_tears_everything_down(tmp_path: Path) -> None:
    p, pid = start_run(tmp_path, "sleep", "60")
    # The launcher joins the cgroup, then execs the command.
    deadline = time.monotonic() + 10
    while "agent-assembly/run-" not in cgroup_of(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "agent-assembly/run-" in cgroup_of(pid)
    os.kill(pid, signal.SIGKILL)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGKILL
    assert "exited by a signal" in out
    assert_nothing_left({"state_dir": str(tmp_path / "run")})


def test_sigint_of_aasm_run_reaches_the_child_and_tears_everything_down(tmp_path: Path) -> None:
    # A grandchild too: the cgroup's last processes are killed at teardown.
    p, pid = start_run(tmp_path, "sh", "-c", "sleep 60 & wait")
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGINT, (p.returncode, out)
    assert not Path(f"/proc/{pid}").exists()
    # The backgrounded sleep ignores SIGINT (a non-interactive shell's background job): the
    # teardown's cgroup.kill ended it.
    sleeps = subprocess.run(["pgrep", "-x", "sleep"], capture_output=True, text=True).stdout.split()
    assert not [s for s in sleeps if "agent-assembly" in cgroup_of(int(s))], sleeps
    assert_nothing_left({"state_dir": str(tmp_path / "run")})


def test_landlock_confines_writes_to_the_allowed_directories(tmp_path: Path) -> None:
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    p, report = run(["--policy", str(POLICY), "--allow-write", str(work), "--state-dir", str(tmp_path / "run"),
                     "--", "sh", "-c", f"echo ok > {work}/a && echo no > {outside}/b; echo rc=$?"])
    assert (work / "a").read_text() == "ok\n"
    assert not (outside / "b").exists()
    assert "rc=1" in p.stdout or "rc=2" in p.stdout, p.stdout
    assert_nothing_left(report)
