#!/usr/bin/env bash
# Gateway load benchmark, real tools against a real `aasm gateway` (release build):
#  - POST /v1/decide at saturation and at a steady 5,000 req/s over keep-alive (oha);
#  - POST /v1/events ingest, batches of 100 unique events, durable (SQLite WAL, synchronous=FULL,
#    group commit), with the chain verified afterwards (wrk + bench/events.lua).
# Usage: bench/gateway.sh [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DUR="${1:-10}"
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
[ -x "$OHA" ] || cargo install oha --locked
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

step "build aasm (release)"
cargo build --release -p aasm --locked --quiet
AASM="$CARGO_TARGET_DIR/release/aasm"
source scripts/gateway-lib.sh
WORK=/var/cache/aa/bench-gateway
rm -rf "$WORK" && mkdir -p "$WORK"
trap gateway_stop EXIT
export AA_ADMIN_TOKEN="bench-admin-$(date +%s%N)"
GW_LOG="$WORK/gateway.log" gateway_start "$WORK/gw.db" --policy examples/policies/permissive
TOKEN=$(AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json agents register bench \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
BODY='{"agent":"bench","action":{"kind":"tool_call","tool":"web_search","args":{"query":"agent governance"}}}'
echo "$BODY" > "$WORK/decide.json"
oha_run() { "$OHA" --no-tui --output-format json -m POST -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" -D "$WORK/decide.json" "$@" "$GW_URL/v1/decide"; }
summary() { python3 - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]; p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print("  %s: %s req/s, p50 %.3f ms, p99 %.3f ms, status %s" % (sys.argv[2], format(round(s["requestsPerSec"]), ","), p["p50"] * 1e3, p["p99"] * 1e3, codes))
PY
}

step "warm up"
oha_run -z 3s -c 32 > /dev/null
step "POST /v1/decide at saturation (64 keep-alive connections, ${DUR}s)"
oha_run -z "${DUR}s" -c 64 > "$WORK/decide-sat.json"; summary "$WORK/decide-sat.json" saturation
step "POST /v1/decide at a steady 5,000 req/s (32 connections, ${DUR}s)"
oha_run -z "${DUR}s" -c 32 -q 5000 > "$WORK/decide-5k.json"; summary "$WORK/decide-5k.json" "5k req/s"

step "POST /v1/events: batches of 100 unique events, ${DUR}s (wrk, 4 threads, 16 connections)"
BEFORE=$(AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json audit verify | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["last_seq"])')
START=$(date +%s.%N)
AA_TOKEN="$TOKEN" RUN_ID="r$(date +%s)" BATCH=100 wrk -t4 -c16 -d"${DUR}s" --latency -s bench/events.lua "$GW_URL" | tee "$WORK/events.txt" | grep -E "Requests/sec|Latency|99%|50%|Non-2xx"
END=$(date +%s.%N)
AFTER_JSON=$(AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json audit verify)
python3 - "$BEFORE" "$START" "$END" "$AFTER_JSON" <<'PY'
import json, sys
before, start, end, report = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])["data"]
stored = report["last_seq"] - before
print(f"  ingest: {stored:,} records stored in {end-start:.1f}s = {stored/(end-start):,.0f} records/s durable; chain ok={report['ok']} ({report['records']:,} records verified)")
PY
