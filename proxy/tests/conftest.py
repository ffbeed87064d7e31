"""Fixtures for the proxy tests: a test CA and real HTTPS upstreams, a real `aasm gateway`,
and a real `aasm proxy` in front of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "testsupport"))
from aa_testing import AASM, Gateway, Upstream, free_port, make_ca, make_leaf, start_upstream  # noqa: E402

ADMIN = "proxy-tests-admin-token-0123456789"


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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("gw") / "gw.db", HERE / "policy", ADMIN)
    yield g
    g.stop()


class Proxy:
    def __init__(self, d: Path, gateway: Gateway, upstream: Upstream, *extra: str) -> None:
        self.dir = d
        self.port = free_port()
        env = dict(os.environ, AA_TOKEN=ADMIN, RUST_LOG="warn")
        args = [AASM, "proxy", "run", "--ca-dir", str(d), "--state-dir", str(d / "state"), "--listen", f"127.0.0.1:{self.port}",
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
