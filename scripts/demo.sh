#!/usr/bin/env bash
# The Agent Assembly demo (set-up included):
#  1. embedded mode: a scripted agent's actions decided against examples/policies/permissive,
#     every decision in a hash-chained audit file, the file verified, tampered with and caught;
#  2. remote mode: a gateway starts, an agent is registered, the same agent asks the gateway,
#     runs into a budget, is suspended by the kill switch, and the chain is verified via the API;
#  3. kernel layer (root): the eBPF probes on a cgroup see a shell-out, a file write and a raw
#     connect, kill a forbidden binary before it runs, refuse a forbidden port, and Landlock
#     refuses a write outside the allowed directory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/gateway-lib.sh
scripts/setup.sh >/dev/null

step "build aasm"
cargo build -p aasm --locked --quiet

DEMO=.aa/demo
rm -rf "$DEMO" && mkdir -p "$DEMO"

step "check the policy set"
"$AASM" policy check examples/policies/permissive

step "a scripted agent's actions, decided before they run (embedded mode)"
"$AASM" decide --policy examples/policies/permissive --audit "$DEMO/audit.jsonl" \
  < examples/demo/agent-actions.jsonl || true

step "the audit file, verified (hash chain + Ed25519 checkpoints)"
"$AASM" audit tail -n 5 "$DEMO/audit.jsonl"
"$AASM" audit verify "$DEMO/audit.jsonl"

step "someone edits record 5 to hide a deny…"
sed '5s/"effect":"deny"/"effect":"allow"/' "$DEMO/audit.jsonl" > "$DEMO/tampered.jsonl"
cp "$DEMO/audit.jsonl.key" "$DEMO/tampered.jsonl.key"
if "$AASM" audit verify "$DEMO/tampered.jsonl"; then
  echo "tampering went unnoticed — this is a bug" >&2
  exit 1
fi
echo "…and verify names the record."

step "remote mode: start a gateway with the permissive policy and a small demo budget"
mkdir -p "$DEMO/policy"
cp examples/policies/permissive/base.cedar "$DEMO/policy/"
cp examples/demo/budgets.toml "$DEMO/policy/"
export AA_ADMIN_TOKEN="demo-admin-$(date +%s%N)"
trap gateway_stop EXIT
GW_LOG="$DEMO/gateway.log" gateway_start "$DEMO/gateway.db" --policy "$DEMO/policy"
echo "gateway at $GW_URL"
export AA_GATEWAY_URL="$GW_URL"

step "register the agent (its token is shown once)"
AGENT_TOKEN=$(AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json agents register demo-agent --team eng \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
echo "registered demo-agent"

step "the scripted agent asks the gateway before every action (remote mode)"
AA_TOKEN="$AGENT_TOKEN" "$AASM" decide --agent demo-agent < examples/demo/agent-actions.jsonl || true

step "it keeps calling tools until the shared budget says no"
for i in 1 2 3 4 5; do echo '{"kind":"tool_call","tool":"web_search","args":{"query":"more"}}'; done \
  | AA_TOKEN="$AGENT_TOKEN" "$AASM" decide --agent demo-agent || true
AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json audit tail -n 100 \
  | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l)["data"]
    if r["decision"]["reason"]=="budget_exceeded": print("budget deny recorded:", r["seq"], r["decision"]["message"])' | tail -n 1

step "kill switch: suspend the agent, and its next action is denied"
AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" agents suspend demo-agent
echo '{"kind":"tool_call","tool":"calculator"}' | AA_TOKEN="$AGENT_TOKEN" "$AASM" decide --agent demo-agent || true

step "verify the gateway's chain through the API (hash chain + signed checkpoints)"
gateway_stop   # SIGTERM: drain, flush, seal with a checkpoint
GW_LOG="$DEMO/gateway.log" gateway_start "$DEMO/gateway.db"
AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit verify --strict
gateway_stop

step "kernel layer: attach the eBPF probes to a cgroup (root)"
if [ "$(id -u)" != 0 ]; then
  echo "skipped: the eBPF layer needs root"
  exit 0
fi
KDIR="$PWD/$DEMO/kernel"
mkdir -p "$KDIR/policy" "$KDIR/work"
printf '#!/bin/sh\necho "exfiltrating…"; touch %s/exfiltrated\n' "$KDIR" > "$KDIR/exfil.sh"
chmod +x "$KDIR/exfil.sh"
cat > "$KDIR/policy/base.cedar" <<CEDAR
@id("allow-all")
permit (principal, action, resource);

@id("no-smtp-or-discard")
@reason("agents may not open SMTP or discard-port connections")
forbid (principal, action == Action::"net_connect", resource)
when { context.port == 25 || context.port == 9 };

@id("no-exfil-script")
@reason("this script must never run")
forbid (principal, action == Action::"process_exec", resource)
when { context.path == "$KDIR/exfil.sh" };
CEDAR
CG="aa-demo-$$"
env -u AA_GATEWAY_URL "$AASM" ebpf attach --cgroup "$CG" --policy "$KDIR/policy" --audit-file "$KDIR/audit.jsonl" \
  --agent demo-agent --status-file "$KDIR/status.json" > "$KDIR/attach.out" 2> "$KDIR/attach.log" &
ATTACH_PID=$!
trap 'kill -TERM $ATTACH_PID 2>/dev/null || true; wait $ATTACH_PID 2>/dev/null || true; gateway_stop' EXIT
for _ in $(seq 1 300); do [ -s "$KDIR/status.json" ] && break; sleep 0.1; done
cat "$KDIR/attach.out"

step "the agent, inside the cgroup and under Landlock, tries its luck (no SDK, no proxy)"
"$AASM" ebpf exec --cgroup "$CG" --allow-write "$KDIR/work" --allow-write /dev -- sh -c "
  echo notes > $KDIR/work/notes.txt && echo 'wrote work/notes.txt'
  $KDIR/exfil.sh; echo \"exfil.sh exit status: \$? (137 = killed before it ran)\"
  python3 -c 'import socket
try:
    socket.create_connection((\"127.0.0.1\", 9), timeout=2)
except OSError as e:
    print(\"connect to port 9:\", e)'
  echo x > /tmp/aa-demo-outside.txt 2>/dev/null || echo 'write outside work/: refused (Landlock)'
" || true
[ -e "$KDIR/exfiltrated" ] && { echo "the forbidden script ran — this is a bug" >&2; exit 1; }
sleep 1.5
"$AASM" ebpf status --dir "$KDIR"

step "what the kernel layer recorded: the denies, then the chain verified"
kill -TERM "$ATTACH_PID"; wait "$ATTACH_PID" 2>/dev/null || true
tail -n 1 "$KDIR/attach.out"
python3 - "$KDIR/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("decision", {}).get("effect") == "deny":
        a = r["action"]
        what = a.get("path") or f"{a.get('addr')}:{a.get('port')}"
        print(f"deny  {a['kind']:<13} {what}  — {r['decision']['message'][:90]}")
PY
env -u AA_GATEWAY_URL "$AASM" audit verify "$KDIR/audit.jsonl"
rmdir "$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)/$CG" 2>/dev/null || true
