#!/usr/bin/env bash
# The Agent Assembly demo (set-up included):
#  1. embedded mode: a scripted agent's actions decided against examples/policies/permissive,
#     every decision in a hash-chained audit file, the file verified, tampered with and caught;
#  2. remote mode: a gateway starts, an agent is registered, the same agent asks the gateway,
#     runs into a budget, is suspended by the kill switch, and the chain is verified via the API.
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
