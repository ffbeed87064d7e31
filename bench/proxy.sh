#!/usr/bin/env bash
# Proxy load benchmark: a release `aasm proxy` (policy from a real `aasm gateway`, audit batched
# to it) against the same local nginx HTTPS upstream as going direct and as mitmdump, in one run,
# with the shared harness ../shared/bench/proxy_bench.sh (oha as the load tool).
#  - saturation req/s over 16 kept-alive TLS-intercepted connections;
#  - p50/p99 at a steady rate (default 3,000 req/s), added latency = proxy minus direct;
#  - then the leaf-certificate criterion bench (mint a new host, cached hit, 10,000-host cache);
#  - the host's steal time over the run (a VM's vCPUs taken by the hypervisor), so a run on a
#    contended host is told apart from the proxy's own latency.
# Usage: bench/proxy.sh [--rounds N] [--rate RPS] [--duration S] [--http2] [other harness options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
HARNESS="${AA_PROXY_BENCH_HARNESS:-$(cd .. && pwd)/shared/bench/proxy_bench.sh}"
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "proxy bench harness not found at $HARNESS" >&2; exit 1; }
WORK=/var/cache/aa/bench-proxy
export PROXYBENCH_DIR="$WORK/harness"
mkdir -p "$WORK" "$PROXYBENCH_DIR"

step "build aasm (release)"
cargo build --release -p aasm --locked --quiet
AASM="$CARGO_TARGET_DIR/release/aasm"
source scripts/gateway-lib.sh
trap gateway_stop EXIT
export AA_ADMIN_TOKEN="bench-admin-$(date +%s%N)"
rm -rf "$WORK"/gw.db* "$WORK/results"
GW_LOG="$WORK/gateway.log" gateway_start "$WORK/gw.db" --policy bench/policy

step "local CA for the proxy (not added to the system store)"
"$AASM" proxy install-ca --ca-dir "$WORK/ca" --trust-dir "$WORK/trust" > /dev/null

step "proxy bench: direct vs mitmdump vs aasm proxy"
# Steal sampler: one line a second, "epoch steal-jiffies wanted-jiffies" from /proc/stat (wanted =
# all but idle and iowait: steal only happens while a vCPU has work).
STEAL="$WORK/steal.tsv"
: > "$STEAL"
( while :; do
    awk -v t="$(date +%s)" '/^cpu /{s=0; for(i=2;i<=NF;i++) s+=$i; print t, $9, s-$5-$6; exit}' /proc/stat
    sleep 1
  done >> "$STEAL" ) &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null || true; gateway_stop' EXIT
PORT="${AA_PROXY_BENCH_PORT:-18090}"
CMD="env RUST_LOG=warn AA_TOKEN=$AA_ADMIN_TOKEN $AASM proxy run --listen 127.0.0.1:$PORT --ca-dir $WORK/ca --state-dir $WORK/state"
CMD+=" --gateway $GW_URL --default-agent bench --upstream-ca \$PROXYBENCH_UPSTREAM_CA"
bash "$HARNESS" --install --rate 3000 --extra-name aasm --extra-url "http://127.0.0.1:$PORT" \
  --extra-cmd "$CMD" --extra-ca "$WORK/ca/ca.pem" --out "$WORK/results" "$@"
kill "$SAMPLER" 2>/dev/null || true
cat "$WORK/results/table.md"
python3 - "$STEAL" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 3]
pct = lambda a, b: 100.0 * (b[1] - a[1]) / max(1, b[2] - a[2])
if len(rows) < 2:  # an annotation: its absence is said, and does not fail the bench
    print("host steal: not sampled")
else:
    worst = max((pct(rows[i], rows[i + 10]) for i in range(len(rows) - 10)), default=pct(rows[0], rows[-1]))
    print(f"host steal (of the time our vCPUs had work, the share the hypervisor ran others): "
          f"{pct(rows[0], rows[-1]):.1f}% over {rows[-1][0] - rows[0][0]} s, worst 10 s {worst:.1f}%; "
          "latency figures from a run with steal above a few % measure the host, not the proxy.")
PY
step "the audit chain the proxy wrote to the gateway"
curl -sS -H "Authorization: Bearer $AA_ADMIN_TOKEN" "$GW_URL/v1/audit/verify"; echo

step "leaf certificates (criterion)"
cargo bench -p aa-proxy --bench leaf_cert --locked -- --noplot 2>&1 | grep -a -E "time:|hosts cached" || true
