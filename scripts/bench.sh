#!/usr/bin/env bash
# Benchmarks of aa-core, side by side with the peers in the same run:
#   - decision latency (p50/p99) for the peer policy-set shapes of 10/100/1,000 policies,
#     plus raw cedar-policy on the peers' exact files;
#   - cedarpy and @cedar-policy/cedar-wasm on those files (../shared/bench/run_peers.sh);
#   - audit append with hashing and verify throughput (criterion).
# Usage: scripts/bench.sh [RUNS=1]   Results: /tmp/aa-bench/results.jsonl and a printed table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
RUNS="${1:-1}"
PEERS="${AA_PEER_BENCH:-../shared/bench}"
OUT=/tmp/aa-bench
rm -rf "$OUT" && mkdir -p "$OUT"

if [ -f "$PEERS/cedar_policies.py" ]; then
  python3 "$PEERS/cedar_policies.py" "$OUT/data" >/dev/null
  export AA_PEER_DATA="$OUT/data"
else
  echo "note: $PEERS not found; skipping the raw-Cedar and peer baselines" >&2
fi

step "aa-core decision latency (criterion + per-call percentiles)"
for _ in $(seq 1 "$RUNS"); do
  AA_BENCH_JSON="$OUT/results.jsonl" cargo bench -p aa-core --bench decide --locked 2>&1 \
    | grep -E "^(decide/|aa-core|cedar-policy|per-call)| time:"
done

step "aa-core audit throughput (append with hashing, verify)"
cargo bench -p aa-core --bench audit --locked 2>&1 | grep -E "^audit/|time:|thrpt:"

if [ -x "$PEERS/run_peers.sh" ] || [ -f "$PEERS/run_peers.sh" ]; then
  step "peers: cedarpy and cedar-wasm on the same policy sets"
  WORK="$OUT/peers" bash "$PEERS/run_peers.sh" "$RUNS" | tail -n 20
  cat "$OUT"/peers/results/*.jsonl >> "$OUT/results.jsonl"
  step "side by side"
  python3 "$PEERS/summarize.py" "$OUT/results.jsonl"
fi
