#!/usr/bin/env bash
# Proxy load benchmark: a release `aasm proxy` (policy from a real `aasm gateway`, audit batched
# to it) against the same local nginx HTTPS upstream as going direct and as mitmdump, in one run,
# with the shared harness ../shared/bench/proxy_bench.sh (oha as the load tool).
#  - saturation req/s over 16 kept-alive TLS-intercepted connections;
#  - p50/p99 at a steady rate (default 3,000 req/s), added latency = proxy minus direct;
#  - then the leaf-certificate criterion bench (mint a new host, cached hit, 10,000-host cache).
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
PORT="${AA_PROXY_BENCH_PORT:-18090}"
CMD="env RUST_LOG=warn AA_TOKEN=$AA_ADMIN_TOKEN $AASM proxy run --listen 127.0.0.1:$PORT --ca-dir $WORK/ca --state-dir $WORK/state"
CMD+=" --gateway $GW_URL --default-agent bench --upstream-ca \$PROXYBENCH_UPSTREAM_CA"
bash "$HARNESS" --install --rate 3000 --extra-name aasm --extra-url "http://127.0.0.1:$PORT" \
  --extra-cmd "$CMD" --extra-ca "$WORK/ca/ca.pem" --out "$WORK/results" "$@"
cat "$WORK/results/table.md"
step "the audit chain the proxy wrote to the gateway"
curl -sS -H "Authorization: Bearer $AA_ADMIN_TOKEN" "$GW_URL/v1/audit/verify"; echo

step "leaf certificates (criterion)"
cargo bench -p aa-proxy --bench leaf_cert --locked -- --noplot 2>&1 | grep -a -E "time:|hosts cached" || true
