"""Real parts shared by the Python-driven test suites (proxy, eBPF): a test CA and leaf
certificates made with openssl, a real HTTPS upstream (upstream.py), and a real `aasm gateway`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
AASM = os.environ.get("AASM") or str(Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/aa/target")) / "debug" / "aasm")


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


class Gateway:
    def __init__(self, db: Path, policy: Path, admin: str) -> None:
        self.admin = admin
        env = dict(os.environ, AA_ADMIN_TOKEN=admin, RUST_LOG="warn")
        self.proc = subprocess.Popen([AASM, "gateway", "--listen", "127.0.0.1:0", "--db", str(db), "--policy", str(policy)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().removeprefix("listening on ")

    def api(self, method: str, path: str, body: object = None, token: str | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin}")
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
