"""Fixtures for the eBPF tests, on the real kernel as root: a real `aasm gateway`, a test
cgroup v2 with `aasm ebpf attach` on it, a real HTTPS server, and helpers to run commands inside
the cgroup (`aasm ebpf exec`) or outside it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "testsupport"))
from aa_testing import AASM, Gateway, Upstream, make_ca, make_leaf, start_upstream  # noqa: E402

ADMIN = "ebpf-tests-admin-token-0123456789"
AGENT = "ebpf-agent"


def cgroup2_mount() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        f = line.split()
        if len(f) >= 3 and f[2] == "cgroup2":
            return Path(f[1])
    raise RuntimeError("no cgroup2 mount in /proc/mounts")


@pytest.fixture(scope="session", autouse=True)
def as_root() -> None:
    # Not a kernel feature: the eBPF tests must run as root, and fail loudly otherwise.
    assert os.geteuid() == 0, "the eBPF tests load BPF programs and need root (run `make test` as root)"


class Listener:
    """A TCP server on loopback that accepts and closes, counting connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()


@pytest.fixture(scope="session")
def allowed_port() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.sock.close()


@pytest.fixture(scope="session")
def forbidden_port() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.sock.close()


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("work")
    (d / "allowed").mkdir()
    (d / "forbidden").mkdir()
    evil = d / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {d}/marker\n")
    evil.chmod(0o755)
    # A forbidden ELF binary: a copy of touch (its own inode), so running it with a path
    # creates that file — the marker that proves it ran.
    shutil.copy("/usr/bin/touch", d / "evil-bin")
    return d


@pytest.fixture(scope="session")
def policy(tmp_path_factory: pytest.TempPathFactory, work: Path, forbidden_port: Listener) -> Path:
    d = tmp_path_factory.mktemp("policy")
    (d / "base.cedar").write_text(f"""
@id("allow-all")
permit (principal, action, resource);

@id("no-forbidden-port")
@reason("this port is off limits")
forbid (principal, action == Action::"net_connect", resource)
when {{ context.port == {forbidden_port.port} }};

@id("no-evil-binary")
@reason("this binary must never run")
forbid (principal, action == Action::"process_exec", resource)
when {{ context.path == "{work}/evil" }};

@id("no-evil-elf")
@reason("this ELF binary must never run, under any name")
forbid (principal, action == Action::"process_exec", resource)
when {{ context.path == "{work}/evil-bin" }};

@id("no-writes-to-forbidden")
@reason("the forbidden directory is read-only for agents")
forbid (principal, action == Action::"file_access", resource)
when {{ context.access == "write" && context.path like "{work}/forbidden/*" }};
""")
    return d


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "upstream-ca")
    make_leaf(d, "upstream-ca", "upstream")
    u = start_upstream(d, "upstream-ca", "upstream")
    yield u
    u.proc.kill()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, policy: Path) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("gw") / "gw.db", policy, ADMIN)
    yield g
    g.stop()


class Attached:
    """`aasm ebpf attach` on a fresh cgroup, reporting to the gateway."""

    def __init__(self, name: str, gateway: Gateway, status_file: Path, *extra: str) -> None:
        self.cgroup = cgroup2_mount() / name
        self.status_file = status_file
        env = dict(os.environ, AA_TOKEN=ADMIN, RUST_LOG="info")
        # The log goes to a file: a pipe nobody reads could fill and stall the loader.
        self.log = status_file.with_suffix(".log")
        args = [AASM, "ebpf", "attach", "--cgroup", str(self.cgroup), "--gateway", gateway.url,
                "--agent", AGENT, "--status-file", str(status_file), *extra]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        lines = [first]
        assert first.startswith("attached to"), (first, self.log.read_text())
        # The program table follows; read it for the test report.
        while not lines[-1].startswith("  enforcement"):
            lines.append(self.proc.stdout.readline())
        self.banner = "".join(lines)

    def status(self) -> dict:
        return json.loads(self.status_file.read_text())

    def run(self, *cmd: str, allow_write: tuple[Path, ...] = (), **kw: object) -> subprocess.CompletedProcess[str]:
        """Runs cmd inside the cgroup (joined before exec), with an optional Landlock ruleset."""
        lw = [a for p in allow_write for a in ("--allow-write", str(p))]
        return subprocess.run([AASM, "ebpf", "exec", "--cgroup", str(self.cgroup), *lw, "--", *cmd],
                              capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        return out + self.log.read_text()


@pytest.fixture(scope="module")
def attached(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Attached]:
    name = f"aa-test-{os.getpid()}-{request.module.__name__.rsplit('.', 1)[-1]}"
    a = Attached(name, gateway, tmp_path_factory.mktemp("status") / "status.json")
    yield a
    a.stop()


def wait_for(gateway: Gateway, pred: Callable[[dict], bool], timeout: float = 15.0) -> dict:
    """The first `layer: ebpf` record of the test agent matching pred, waiting for delivery."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = ebpf_records(gateway)
        for r in seen:
            if pred(r):
                return r
        time.sleep(0.2)
    kinds = sorted({json.dumps(r["action"])[:160] for r in seen if "in-" in json.dumps(r["action"]) or r["action"]["kind"] != "file_access"})
    raise AssertionError(f"no matching ebpf record among {len(seen)}: {kinds}")


def ebpf_records(gateway: Gateway) -> list[dict]:
    out: list[dict] = []
    query = f"/v1/audit?layer=ebpf&agent={AGENT}&limit=1000"
    cursor = None
    while True:
        page = gateway.api("GET", query + (f"&cursor={cursor}" if cursor is not None else ""))
        out.extend(page["records"])  # type: ignore[index]
        cursor = page.get("next_cursor")  # type: ignore[union-attr]
        if cursor is None:
            return out
