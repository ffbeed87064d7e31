"""Memory across the boundary: 100,000 governed calls, resident memory flat after warm-up."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import aa_ffi

CALLS = 100_000
WARM_UP = 20_000
PAGE = resource.getpagesize()
# Allowed growth after warm-up: allocator noise, far below one leaked byte per call (100 kB).
SLACK = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def test_governed_calls_do_not_grow_resident_memory(tmp_path: Path, unlimited: Path) -> None:
    g = aa_ffi.Governor(aa_ffi.GovernorConfig(policy=str(unlimited), agent_id="ffi-mem",
                                              audit_file=str(tmp_path / "audit.jsonl")))
    args = json.dumps({"query": "cedar", "n": 3, "filters": {"lang": ["en", "fr"]}})
    samples: list[tuple[int, int]] = []
    after_warm_up = 0
    denied = 0
    for i in range(1, CALLS + 1):
        try:
            call = g.decide_tool("search", args, [])
        except aa_ffi.AaError.PolicyDenied:
            denied += 1
            continue
        call.decision().decision_id()
        call.done_ok(3)
        if i == WARM_UP:
            after_warm_up = rss()
        if i % 10_000 == 0:
            samples.append((i, rss()))
    assert denied == 0
    d = g.decide(json.dumps({"kind": "process_exec", "path": "/bin/rm", "argv": ["rm", "-rf", "/"]}))
    assert not d.allowed()
    g.close(10.0)
    growth = max(r for _, r in samples if _ >= WARM_UP) - after_warm_up
    figures = {"calls": CALLS, "rss_after_warm_up_kib": after_warm_up // 1024,
               "rss_samples_kib": {n: r // 1024 for n, r in samples}, "growth_after_warm_up_kib": growth // 1024}
    if out := os.environ.get("FFI_FIGURES_FILE"):
        Path(out).write_text(json.dumps(figures) + "\n")
    assert growth < SLACK, figures
    lines = (tmp_path / "audit.jsonl").read_text().count("\n")
    assert lines >= 2 * CALLS, lines
