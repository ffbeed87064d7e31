"""The kernel layer on the real kernel: observation scoped to a cgroup, records at a real
gateway, enforcement (connect refused, exec killed, Landlock), and a deliberate bypass."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import AASM, AGENT, Attached, Gateway, Listener, Upstream, ebpf_records, wait_for


def action(r: dict) -> dict:
    return r["action"]


def status_when(a: Attached, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """The loader's status once pred holds (it is written every second)."""
    deadline = time.monotonic() + timeout
    status = a.status()
    while not pred(status) and time.monotonic() < deadline:
        time.sleep(0.3)
        status = a.status()
    return status


def test_programs_attach_and_status_reports_them(attached: Attached) -> None:
    assert "FAIL" not in attached.banner, attached.banner
    out = subprocess.run([AASM, "--json", "ebpf", "status", "--dir", str(attached.status_file.parent)],
                         capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)["data"]["attached"][0]
    names = {p["name"]: p["attached"] for p in status["programs"]}
    for name in ("aa_exec", "aa_open", "aa_openat", "aa_openat2", "aa_write_path", "aa_mkdirat", "aa_unlink",
                 "aa_unlinkat", "aa_rename", "aa_renameat", "aa_link", "aa_linkat", "aa_symlinkat",
                 "aa_connect4", "aa_connect6", "aa_sendmsg4", "aa_sendmsg6", "aa_io_uring",
                 "aa_ssl_write", "aa_ssl_read", "aa_ssl_read_ret", "aa_ssl_read_ex", "aa_ssl_read_ex_ret"):
        assert names.get(name) is True, status["programs"]
    assert status["agent_id"] == AGENT and status["lost"] == 0
    assert status["exec_rules"] >= 1 and status["connect_rules"] >= 1


def test_exec_open_unlink_connect_and_tls_inside_the_cgroup_are_recorded_and_outside_not(
        attached: Attached, gateway: Gateway, allowed_port: Listener, upstream: Upstream, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    inside, outside = tmp_path / f"in-{tag}.txt", tmp_path / f"out-{tag}.txt"
    script = textwrap.dedent("""
        /bin/true
        echo data > {f}
        rm {f}
        python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port})).close()'
        curl -sS --noproxy '*' --cacert {ca} {url}/{path}
    """)
    # Outside first: the ring buffer is ordered, so once the inside records are in, anything
    # the outside run produced would be in too.
    subprocess.run(["sh", "-c", script.format(f=outside, port=allowed_port.port, ca=upstream.ca, url=upstream.url,
                                              path=f"outside-{tag}")], check=True, capture_output=True)
    r = attached.run("sh", "-c", script.format(f=inside, port=allowed_port.port, ca=upstream.ca, url=upstream.url,
                                                path=f"inside-{tag}"))
    assert r.returncode == 0, r.stderr
    assert f"inside-{tag}" in r.stdout

    # The record names the file that ran (/bin is a symlink on merged-/usr systems).
    true = os.path.realpath("/bin/true")
    exec_true = wait_for(gateway, lambda r: action(r) == {"kind": "process_exec", "path": true, "argv": ["/bin/true"]})
    assert exec_true["layer"] == "ebpf" and exec_true["agent_id"] == AGENT
    assert exec_true["decision"]["effect"] == "allow"
    wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(inside), "access": "write"})
    wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(inside), "access": "unlink"})
    wait_for(gateway, lambda r: action(r) == {"kind": "net_connect", "addr": "127.0.0.1", "port": allowed_port.port,
                                              "proto": "tcp"})
    tls = wait_for(gateway, lambda r: action(r).get("kind") == "http_request" and action(r).get("path") == f"/inside-{tag}")
    assert action(tls) == {"kind": "http_request", "method": "GET", "scheme": "https", "host": "localhost",
                           "port": upstream.port, "path": f"/inside-{tag}"}

    blob = json.dumps(ebpf_records(gateway))
    assert str(outside) not in blob and f"outside-{tag}" not in blob


def test_a_forbidden_port_is_refused_inside_with_eperm_and_reachable_outside(
        attached: Attached, gateway: Gateway, forbidden_port: Listener) -> None:
    probe = ("import socket, sys\n"
             "s = socket.socket()\n"
             "try:\n"
             f"    s.connect(('127.0.0.1', {forbidden_port.port})); print('connected')\n"
             "except OSError as e:\n"
             "    print('errno', e.errno)\n")
    inside = attached.run(sys.executable, "-c", probe)
    assert inside.stdout.strip() == f"errno {errno.EPERM}", inside
    before = forbidden_port.accepted
    outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert outside.stdout.strip() == "connected"
    time.sleep(0.2)
    assert forbidden_port.accepted == before + 1
    rec = wait_for(gateway, lambda r: action(r).get("kind") == "net_connect" and action(r).get("port") == forbidden_port.port)
    assert rec["decision"]["effect"] == "deny"
    assert rec["decision"]["policy_ids"] == ["no-forbidden-port"]
    assert "refused in the kernel" in rec["decision"]["message"]
    assert status_when(attached, lambda s: s["refused"] >= 1)["refused"] >= 1


def test_a_forbidden_binary_is_killed_before_it_does_its_work(attached: Attached, gateway: Gateway, work: Path) -> None:
    marker = work / "marker"
    marker.unlink(missing_ok=True)
    r = attached.run(str(work / "evil"))
    assert r.returncode == -9, r
    assert not marker.exists(), "the forbidden binary ran"
    # A script: the record names the script; the argv is the one the kernel built for its
    # interpreter.
    rec = wait_for(gateway, lambda r: action(r).get("kind") == "process_exec"
                   and action(r).get("path") == str(work / "evil")
                   and action(r).get("argv", [])[-1:] == [str(work / "evil")])
    assert rec["decision"]["effect"] == "deny"
    assert rec["decision"]["policy_ids"] == ["no-evil-binary"]
    assert "exec killed in the kernel" in rec["decision"]["message"]
    # The same binary outside the cgroup runs: the kill is scoped, and the test can fail.
    subprocess.run([str(work / "evil")], check=True)
    assert marker.exists()
    marker.unlink()


def test_a_landlock_forbidden_write_fails_with_eacces(attached: Attached, gateway: Gateway, work: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    ok, denied = work / "allowed" / f"ok-{tag}", work / "forbidden" / f"no-{tag}"
    probe = (f"open({str(ok)!r}, 'w').write('x')\n"
             "try:\n"
             f"    open({str(denied)!r}, 'w')\n"
             "    print('written')\n"
             "except OSError as e:\n"
             "    print('errno', e.errno)\n")
    r = attached.run(sys.executable, "-c", probe, allow_write=(work / "allowed",))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"errno {errno.EACCES}"
    assert ok.exists() and not denied.exists()
    rec = wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(denied), "access": "write"})
    assert rec["decision"]["effect"] == "deny"
    assert rec["decision"]["policy_ids"] == ["no-writes-to-forbidden"]


def test_a_deliberate_bypass_of_sdk_and_proxy_is_still_caught(
        attached: Attached, gateway: Gateway, forbidden_port: Listener, upstream: Upstream, work: Path,
        tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    touched = tmp_path / f"bypass-{tag}"
    # The agent ignores HTTPS_PROXY and the SDK: a raw socket, subprocess, os.system, and its
    # own TLS client (Python's ssl over libssl).
    script = textwrap.dedent(f"""
        import http.client, os, socket, ssl, subprocess
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(("127.0.0.1", {forbidden_port.port}))
            print("raw connect went through")
        except PermissionError:
            print("raw connect refused")
        subprocess.run(["/bin/echo", "via-subprocess-{tag}"], check=True)
        os.system("touch {touched}")
        ctx = ssl.create_default_context(cafile={str(upstream.ca)!r})
        c = http.client.HTTPSConnection("localhost", {upstream.port}, context=ctx)
        c.request("GET", "/bypass-{tag}")
        c.getresponse().read()
        subprocess.run([{str(work / "evil")!r}])
    """)
    r = attached.run(sys.executable, "-c", script, env={"HTTPS_PROXY": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "raw connect refused" in r.stdout and f"via-subprocess-{tag}" in r.stdout
    assert not (work / "marker").exists()
    wait_for(gateway, lambda r: action(r).get("kind") == "process_exec" and f"via-subprocess-{tag}" in action(r).get("argv", []))
    wait_for(gateway, lambda r: action(r).get("kind") == "process_exec"
             and action(r).get("path") == os.path.realpath("/bin/sh")
             and any(a.startswith("touch ") for a in action(r).get("argv", [])))
    wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(touched), "access": "write"})
    wait_for(gateway, lambda r: action(r).get("kind") == "http_request" and action(r).get("path") == f"/bypass-{tag}")


def test_tls_of_node_with_its_own_openssl_is_seen(
        attached: Attached, gateway: Gateway, upstream: Upstream) -> None:
    """/usr/bin/node links OpenSSL statically and exports SSL_write: the layer finds it among the
    executables started in the cgroup and hooks it, so its TLS plaintext is recorded too."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("LOUD SKIP: no node on this machine")
    tag = uuid.uuid4().hex[:8]
    script = ("const https = require('https');"
              f"https.get({{host: 'localhost', port: {upstream.port}, path: '/node-{tag}'}}, r => {{"
              "r.resume(); r.on('end', () => console.log('status', r.statusCode)); });")
    # The first run is the one whose exec reveals node; the uprobe is attached asynchronously,
    # so a run after it is the one that must be seen.
    first = attached.run(node, "-e", "0", env={"PATH": "/usr/bin:/bin"})
    assert first.returncode == 0, first.stderr
    deadline = time.monotonic() + 15
    while os.path.realpath(node) not in attached.status().get("tls_binaries", []) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.path.realpath(node) in attached.status()["tls_binaries"], attached.status()
    r = attached.run(node, "-e", script, env={"PATH": "/usr/bin:/bin", "NODE_EXTRA_CA_CERTS": str(upstream.ca)})
    assert r.returncode == 0 and "status 200" in r.stdout, (r.stdout, r.stderr)
    rec = wait_for(gateway, lambda r: action(r).get("kind") == "http_request" and action(r).get("path") == f"/node-{tag}")
    assert action(rec)["host"] == "localhost" and action(rec)["port"] == upstream.port


def test_a_full_ring_buffer_counts_lost_events(gateway: Gateway, tmp_path: Path) -> None:
    # One page of ring buffer and a burst of opens: the kernel drops what does not fit, and the
    # counter says so (never silently zero).
    a = Attached(f"aa-test-lost-{uuid.uuid4().hex[:6]}", gateway, tmp_path / "status.json", "--ring-bytes", "4096")
    try:
        # Write opens: never filtered in the kernel (repeated read-only opens would be).
        burst = "import os\nfor _ in range(20000):\n    os.close(os.open('/dev/null', os.O_WRONLY))\n"
        r = a.run(sys.executable, "-c", burst)
        assert r.returncode == 0, r.stderr
        status = status_when(a, lambda s: s["lost"] > 0)
        assert status["lost"] > 0, status
        assert status["events"] + status["lost"] >= 20000
    finally:
        out = a.stop()
    assert "lost" in out


def test_attach_without_a_cgroup_directory_fails_clearly(tmp_path: Path) -> None:
    r = subprocess.run([AASM, "ebpf", "attach", "--cgroup", str(tmp_path), "--policy", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "not a cgroup v2 directory" in r.stderr


def test_the_kill_is_in_place_before_the_first_event_is_read(attached: Attached, work: Path) -> None:
    # Many forbidden execs in a row: every one is killed, none creates the marker.
    script = f"for i in $(seq 50); do {work}/evil; done; echo done"
    r = attached.run("sh", "-c", script)
    assert "done" in r.stdout
    assert not (work / "marker").exists()
