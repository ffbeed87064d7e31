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

