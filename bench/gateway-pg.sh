#!/usr/bin/env bash
# One SQLite gateway against three replicas on one PostgreSQL, real tools, release build:
#  - POST /v1/decide at saturation (oha, keep-alive): one SQLite gateway; three replicas each
#    loaded by its own oha at once (summed); with no budget, and with a budget every decision
#    charges (exactly, in the database, on the replicas);
#  - POST /v1/events ingest on PostgreSQL: batches of 100 unique events sent to one replica, then
#    to all three at once (wrk + bench/events.lua), durable (acknowledged = committed), the chain
#    verified afterwards with `aasm audit verify --gateway`.
# Decisions are counted by outcome from /metrics: under saturation a gateway whose audit queue is
# full answers `deny/unavailable` (fail closed) rather than an unrecorded allow.
# Usage: bench/gateway-pg.sh [SECONDS=10]   (under a shared build lock, use `flock -o` so the
# gateways it starts do not inherit the lock)
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
WORK=/var/cache/aa/bench-gateway-pg
rm -rf "$WORK" && mkdir -p "$WORK"
export AA_ADMIN_TOKEN="bench-admin-$(date +%s%N)"
PIDS=()
PG_DIR=""
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -z "$PG_DIR" ] || scripts/pg.sh stop "$PG_DIR"
}
trap cleanup EXIT

# start_gateway NAME ARGS...: starts `aasm gateway` on a free port; sets GW_URL.
start_gateway() {
  local name="$1"; shift
  "$AASM" gateway --listen 127.0.0.1:0 "$@" > "$WORK/$name.out" 2> "$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q '^listening on ' "$WORK/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  GW_URL=$(sed -n 's/^listening on //p' "$WORK/$name.out")
  [ -n "$GW_URL" ] || { echo "gateway $name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
}
stop_last() { # stop_last N: SIGTERM the N gateways started last
  for _ in $(seq 1 "$1"); do
    local last=$((${#PIDS[@]} - 1))
    kill -TERM "${PIDS[$last]}"; wait "${PIDS[$last]}" 2>/dev/null || true
    unset "PIDS[$last]"
  done
}

policy_dir() { # policy_dir DIR [BUDGET_CALLS]
  mkdir -p "$1"; cp examples/policies/permissive/*.cedar "$1/"
  if [ -n "${2:-}" ]; then
    printf '[[budget]]\nname = "bench"\nper = "global"\nwindow = "total"\ncalls = %s\n' "$2" > "$1/budgets.toml"
  fi
}
policy_dir "$WORK/open"
policy_dir "$WORK/budgeted" 1000000000

register() { # register URL → token
  AA_GATEWAY_URL="$1" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json agents register bench --rotate \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])'
}
BODY='{"agent":"bench","action":{"kind":"tool_call","tool":"web_search","args":{"query":"agent governance"}}}'
echo "$BODY" > "$WORK/decide.json"
oha_run() { # oha_run URL TOKEN OUT ARGS...
  local url="$1" token="$2" out="$3"; shift 3
  "$OHA" --no-tui --output-format json -m POST -H "Authorization: Bearer $token" \
    -H "Content-Type: application/json" -D "$WORK/decide.json" "$@" "$url/v1/decide" > "$out"
}
summary() { python3 - "$@" <<'PY'
import json, sys
label, files = sys.argv[1], sys.argv[2:]
runs = [json.load(open(f)) for f in files]
rps = sum(r["summary"]["requestsPerSec"] for r in runs)
p50 = max(r["latencyPercentiles"]["p50"] for r in runs) * 1e3
p99 = max(r["latencyPercentiles"]["p99"] for r in runs) * 1e3
codes = {}
for r in runs:
    for k, v in r.get("statusCodeDistribution", {}).items():
        codes[k] = codes.get(k, 0) + v
print(f"  {label}: {rps:,.0f} req/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms (worst of {len(runs)}), status {codes}")
PY
}

outcomes() { # outcomes URL...: decisions by effect/reason, summed over the gateways' /metrics
  for u in "$@"; do curl -s "$u/metrics"; done | python3 -c '
import re, sys
totals = {}
for line in sys.stdin:
    m = re.match(r"aa_decisions_total\{effect=\"(\w+)\",reason=\"(\w+)\".*\} (\d+)", line)
    if m:
        k = m.group(1) + "/" + m.group(2)
        totals[k] = totals.get(k, 0) + int(m.group(3))
print("    decisions:", ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items())))'
}

step "one SQLite gateway: POST /v1/decide at saturation (64 connections, ${DUR}s)"
for mode in open budgeted; do
  start_gateway "sqlite-$mode" --db "$WORK/sqlite-$mode.db" --policy "$WORK/$mode"; URL=$GW_URL
  TOKEN=$(register "$URL")
  oha_run "$URL" "$TOKEN" /dev/null -z 2s -c 32
  oha_run "$URL" "$TOKEN" "$WORK/sqlite-$mode.json" -z "${DUR}s" -c 64
  summary "SQLite, $mode policy" "$WORK/sqlite-$mode.json"
  outcomes "$URL"
  stop_last 1
done

step "PostgreSQL (scripts/pg.sh)"
PG_DIR=$(mktemp -d -u -t aa-bench-pg.XXXXXX)
PG_URL=$(scripts/pg.sh start "$PG_DIR")

step "three replicas on PostgreSQL: POST /v1/decide at saturation (3 x 22 connections, ${DUR}s)"
for mode in open budgeted; do
  URLS=()
  for i in 1 2 3; do
    start_gateway "pg-$mode-$i" --db "$PG_URL" --key "$WORK/signing.key" --policy "$WORK/$mode"
    URLS+=("$GW_URL")
  done
  TOKEN=$(register "${URLS[0]}")
  LOAD=(); for u in "${URLS[@]}"; do oha_run "$u" "$TOKEN" /dev/null -z 2s -c 8 & LOAD+=($!); done
  wait "${LOAD[@]}"
  LOAD=(); n=0
  for u in "${URLS[@]}"; do n=$((n+1)); oha_run "$u" "$TOKEN" "$WORK/pg-$mode-$n.json" -z "${DUR}s" -c 22 & LOAD+=($!); done
  wait "${LOAD[@]}"
  summary "3 replicas, $mode policy" "$WORK"/pg-"$mode"-?.json
  outcomes "${URLS[@]}"
  if [ "$mode" = open ]; then
    stop_last 3
  fi
done

verify_since() { # verify_since BEFORE START END URL: records stored since BEFORE, rate, chain check
  local after
  after=$(AA_GATEWAY_URL="$4" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json audit verify)
  python3 - "$1" "$2" "$3" "$after" <<'PY'
import json, sys
before, start, end, report = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])["data"]
stored = report["last_seq"] - before
print(f"  ingest: {stored:,} records stored in {end-start:.1f}s = {stored/(end-start):,.0f} records/s durable; "
      f"chain ok={report['ok']} ({report['records']:,} records, {report['checkpoints']} checkpoints verified)")
PY
}
last_seq() { AA_GATEWAY_URL="$1" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json audit verify | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["last_seq"])'; }
sleep 3 # let the replicas' audit queues drain before counting

step "POST /v1/events on PostgreSQL: batches of 100 unique events to one replica (4 threads, 16 connections), ${DUR}s"
BEFORE=$(last_seq "${URLS[0]}")
START=$(date +%s.%N)
AA_TOKEN="$TOKEN" RUN_ID="one-$(date +%s)" BATCH=100 wrk -t4 -c16 -d"${DUR}s" --latency -s bench/events.lua "${URLS[0]}" > "$WORK/events-one.txt"
END=$(date +%s.%N)
grep -h -E "Requests/sec|Non-2xx" "$WORK/events-one.txt" | sed 's/^/  /'
verify_since "$BEFORE" "$START" "$END" "${URLS[1]}"

step "POST /v1/events on PostgreSQL: batches of 100 unique events to all 3 replicas at once, ${DUR}s"
BEFORE=$(last_seq "${URLS[0]}")
START=$(date +%s.%N)
n=0; LOAD=()
for u in "${URLS[@]}"; do
  n=$((n+1))
  AA_TOKEN="$TOKEN" RUN_ID="r$n-$(date +%s)" BATCH=100 wrk -t2 -c8 -d"${DUR}s" --latency -s bench/events.lua "$u" > "$WORK/events-$n.txt" &
  LOAD+=($!)
done
wait "${LOAD[@]}"
END=$(date +%s.%N)
grep -h -E "Requests/sec|Non-2xx" "$WORK"/events-?.txt | sed 's/^/  /'
verify_since "$BEFORE" "$START" "$END" "${URLS[1]}"
