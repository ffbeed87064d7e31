"""The kernel layer tried as an attacker would: every way to start a forbidden binary, every
syscall that changes a file, and UDP — each bypass next to a control doing the same thing the
ordinary way, on the real kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import Attached, Gateway, wait_for


def action(r: dict) -> dict:
    return r["action"]


# ---------------------------------------------------------------------------------------------
# Exec: decided on the file that runs (identity: device + inode), not on the string passed.
# `evil-bin` is a copy of touch that the policy forbids by its path; each way of starting it is
# given a marker path to create: the marker must never appear, and the attempt is recorded.

EXEC_WAYS = {
    # The control: the path the policy names, through execve.
    "execve by its path": """
        os.execv(EVIL, [EVIL, MARKER])
    """,
    # Another name: a symlink.
    "execve through a symlink with another name": """
        link = os.path.join(TMP, "innocent-symlink")
        os.symlink(EVIL, link)
        os.execv(link, [link, MARKER])
    """,
    # Another name: a hard link (same inode, different path).
    "execve through a hard link with another name": """
        link = os.path.join(WORK, "innocent-hardlink-" + TAG)
        os.link(EVIL, link)
        try:
            os.execv(link, [link, MARKER])
        finally:
            os.unlink(link)
    """,
    # fexecve: Python's os.execve(fd, ...) is execveat(fd, "", ..., AT_EMPTY_PATH).
    "fexecve (execveat AT_EMPTY_PATH) on an fd": """
        fd = os.open(EVIL, os.O_RDONLY)
        os.execve(fd, ["innocent", MARKER], dict(os.environ))
    """,
    # execveat relative to a directory fd, by the raw syscall.
    "execveat relative to a dirfd": """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        dirfd = os.open(WORK, os.O_RDONLY | os.O_DIRECTORY)
        argv = (ctypes.c_char_p * 3)(b"innocent", MARKER.encode(), None)
        envp = (ctypes.c_char_p * 1)(None)
        libc.syscall(322, dirfd, b"evil-bin", argv, envp, 0)  # SYS_execveat
        print("execveat failed", ctypes.get_errno())
    """,
    # A #! script whose interpreter is the forbidden binary.
    "a script whose #! interpreter is the forbidden binary": """
        script = os.path.join(TMP, "innocent.sh")
        with open(script, "w") as f:
            f.write("#!" + EVIL + " " + MARKER + "\\n")
        os.chmod(script, 0o755)
        os.execv(script, [script])
    """,
}


def exec_script(way: str, work: Path, marker: Path, tmp: Path, tag: str) -> str:
    head = (f"import os\nEVIL = {str(work / 'evil-bin')!r}\nWORK = {str(work)!r}\n"
            f"MARKER = {str(marker)!r}\nTMP = {str(tmp)!r}\nTAG = {tag!r}\n")
    return head + textwrap.dedent(EXEC_WAYS[way])


@pytest.mark.parametrize("way", list(EXEC_WAYS))
def test_a_forbidden_binary_never_runs_whichever_way_it_is_started(
        attached: Attached, gateway: Gateway, work: Path, tmp_path: Path, way: str) -> None:
    tag = uuid.uuid4().hex[:8]
    marker = work / f"marker-{tag}"
    inside = tmp_path / "inside"
    inside.mkdir()
    r = attached.run(sys.executable, "-c", exec_script(way, work, marker, inside, tag))
    assert r.returncode == -9, (way, r)
    time.sleep(0.2)
    assert not marker.exists(), f"the forbidden binary ran ({way})"
    rec = wait_for(gateway, lambda r: action(r).get("kind") == "process_exec"
                   and str(marker) in action(r).get("argv", []))
    assert rec["decision"]["effect"] == "deny", rec
    assert rec["decision"]["policy_ids"] == ["no-evil-elf"], rec
    assert "exec killed in the kernel" in rec["decision"]["message"]
    # The record names the file that would have run by the name the kernel resolved (a hard
    # link is another name of the same inode; a script is named itself).
    if "hard link" in way:
        assert action(rec)["path"] == str(work / f"innocent-hardlink-{tag}"), rec
    elif "script" in way:
        assert action(rec)["path"] == str(inside / "innocent.sh"), rec
    else:
        assert action(rec)["path"] == str(work / "evil-bin"), rec

    # The control, outside the cgroup: the same way works (so the test above can fail).
    outside = tmp_path / "outside"
    outside.mkdir()
    r = subprocess.run([sys.executable, "-c", exec_script(way, work, marker, outside, tag + "o")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (way, r)
    assert marker.exists(), f"the {way} control did not run the binary"
    marker.unlink()


def test_a_renamed_forbidden_binary_is_still_killed(attached: Attached, gateway: Gateway, work: Path) -> None:
    # The maps were compiled when the layer attached; the rename comes after. The kill follows
    # the inode, not the name.
    tag = uuid.uuid4().hex[:8]
    marker = work / f"marker-{tag}"
    evil, renamed = work / "evil-bin", work / f"renamed-{tag}"
    os.rename(evil, renamed)
    try:
        r = attached.run(str(renamed), str(marker))
        assert r.returncode == -9, r
        assert not marker.exists(), "the renamed forbidden binary ran"
        rec = wait_for(gateway, lambda r: action(r).get("kind") == "process_exec"
                       and str(marker) in action(r).get("argv", []))
        assert action(rec)["path"] == str(renamed)
        assert "exec killed in the kernel" in rec["decision"]["message"]
        assert rec["decision"]["policy_ids"] == ["no-evil-elf"]
        # A copy is a new file: not the identity the policy named (it runs; recorded as allowed).
        copy = work / f"copy-{tag}"
        shutil.copy(renamed, copy)
        ok = attached.run(str(copy), str(marker))
        assert ok.returncode == 0 and marker.exists(), ok
        marker.unlink()
        copy.unlink()
    finally:
        os.rename(renamed, evil)


def test_an_allowed_binary_started_through_fexecve_is_recorded_by_its_real_path(
        attached: Attached, gateway: Gateway, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    script = ("import os\n"
              "fd = os.open('/bin/echo', os.O_RDONLY)\n"
              f"os.execve(fd, ['echo', 'fexecve-{tag}'], dict(os.environ))\n")
    r = attached.run(sys.executable, "-c", script)
    assert r.returncode == 0 and f"fexecve-{tag}" in r.stdout, r
    rec = wait_for(gateway, lambda r: action(r).get("kind") == "process_exec"
                   and f"fexecve-{tag}" in action(r).get("argv", []))
    assert action(rec) == {"kind": "process_exec", "path": os.path.realpath("/bin/echo"),
                           "argv": ["echo", f"fexecve-{tag}"]}
    assert rec["decision"]["effect"] == "allow"



# ---------------------------------------------------------------------------------------------
# Files: every syscall that creates, writes, truncates, renames, links or deletes, by its raw
# number (libc would pick the *at variant), recorded as file_access with the right access.

SYSCALLS = {"open": 2, "creat": 85, "openat": 257, "openat2": 437, "rename": 82, "renameat": 264,
            "renameat2": 316, "link": 86, "linkat": 265, "symlink": 88, "symlinkat": 266,
            "truncate": 76, "unlink": 87, "unlinkat": 263, "rmdir": 84, "mkdir": 83, "mkdirat": 258}
AT_FDCWD = -100

# name -> (python body using sc(name, *args) and D (a directory, cwd); expected records as
# (path relative to D, access)). Relative names and dirfds are resolved by the layer.
FILE_WAYS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "openat (control: the ordinary way)": ("os.close(os.open('ctl', os.O_WRONLY | os.O_CREAT))",
                                           [("ctl", "write")]),
    "open": ("os.close(sc('open', b'a', os.O_WRONLY | os.O_CREAT, 0o644))", [("a", "write")]),
    "open read-only": ("open('r', 'w').close(); os.close(sc('open', b'r', os.O_RDONLY, 0))", [("r", "read")]),
    "creat": ("os.close(sc('creat', b'c', 0o644))", [("c", "write")]),
    "openat with a dirfd": ("os.close(sc('openat', DFD, b'at', os.O_WRONLY | os.O_CREAT, 0o644))",
                            [("sub/at", "write")]),
    "openat2": ("how = (ctypes.c_uint64 * 3)(os.O_WRONLY | os.O_CREAT, 0o644, 0)\n"
                "os.close(sc('openat2', AT_FDCWD, b'o2', ctypes.byref(how), 24))", [("o2", "write")]),
    "rename": ("open('r1', 'w').close(); sc('rename', b'r1', b'r2')", [("r1", "unlink"), ("r2", "write")]),
    "renameat": ("open('sub/r1', 'w').close(); sc('renameat', DFD, b'r1', AT_FDCWD, b'r3')",
                 [("sub/r1", "unlink"), ("r3", "write")]),
    "renameat2": ("open('r4', 'w').close(); sc('renameat2', AT_FDCWD, b'r4', DFD, b'r5', 0)",
                  [("r4", "unlink"), ("sub/r5", "write")]),
    "link": ("open('l1', 'w').close(); sc('link', b'l1', b'l2')", [("l2", "write")]),
    "linkat": ("open('l3', 'w').close(); sc('linkat', AT_FDCWD, b'l3', DFD, b'l4', 0)", [("sub/l4", "write")]),
    "symlink": ("sc('symlink', b'/etc/hostname', b's1')", [("s1", "write")]),
    "symlinkat": ("sc('symlinkat', b'/etc/hostname', DFD, b's2')", [("sub/s2", "write")]),
    "truncate": ("open('t', 'w').close(); sc('truncate', b't', 0)", [("t", "write")]),
    "unlink": ("open('u', 'w').close(); sc('unlink', b'u')", [("u", "unlink")]),
    "unlinkat": ("open('sub/u2', 'w').close(); sc('unlinkat', DFD, b'u2', 0)", [("sub/u2", "unlink")]),
    "rmdir": ("os.mkdir('dd'); sc('rmdir', b'dd')", [("dd", "unlink")]),
    "mkdir": ("sc('mkdir', b'm1', 0o755)", [("m1", "write")]),
    "mkdirat": ("sc('mkdirat', DFD, b'm2', 0o755)", [("sub/m2", "write")]),
}


def file_script(body: str) -> str:
    return textwrap.dedent(f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        SYSCALLS = {SYSCALLS!r}
        AT_FDCWD = {AT_FDCWD}
        def sc(name, *args):
            r = libc.syscall(SYSCALLS[name], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            if r < 0:
                raise OSError(ctypes.get_errno(), name)
            return r
        os.mkdir('sub')
        DFD = os.open('sub', os.O_RDONLY | os.O_DIRECTORY)
    """) + body + "\nprint('ok')\n"


@pytest.mark.parametrize("way", list(FILE_WAYS))
def test_every_file_changing_syscall_is_recorded_with_its_access(
        attached: Attached, gateway: Gateway, tmp_path: Path, way: str) -> None:
    body, expected = FILE_WAYS[way]
    d = tmp_path / f"files-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    r = attached.run(sys.executable, "-c", file_script(body), cwd=str(d))
    assert r.returncode == 0 and r.stdout.strip() == "ok", (way, r)
    for rel, access in expected:
        want = {"kind": "file_access", "path": str(d / rel), "access": access}
        wait_for(gateway, lambda r, want=want: action(r) == want)



# ---------------------------------------------------------------------------------------------
# UDP: a datagram sent with sendto (no connect) is decided and enforced like a connect.

class UdpSink:
    """A UDP socket on loopback counting datagrams, bound to `port` (or any)."""

    def __init__(self, port: int = 0) -> None:
        import socket
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]

    def drain(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(2048))
            except OSError:
                return out


UDP_PROBE = textwrap.dedent("""
    import socket, sys
    family, host, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(payload, (host, port))
        print("sent")
    except OSError as e:
        print("errno", e.errno)
""")


@pytest.mark.parametrize("family,host", [("4", "127.0.0.1"), ("6", "::ffff:127.0.0.1")],
                         ids=["ipv4", "ipv4-mapped-ipv6"])
def test_a_forbidden_udp_send_gets_eperm_and_is_recorded_as_udp(
        attached: Attached, gateway: Gateway, forbidden_port, family: str, host: str) -> None:
    import errno
    sink = UdpSink(forbidden_port.port)
    allowed = UdpSink()
    try:
        tag = uuid.uuid4().hex[:8]
        r = attached.run(sys.executable, "-c", UDP_PROBE, family, host, str(forbidden_port.port), f"in-{tag}")
        assert r.stdout.strip() == f"errno {errno.EPERM}", r
        # The control: the same send to an allowed port goes out and is recorded.
        ok = attached.run(sys.executable, "-c", UDP_PROBE, family, host, str(allowed.port), f"ok-{tag}")
        assert ok.stdout.strip() == "sent", ok
        assert f"ok-{tag}".encode() in allowed.drain()
        # And outside the cgroup the forbidden send goes out (the test can fail).
        out = subprocess.run([sys.executable, "-c", UDP_PROBE, family, host, str(forbidden_port.port),
                              f"out-{tag}"], capture_output=True, text=True)
        assert out.stdout.strip() == "sent", out
        got = sink.drain()
        assert f"out-{tag}".encode() in got and f"in-{tag}".encode() not in got, got

        rec = wait_for(gateway, lambda r: action(r) == {"kind": "net_connect", "addr": "127.0.0.1",
                                                        "port": forbidden_port.port, "proto": "udp"})
        assert rec["decision"]["effect"] == "deny" and rec["decision"]["policy_ids"] == ["no-forbidden-port"]
        assert "refused in the kernel" in rec["decision"]["message"]
        ok_rec = wait_for(gateway, lambda r: action(r) == {"kind": "net_connect", "addr": "127.0.0.1",
                                                           "port": allowed.port, "proto": "udp"})
        assert ok_rec["decision"]["effect"] == "allow"
    finally:
        sink.sock.close()
        allowed.sock.close()


def test_a_udp_connect_is_recorded_as_udp_and_a_tcp_connect_as_tcp(
        attached: Attached, gateway: Gateway, allowed_port) -> None:
    sink = UdpSink()
    try:
        script = textwrap.dedent(f"""
            import socket
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.connect(("127.0.0.1", {sink.port}))
            u.send(b"x")
            socket.create_connection(("127.0.0.1", {allowed_port.port})).close()
        """)
        r = attached.run(sys.executable, "-c", script)
        assert r.returncode == 0, r
        wait_for(gateway, lambda r: action(r) == {"kind": "net_connect", "addr": "127.0.0.1",
                                                  "port": sink.port, "proto": "udp"})
        wait_for(gateway, lambda r: action(r) == {"kind": "net_connect", "addr": "127.0.0.1",
                                                  "port": allowed_port.port, "proto": "tcp"})
    finally:
        sink.sock.close()


# ---------------------------------------------------------------------------------------------
# io_uring: its operations (openat, renameat, unlinkat, …) do not pass through the syscall
# tracepoints. The launcher refuses it (seccomp: EPERM, so programs fall back to the ordinary,
# observed syscalls); a ring made by a process that joined the cgroup another way is counted.

IO_URING_PROBE = textwrap.dedent("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(425, ctypes.c_long(8), params)  # io_uring_setup
    print("fd" if fd >= 0 else f"errno {ctypes.get_errno()}")
""")


def test_io_uring_is_refused_to_a_launched_agent_and_a_ring_made_otherwise_is_counted(
        attached: Attached) -> None:
    import errno
    r = attached.run(sys.executable, "-c", IO_URING_PROBE)
    assert r.stdout.strip() == f"errno {errno.EPERM}", r
    # The control: outside the launcher the ring is created (the test can fail).
    out = subprocess.run([sys.executable, "-c", IO_URING_PROBE], capture_output=True, text=True)
    assert out.stdout.strip() == "fd", out
    # A process that joins the cgroup by itself (not through `aasm ebpf exec`) gets its ring,
    # and the status says so.
    before = attached.status()["io_uring_rings"]
    joined = subprocess.run(["sh", "-c", f'echo $$ > {attached.cgroup}/cgroup.procs && exec "$0" -c "$1"',
                             sys.executable, IO_URING_PROBE], capture_output=True, text=True)
    assert joined.stdout.strip() == "fd", joined
    deadline = time.monotonic() + 10
    while attached.status()["io_uring_rings"] <= before and time.monotonic() < deadline:
        time.sleep(0.3)
    assert attached.status()["io_uring_rings"] == before + 1


# ---------------------------------------------------------------------------------------------
# In-kernel filtering: a read-only open the same process repeats within a second is counted,
# not sent; writes are never filtered.

def test_repeated_reads_are_counted_in_the_kernel_and_writes_never_filtered(
        attached: Attached, gateway: Gateway, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    f = tmp_path / f"hot-{tag}"
    f.write_text("x")
    before = attached.status()["repeats_filtered"]
    script = (f"import os\nfor _ in range(500):\n    os.close(os.open({str(f)!r}, os.O_RDONLY))\n"
              f"for _ in range(3):\n    os.close(os.open({str(f)!r}, os.O_WRONLY))\n")
    r = attached.run(sys.executable, "-c", script)
    assert r.returncode == 0, r
    wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(f), "access": "read"})
    wait_for(gateway, lambda r: action(r) == {"kind": "file_access", "path": str(f), "access": "write"})
    deadline = time.monotonic() + 10
    while attached.status()["repeats_filtered"] < before + 499 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert attached.status()["repeats_filtered"] >= before + 499
    from conftest import ebpf_records
    recs = [r for r in ebpf_records(gateway) if action(r).get("path") == str(f)]
    assert sum(action(r)["access"] == "write" for r in recs) == 3, recs
    assert sum(action(r)["access"] == "read" for r in recs) == 1, recs
