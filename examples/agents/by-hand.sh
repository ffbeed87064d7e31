#!/usr/bin/env bash
# Runs the example agents through a real gateway and proxy started by hand — what `aasm run`
# does for them — and prints each agent's summary and the audit.
#   examples/agents/by-hand.sh [--ebpf] [python|node]...      (default: both)
# --ebpf (root): also the kernel layer, `aasm ebpf attach` on a fresh cgroup per agent and the
# agent started in it with `aasm ebpf exec` (AA_DEMO_LAYERS=ebpf: perl must be killed).
# Needs: $AASM (default /var/cache/aa/target/debug/aasm), the venvs of scripts/setup.sh, and for
# node the compiled agent (examples/agents/typescript/build.sh). Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/../.."
AASM="${AASM:-/var/cache/aa/target/debug/aasm}"
SDK_PY="${AA_SDK_VENV:-/var/cache/aa/venv-sdk}/bin/python"
UP_PY="${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}/bin/python"
EBPF=0
if [ "${1:-}" = --ebpf ]; then EBPF=1; shift; fi
AGENTS=("$@"); [ ${#AGENTS[@]} -gt 0 ] || AGENTS=(python node)
W=$(mktemp -d /tmp/aa-agents-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
log() { printf '[by-hand] %s\n' "$*" >&2; }

wait_line() {  # FILE PREFIX: the first line of FILE starting with PREFIX (waits up to 20 s)
  for _ in $(seq 200); do
    line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line"; return; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

"$UP_PY" examples/agents/upstreams.py --dir "$W/upstreams" > "$W/upstreams.out" 2> "$W/upstreams.err" &
PIDS+=($!)
UP=$(wait_line "$W/upstreams.out" "{")
field() { printf '%s' "$UP" | "$UP_PY" -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
log "upstreams: $UP"

export AA_ADMIN_TOKEN="by-hand-admin-token-0123456789abcdef"
AA_ADMIN_TOKEN="$AA_ADMIN_TOKEN" RUST_LOG=warn "$AASM" gateway --listen 127.0.0.1:0 --db "$W/gw.db" \
  --policy examples/agents/policy > "$W/gw.out" 2> "$W/gw.err" &
PIDS+=($!)
GW=$(wait_line "$W/gw.out" "listening on" | sed 's/^listening on //')
log "gateway: $GW"

rc=0
for agent in "${AGENTS[@]}"; do
  id="demo-$agent"
  token=$(AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" agents register --gateway "$GW" --json "$id" \
    | "$UP_PY" -c "import json,sys; print(json.loads(sys.stdin.readline())['data']['token'])")
  port=$("$UP_PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  AA_TOKEN="$AA_ADMIN_TOKEN" RUST_LOG=warn "$AASM" proxy run --listen "127.0.0.1:$port" --gateway "$GW" \
    --ca-dir "$W/proxy-$agent" --state-dir "$W/proxy-$agent/state" --default-agent "$id" \
    --upstream-ca "$(field ca)" --llm "$(field llm_host)=openai" > "$W/proxy-$agent.out" 2> "$W/proxy-$agent.err" &
  proxy_pid=$!
  PIDS+=("$proxy_pid")
  wait_line "$W/proxy-$agent.out" "listening on" >/dev/null
  run=()
  if [ "$EBPF" = 1 ]; then
    cg="$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)/aa-by-hand-$$-$agent"
    AA_TOKEN="$AA_ADMIN_TOKEN" RUST_LOG=info "$AASM" ebpf attach --cgroup "$cg" --gateway "$GW" --agent "$id" \
      --status-file "$W/ebpf-$agent.json" > "$W/ebpf-$agent.out" 2> "$W/ebpf-$agent.err" &
    ebpf_pid=$!
    PIDS+=("$ebpf_pid")
    wait_line "$W/ebpf-$agent.out" "attached to" >&2
    run=("$AASM" ebpf exec --cgroup "$cg" --)
  fi
  # The child's environment as `aasm run` sets it (the proxy's CA beside the system's, for
  # the gateway's and the upstreams' sake only the proxy's is needed here).
  env_vars=(HTTPS_PROXY="http://127.0.0.1:$port" HTTP_PROXY="http://127.0.0.1:$port" NO_PROXY=127.0.0.1
    SSL_CERT_FILE="$W/proxy-$agent/ca.pem" REQUESTS_CA_BUNDLE="$W/proxy-$agent/ca.pem"
    NODE_EXTRA_CA_CERTS="$W/proxy-$agent/ca.pem" AA_GATEWAY_URL="$GW" AA_AGENT_ID="$id" AA_TOKEN="$token"
    AA_DEMO_LLM_URL="$(field llm_url)" AA_DEMO_MCP_URL="$(field mcp_url)" AA_DEMO_EXFIL_URL="$(field exfil_url)"
    AA_SPILL_DIR="$W/spill-$agent")
  [ "$EBPF" = 1 ] && env_vars+=(AA_DEMO_LAYERS=sdk,proxy,ebpf)
  log "running the $agent agent as $id (proxy 127.0.0.1:$port)"
  if [ "$agent" = python ]; then
    cmd=("$SDK_PY" examples/agents/python/agent.py)
  else
    cmd=(node examples/agents/typescript/dist/agent.js)
  fi
  env "${env_vars[@]}" "${run[@]}" "${cmd[@]}" | tee "$W/$agent.out" || rc=1
  kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
  if [ "$EBPF" = 1 ]; then
    kill -TERM "$ebpf_pid"; wait "$ebpf_pid" 2>/dev/null || true
    for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
  fi
done

log "upstream counters: $(curl -sS --cacert "$(field ca)" "$(field stats_url)")"
sleep 1
AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit tail --gateway "$GW" --all > "$W/audit.txt"
AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit tail --gateway "$GW" --all --json > "$W/audit.jsonl"
log "audit: $(wc -l < "$W/audit.jsonl") records in $W/audit.txt and $W/audit.jsonl; per agent, layer, kind, decision:"
"$UP_PY" - "$W/audit.jsonl" <<'PY' >&2
import collections, json, sys
c: collections.Counter = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)["data"]
    d = r["decision"]
    c[(r["agent_id"], r["layer"], r["action"]["kind"], d["effect"], d["reason"], d.get("budget") or ",".join(d.get("policy_ids") or []))] += 1
    u = (r.get("outcome") or {}).get("usage")
    if u:
        print(f"  tokens: {r['agent_id']} {r['layer']} {r['action'].get('model')}: {u}")
for k, n in sorted(c.items()):
    print(f"  {n:5d}  " + "  ".join(k))
PY
AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit verify --gateway "$GW" >&2 || rc=1
exit $rc
