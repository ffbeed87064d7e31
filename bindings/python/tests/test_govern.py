"""@govern, governed(), decide()/report() and configuration, in embedded mode (no gateway)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

import agent_assembly as aa
from conftest import AASM, PERMISSIVE, ROOT, records


def test_sync_tool_allowed_runs_and_is_recorded_with_its_outcome(embedded: Path) -> None:
    @aa.govern
    def search(query: str, limit: int = 3) -> list[str]:
        return [query] * limit

    assert search("cedar", limit=2) == ["cedar", "cedar"]
    recs = records(embedded)
    assert [r["decision"]["effect"] for r in recs] == ["allow", "allow"]
    decided, done = recs
    assert decided["action"] == {"kind": "tool_call", "tool": "search", "args": {"query": "cedar", "limit": 2}}
    assert "outcome" not in decided
    assert done["outcome"]["status"] == "ok" and done["outcome"]["result_size"] == 2
    assert done["decision"]["decision_id"] == decided["decision"]["decision_id"]


def test_a_deny_raises_before_the_body_runs(embedded: Path) -> None:
    ran = []

    @aa.govern(tool="shell")
    def run(cmd: str) -> None:
        ran.append(cmd)

    with pytest.raises(aa.PolicyDenied) as exc:
        run("cd /tmp && rm -rf ./build")
    assert ran == []
    e = exc.value
    assert isinstance(e, aa.AgentAssemblyError)
    assert e.reason == "forbidden"
    assert e.policy_ids == ["no-rm-rf-via-shell"]
    assert e.decision_id and "rm -rf" in e.message
    assert [r["decision"]["effect"] for r in records(embedded)] == ["deny"]


async def test_async_tools_and_methods(embedded: Path) -> None:
    class Files:
        prefix = "/tmp"

        @aa.govern(tool="shell")
        async def run(self, cmd: str) -> str:
            await asyncio.sleep(0)
            return f"{self.prefix}: {cmd}"

        @aa.govern
        def write(self, path: str, data: bytes) -> int:
            return len(data)

    f = Files()
    assert await f.run("ls") == "/tmp: ls"
    with pytest.raises(aa.PolicyDenied):
        await f.run("rm -rf /")
    assert f.write("/tmp/x", b"abc") == 3
    recs = records(embedded)
    assert recs[0]["action"]["args"] == {"cmd": "ls"}  # no `self`
    assert recs[-1]["action"]["args"]["data"] == "b'abc'"


def test_errors_are_recorded_and_reraised(embedded: Path) -> None:
    @aa.govern
    def flaky() -> None:
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError):
        flaky()
    done = records(embedded)[-1]
    assert done["outcome"]["status"] == "error" and done["outcome"]["error"] == "TimeoutError"


def test_argument_mapping_and_redaction(embedded: Path) -> None:
    @aa.govern(args=["url"])
    def fetch(url: str, headers: dict) -> str:
        return url

    @aa.govern(args=lambda user, api_key, **kw: {"user": user, "api_key": api_key, "n": len(kw)})
    def login(user: str, api_key: str, **kw: object) -> bool:
        return True

    @aa.govern(redact=["ssn"])
    def lookup(name: str, ssn: str, password: str) -> str:
        return name

    fetch("https://example.com", {"Authorization": "Bearer x"})
    login("ann", "sk-live-123", a=1)
    lookup("ann", "123-45-6789", "hunter2")
    args = [r["action"]["args"] for r in records(embedded)[::2]]
    assert args[0] == {"url": "https://example.com"}
    assert args[1] == {"user": "ann", "api_key": "[redacted]", "n": 1}
    assert args[2] == {"name": "ann", "ssn": "[redacted]", "password": "[redacted]"}
    assert "hunter2" not in embedded.read_text() and "sk-live-123" not in embedded.read_text()


def test_governed_block_and_explicit_decide(embedded: Path) -> None:
    with aa.governed("deploy", env="prod") as d:
        assert d.allowed
    with pytest.raises(aa.PolicyDenied), aa.governed("shell", cmd="rm -rf /"):
        pytest.fail("the block must not run")
    d = aa.decide({"kind": "file_access", "path": "/etc/passwd", "access": "write"})
    assert (d.effect, d.reason, d.policy_ids) == ("deny", "forbidden", ["no-etc-writes"])
    d = aa.decide({"kind": "http_request", "method": "GET", "scheme": "https", "host": "example.com", "port": 443, "path": "/"})
    assert d.allowed
    aa.report({"kind": "http_request", "method": "GET", "scheme": "https", "host": "example.com", "port": 443, "path": "/"},
              d, ok=True, duration_s=0.01, result_size=10)
    with pytest.raises(aa.InvalidAction):
        aa.decide({"kind": "teleport"})


def test_model_usage_is_charged_to_budgets(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "p.cedar").write_text("permit(principal, action, resource);")
    (policy / "budgets.toml").write_text('[[budget]]\nname = "llm"\nkinds = ["model_call"]\nwindow = "day"\ncost_usd = 0.01\n')
    aa.init(policy=policy, agent_id="spender", audit_file=tmp_path / "a.jsonl")

    class Usage:  # the shape of openai.types.CompletionUsage
        prompt_tokens = 1000
        completion_tokens = 800

    class ChatCompletion:
        usage = Usage()

    with aa.model_call("openai", "gpt-4o") as call:
        call.record(ChatCompletion())
    assert call.usage == {"input_tokens": 1000, "output_tokens": 800}
    # 1000 x $2.50/M + 800 x $10/M = $0.0105 ≥ $0.01: the next call is denied by the budget.
    with pytest.raises(aa.PolicyDenied) as exc, aa.model_call("openai", "gpt-4o"):
        pass
    assert exc.value.reason == "budget_exceeded" and exc.value.budget == "llm"
    anthropic_message = {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 7}}
    assert aa.extract_usage(anthropic_message) == {"input_tokens": 17, "output_tokens": 5}


def test_bad_configuration_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(aa.ConfigError, match="give a gateway"):
        aa.init(agent_id="x")
    with pytest.raises(aa.ConfigError, match="agent_id is required"):
        aa.init(policy=PERMISSIVE)
    with pytest.raises(aa.ConfigError, match="does not exist"):
        aa.init(policy=tmp_path / "nope", agent_id="x")
    with pytest.raises(aa.ConfigError, match="needs the agent's token"):
        aa.init(gateway_url="http://127.0.0.1:9", agent_id="x")
    with pytest.raises(aa.ConfigError, match="must start with http"):
        aa.init(gateway_url="ftp://x", agent_id="x", token="t")
    with pytest.raises(aa.ConfigError, match="mode must be"):
        aa.init(policy=PERMISSIVE, agent_id="x", mode="sideways")
    with pytest.raises(aa.ConfigError, match="control character"):
        aa.init(policy=PERMISSIVE, agent_id="bad\nid")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.cedar").write_text("permit(principal, action, resource)\nwhen { context.nope };")
    with pytest.raises(aa.ConfigError, match=r"p\.cedar:2:8"):
        aa.init(policy=broken, agent_id="x")


def test_env_vars_configure_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AA_POLICY", str(PERMISSIVE))
    monkeypatch.setenv("AA_AGENT_ID", "from-env")
    monkeypatch.setenv("AA_AUDIT_FILE", str(tmp_path / "env.jsonl"))
    assert aa.governor().mode == "embedded"
    assert aa.governor().agent_id == "from-env"


def test_the_embedded_audit_file_verifies(embedded: Path) -> None:
    @aa.govern
    def t(i: int) -> int:
        return i

    for i in range(20):
        t(i)
    aa.shutdown()
    out = subprocess.run([AASM, "--json", "audit", "verify", str(embedded), "--strict"], capture_output=True, text=True)
    report = json.loads(out.stdout)["data"]
    assert out.returncode == 0 and report["records"] == 40 and report["sealed_seq"] == 40, out.stdout


def test_threads_share_one_governor_safely(embedded: Path) -> None:
    import threading

    @aa.govern
    def work(i: int) -> int:
        return i

    threads = [threading.Thread(target=lambda: [work(i) for i in range(50)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(records(embedded)) == 8 * 50 * 2
    assert ROOT.exists()
