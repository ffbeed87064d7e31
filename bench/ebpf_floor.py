"""The floor of the kernel layer's cost: a BPF program that does nothing (`r0 = 0; exit`),
attached where the layer sees file opens, so `bench/ebpf.sh` can put the open loop's slowdown
beside what the hook alone costs on this kernel.

Usage (root): python3 bench/ebpf_floor.py tracepoint   # syscalls:sys_enter_openat
              python3 bench/ebpf_floor.py raw          # raw tracepoint sys_enter (every syscall)
              python3 bench/ebpf_floor.py fentry|lsm   # do_sys_openat2 / file_open, where allowed
Prints "attached" (or why not) and holds the program until killed. Raw bpf(2) and
perf_event_open(2) through ctypes: no toolchain, nothing to build.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import subprocess
import sys
import time

SYS_BPF, SYS_PERF_EVENT_OPEN = 321, 298  # x86_64
BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN = 5, 17
PROG_TRACEPOINT, PROG_RAW_TRACEPOINT, PROG_TRACING, PROG_LSM = 5, 17, 26, 29
ATTACH_FENTRY, ATTACH_LSM_MAC = 24, 27
PERF_TYPE_TRACEPOINT, PERF_FLAG_FD_CLOEXEC = 2, 8
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408
NOOP = bytes.fromhex("b7000000000000009500000000000000")  # r0 = 0; exit

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
keep = []  # buffers the kernel reads must outlive the calls


def buf(data: bytes) -> int:
    b = ctypes.create_string_buffer(data, len(data) + 1)
    keep.append(b)
    return ctypes.addressof(b)


def fail(what: str) -> None:
    sys.exit(f"{what}: {os.strerror(ctypes.get_errno())}")


def load(prog_type: int, attach_type: int = 0, btf_id: int = 0) -> int:
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQQ", attr, 0, prog_type, len(NOOP) // 8, buf(NOOP), buf(b"GPL"))
    struct.pack_into("I", attr, 68, attach_type)  # expected_attach_type
    struct.pack_into("I", attr, 108, btf_id)  # attach_btf_id
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, len(attr))
    if fd < 0:
        fail("BPF_PROG_LOAD")
    return fd


def raw_open(name: str | None, prog: int) -> None:
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("QI", attr, 0, buf(name.encode()) if name else 0, prog)
    if libc.syscall(SYS_BPF, BPF_RAW_TRACEPOINT_OPEN, attr, len(attr)) < 0:
        fail("BPF_RAW_TRACEPOINT_OPEN")


def btf_id(func: str) -> int:
    dump = subprocess.run(
        ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(rf"^\[(\d+)\] FUNC '{func}'", dump, re.M)
    if not found:
        sys.exit(f"no BTF id for {func}")
    return int(found.group(1))


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "tracepoint"
    if kind == "tracepoint":
        prog = load(PROG_TRACEPOINT)
        tp = int(open("/sys/kernel/tracing/events/syscalls/sys_enter_openat/id").read())
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("IIQQ", attr, 0, PERF_TYPE_TRACEPOINT, len(attr), tp, 1)
        fd = libc.syscall(SYS_PERF_EVENT_OPEN, attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
        if fd < 0 or libc.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog) < 0:
            fail("perf_event_open / SET_BPF")
        libc.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    elif kind == "raw":
        raw_open("sys_enter", load(PROG_RAW_TRACEPOINT))
    elif kind == "fentry":
        raw_open(None, load(PROG_TRACING, ATTACH_FENTRY, btf_id("do_sys_openat2")))
    elif kind == "lsm":
        raw_open(None, load(PROG_LSM, ATTACH_LSM_MAC, btf_id("bpf_lsm_file_open")))
    else:
        sys.exit(f"unknown hook {kind}")
    print("attached", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
