"""Fixtures for the proxy tests: a test CA and real HTTPS upstreams, a real `aasm gateway`,
and a real `aasm proxy` in front of them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
AASM = os.environ.get("AASM") or str(Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/aa/target")) / "debug" / "aasm")
ADMIN = "proxy-tests-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_leaf(d: Path, ca: str, name: str) -> None:
    (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@dataclass
class Upstream:
    port: int
    ca: Path
    proc: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def start_upstream(d: Path, ca: str, leaf: str) -> Upstream:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), str(port), str(d / f"{leaf}.pem"), str(d / f"{leaf}.key")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("listening")
    return Upstream(port, d / f"{ca}.pem", proc)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "upstream-ca")
    make_leaf(d, "upstream-ca", "upstream")
    make_ca(d, "rogue-ca")  # a CA nobody trusts
    make_leaf(d, "rogue-ca", "rogue")
    return d


@pytest.fixture(scope="session")
def upstream(certs: Path) -> Iterator[Upstream]:
    u = start_upstream(certs, "upstream-ca", "upstream")
    yield u
    u.proc.kill()


@pytest.fixture(scope="session")
def rogue(certs: Path) -> Iterator[Upstream]:
    u = start_upstream(certs, "rogue-ca", "rogue")
    yield u
    u.proc.kill()


class Gateway:
    def __init__(self, db: Path) -> None:
        env = dict(os.environ, AA_ADMIN_TOKEN=ADMIN, RUST_LOG="warn")
        self.proc = subprocess.Popen([AASM, "gateway", "--listen", "127.0.0.1:0", "--db", str(db), "--policy", str(HERE / "policy")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().removeprefix("listening on ")

    def api(self, method: str, path: str, body: object = None, token: str = ADMIN) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def records(self) -> list[dict]:
        return self.api("GET", "/v1/audit?limit=1000")["records"]  # type: ignore[index]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("gw") / "gw.db")
    yield g
    g.stop()


class Proxy:
    def __init__(self, d: Path, gateway: Gateway, upstream: Upstream, *extra: str) -> None:
        self.dir = d
        self.port = free_port()
        env = dict(os.environ, AA_TOKEN=ADMIN, RUST_LOG="warn")
        args = [AASM, "proxy", "run", "--ca-dir", str(d), "--listen", f"127.0.0.1:{self.port}",
                "--gateway", gateway.url, "--upstream-ca", str(upstream.ca),
                "--llm", f"localhost:{upstream.port}=openai", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on"), (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca = d / "ca.pem"

    def status(self) -> dict:
        with urllib.request.urlopen(urllib.request.Request(self.url + "/_aa/status"), timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        return err


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway, upstream: Upstream) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("proxy"), gateway, upstream, "--default-agent", "proxy-default",
              "--passthrough", "127.0.0.1", "--upstream-timeout", "2")
    yield p
    p.stop()


def curl(proxy: Proxy, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "15", "--proxy", proxy.url, "--cacert", str(proxy.ca), *args, url],
                          capture_output=True, text=True)
