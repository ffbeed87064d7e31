"""A short loop of governed calls through `libaa_ffi.so`, run under valgrind by
`scripts/ffi.sh` (`valgrind_loop.py CALLS POLICY_DIR AUDIT_FILE`): decide, the tool-call path
(allowed and denied), report, a typed error, close."""

from __future__ import annotations

import json
import sys

import aa_ffi

calls, policy, audit = int(sys.argv[1]), sys.argv[2], sys.argv[3]
g = aa_ffi.Governor(aa_ffi.GovernorConfig(policy=policy, agent_id="valgrind", audit_file=audit))
action = json.dumps({"kind": "tool_call", "tool": "search", "args": {"q": "x"}})
for i in range(calls):
    call = g.decide_tool("search", json.dumps({"query": "cedar", "i": i, "l": [1, 2.5, None]}), ["i"])
    call.decision().policy_ids()
    call.done_ok(3) if i % 2 else call.done_error("ValueError")
    d = g.decide(action)
    g.report(action, d, aa_ffi.Outcome(status=aa_ffi.OutcomeStatus.OK, duration_us=1))
    try:
        g.decide_tool("shell", json.dumps({"cmd": "rm -rf /"}), [])
    except aa_ffi.AaError.PolicyDenied as e:
        assert e.policy_ids
    try:
        g.decide("{")
    except aa_ffi.AaError.InvalidInput:
        pass
g.close(5.0)
del g, call, d
print(f"ok: {calls} loops")
