#!/usr/bin/env bash
# `aasm run` start-up cost (root): the time from launching `aasm run` to the command's first
# instruction, with each layer and with all of them, an embedded gateway every time (a release
# build). The command is `date +%s%N`: its output is the moment it ran, give or take its own
# start (the same in every row, and in the `direct` row: `date` launched without aasm run).
# Rows alternate each round; the table shows the median and the 90th percentile.
# Usage: bench/run-startup.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS=21
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "the eBPF layer needs root: run the bench as root" >&2; exit 1; }
cargo build --release -p aasm --locked --quiet
BIN="$CARGO_TARGET_DIR/release/aasm"
WORK=$(mktemp -d /tmp/aa-run-startup-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
POLICY=examples/agents/policy

declare -A ARGS=(
  [direct]=""
  [gateway]="--without proxy --without ebpf"
  [gateway+proxy]="--without ebpf"
  [gateway+ebpf]="--without proxy"
  [gateway+landlock]="--without proxy --without ebpf --allow-write $WORK"
  [all]="--allow-write $WORK"
)
ROWS=(direct gateway gateway+proxy gateway+ebpf gateway+landlock all)
declare -A SAMPLES
for ((i = 0; i < ROUNDS; i++)); do
  for row in "${ROWS[@]}"; do
    rm -rf "$WORK/run"
    t0=$(date +%s%N)
    if [ "$row" = direct ]; then
      t1=$(date +%s%N)
    else
      # shellcheck disable=SC2086
      t1=$("$BIN" run --policy "$POLICY" --state-dir "$WORK/run" ${ARGS[$row]} -- date +%s%N 2>/dev/null | head -n 1)
    fi
    SAMPLES[$row]+="$(( (t1 - t0) / 1000 )) "
  done
done
printf '%-18s %12s %12s   (%s rounds, %s)\n' "layers" "median ms" "p90 ms" "$ROUNDS" "$(uname -r)"
for row in "${ROWS[@]}"; do
  python3 - "$row" ${SAMPLES[$row]} <<'PY'
import statistics, sys
row, xs = sys.argv[1], sorted(int(x) / 1000 for x in sys.argv[2:])
p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
print(f"{row:<18} {statistics.median(xs):>12.1f} {p90:>12.1f}")
PY
done
