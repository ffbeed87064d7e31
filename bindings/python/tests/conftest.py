"""Fixtures: a real `aasm gateway` process, and a clean agent_assembly runtime per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
AASM = os.environ.get("AASM") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/aa/target")) / "debug" / "aasm"
)
ADMIN = "python-tests-admin-token-0123456789"
PERMISSIVE = ROOT / "examples" / "policies" / "permissive"


class Gateway:
    """A running `aasm gateway`."""

    def __init__(self, db: Path, policy: Path | None) -> None:
        self.db = db
        self.policy = policy
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.start(policy)

    def start(self, policy: Path | None = None, port: int = 0) -> None:
        args = [AASM, "gateway", "--listen", f"127.0.0.1:{port}", "--db", str(self.db),
                "--checkpoint-every", "100"]
        if policy is not None:
            args += ["--policy", str(policy)]
        env = dict(os.environ, AA_ADMIN_TOKEN=ADMIN, RUST_LOG="warn")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = line.strip().removeprefix("listening on ")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def request(self, method: str, path: str, body: object = None, token: str = ADMIN) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def register(self, agent_id: str, team: str | None = None) -> str:
        out = self.request("POST", "/v1/agents", {"agent_id": agent_id, "team": team})
        return out["token"]

    def records(self) -> list[dict]:
        out: list[dict] = []
        cursor = 0
        while True:
            page = self.request("GET", f"/v1/audit?limit=1000&cursor={cursor}")
            out += page["records"]
            if "next_cursor" not in page:
                return out
            cursor = page["next_cursor"]

    def verify(self) -> dict:
        return self.request("GET", "/v1/audit/verify")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=20)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "gw.db", PERMISSIVE)
    yield gw
    gw.stop(signal.SIGKILL)


@pytest.fixture(autouse=True)
def clean_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith("AA_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AA_SPILL_DIR", str(tmp_path / "spill"))
    import agent_assembly

    yield
    agent_assembly.shutdown(timeout=2.0)


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    """An embedded-mode runtime on the permissive example policy; returns its audit file."""
    import agent_assembly as aa

    audit = tmp_path / "audit.jsonl"
    aa.init(policy=PERMISSIVE, agent_id="py-agent", audit_file=audit)
    return audit


def records(audit: Path) -> list[dict]:
    """The records of an audit file (after a flush), checkpoints left out."""
    import agent_assembly as aa

    aa.governor().flush()
    return [json.loads(line) for line in audit.read_text().splitlines() if not line.startswith('{"checkpoint"')]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (a separate process)."""
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), text=True,
                          capture_output=True, timeout=timeout)
