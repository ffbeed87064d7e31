#!/usr/bin/env bash
# The Agent Assembly demo (set-up included):
#  1. embedded mode: a scripted agent's actions decided against examples/policies/permissive,
#     every decision in a hash-chained audit file, the file verified, tampered with and caught;
#  2. remote mode: a gateway starts, an agent is registered, the same agent asks the gateway,
#     runs into a budget, is suspended by the kill switch, and the chain is verified via the API;
#  3. `aasm run`: the example agents (Python, TypeScript) each governed by one command — an
#     embedded gateway, the proxy, and as root the eBPF layer: allows and denies from all three
#     layers, a budget running out, a forbidden exec killed, a raw socket caught as a bypass,
#     the summary, and the run's audit verified again from its database.
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

step "aasm run: the example agents governed end to end — SDK, proxy and (as root) eBPF, one command each"
scripts/python-sdk.sh install >/dev/null
scripts/node.sh build >/dev/null
examples/agents/typescript/build.sh >/dev/null
UP_PY="${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}/bin/python"
"$UP_PY" examples/agents/upstreams.py --dir "$DEMO/upstreams" > "$DEMO/upstreams.json" 2> "$DEMO/upstreams.log" &
UP_PID=$!
trap 'kill $UP_PID 2>/dev/null || true; gateway_stop' EXIT
for _ in $(seq 1 200); do [ -s "$DEMO/upstreams.json" ] && break; sleep 0.1; done
up() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$DEMO/upstreams.json" "$1"; }
DEMO_ENV=(env "AA_DEMO_LLM_URL=$(up llm_url)" "AA_DEMO_MCP_URL=$(up mcp_url)" "AA_DEMO_EXFIL_URL=$(up exfil_url)")
[ "$(id -u)" = 0 ] && DEMO_ENV+=(AA_DEMO_LAYERS=sdk,proxy,ebpf)
echo "local upstreams (no internet): an OpenAI-compatible model, an MCP server, an exfil endpoint"
for lang in python node; do
  if [ "$lang" = python ]; then CMD=("${AA_SDK_VENV:-/var/cache/aa/venv-sdk}/bin/python" examples/agents/python/agent.py)
  else CMD=(node examples/agents/typescript/dist/agent.js); fi
  step "aasm run -- the $lang agent"
  "$AASM" run --policy examples/agents/policy --agent-id "demo-$lang" --level native \
    --upstream-ca "$(up ca)" --llm "$(up llm_host)=openai" --state-dir "$DEMO/run-$lang" \
    -- "${DEMO_ENV[@]}" "${CMD[@]}" | grep -v '^{"agent"'
done
python3 -c 'import json,sys; s=json.load(sys.stdin); print("the upstreams saw:", s)' \
  < <(curl -sS --cacert "$(up ca)" "$(up stats_url)")

step "the audit of a run, verified again from its database by a fresh gateway (hash chain + signed checkpoints)"
export AA_ADMIN_TOKEN="demo-admin-$(date +%s%N)"
GW_LOG="$DEMO/gateway.log" gateway_start "$DEMO/run-python/gateway.db"
AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit verify --strict
gateway_stop
