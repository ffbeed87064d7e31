#!/usr/bin/env bash
# What durable budgets cost /v1/decide: the same allowed decision against a real release
# `aasm gateway`, once with no budget (the record is queued) and once under a budget that is
# never reached (the answer waits for the group commit that stores the record and the charge).
# Usage: bench/budget-decide.sh [SECONDS=5] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DUR="${1:-5}"; CONN="${2:-32}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p aasm --locked --quiet
AASM="$CARGO_TARGET_DIR/release/aasm"
source scripts/gateway-lib.sh
WORK=/var/cache/aa/bench-budget
trap gateway_stop EXIT
export AA_ADMIN_TOKEN="bench-admin-$(date +%s%N)"
run() {
  local name="$1" budgets="$2"
  rm -rf "$WORK/$name" && mkdir -p "$WORK/$name/policy"
  echo 'permit(principal, action, resource);' > "$WORK/$name/policy/p.cedar"
  [ -n "$budgets" ] && printf '%s\n' "$budgets" > "$WORK/$name/policy/budgets.toml"
  GW_LOG="$WORK/$name/gateway.log" gateway_start "$WORK/$name/gw.db" --policy "$WORK/$name/policy"
  local token
  token=$(AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" --json agents register bench \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
  AA_TOKEN="$token" wrk -t2 -c"$CONN" -d2s -s bench/decide.lua "$GW_URL/v1/decide" > /dev/null
  step "$name: POST /v1/decide, ${CONN} connections, ${DUR}s"
  AA_TOKEN="$token" wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s bench/decide.lua "$GW_URL/v1/decide" \
    | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx"
  gateway_stop
}
run "no-budget" ""
run "durable-budget" $'[[budget]]\nname = "big"\nwindow = "total"\ncalls = 1000000000'
