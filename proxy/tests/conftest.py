"""Fixtures for the proxy tests: a test CA and real HTTPS upstreams, a real `aasm gateway`,
and a real `aasm proxy` in front of them."""

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
        # The proxy's output goes to files, never to a pipe nobody reads while it runs: a full
        # pipe would block the proxy on its next log line.
        self.log = d / "proxy.log"
        out_file = d / "proxy.out"
        with open(self.log, "w") as err, open(out_file, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env)
        deadline = time.monotonic() + 30
        while "listening on" not in out_file.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca = d / "ca.pem"

    def status(self) -> dict:
        with urllib.request.urlopen(urllib.request.Request(self.url + "/_aa/status"), timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        return self.log.read_text()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway, upstream: Upstream) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("proxy"), gateway, upstream, "--default-agent", "proxy-default",
              "--passthrough", "127.0.0.1", "--upstream-timeout", "2")
    yield p
    p.stop()


def curl(proxy: Proxy, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "15", "--proxy", proxy.url, "--cacert", str(proxy.ca), *args, url],
                          capture_output=True, text=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used a proxy shows the end of that proxy's log."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Proxy):
                tail = value.log.read_text().splitlines()[-60:]
                report.sections.append(("proxy log (last 60 lines)", "\n".join(tail)))
    return report
