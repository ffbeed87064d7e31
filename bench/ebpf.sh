#!/usr/bin/env bash
# eBPF overhead benchmark, in one run (root): the same loops inside one cgroup with and without
# the probes attached (a release `aasm ebpf attach`, policy from a real `aasm gateway`, every
# event decided and shipped to it as a `layer: ebpf` record):
#  - exec loop: N x fork+exec /bin/true (default 2,000);
#  - open loop: N x open/close /dev/null (default 100,000);
#  - sustained rate: opens paced at R/s (default 50,000) for S seconds, then the kernel's
#    lost-event counter and what userspace recorded;
#  - the floor: the open loop with a do-nothing BPF program on the layer's hook
#    (syscalls:sys_enter_openat) and on raw sys_enter (bench/ebpf_floor.py), and whether this
#    kernel loads fentry and LSM programs at all.
# Rounds alternate detached / floor / attached; the table shows medians.
# Usage: bench/ebpf.sh [--rounds N] [--execs N] [--opens N] [--rate R] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Optional CPU pinning (e.g. LOAD_CPU=0 AGENT_CPU=1) separates the probes' in-kernel cost from
# userspace competing for the same cores.
PIN_LOAD=${LOAD_CPU:+taskset -c $LOAD_CPU} PIN_AGENT=${AGENT_CPU:+taskset -c $AGENT_CPU}
ROUNDS=5 EXECS=2000 OPENS=100000 RATE=50000 SECONDS_AT_RATE=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --execs) EXECS="$2"; shift 2 ;;
    --opens) OPENS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --seconds) SECONDS_AT_RATE="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "the eBPF bench loads BPF programs: run it as root" >&2; exit 1; }
WORK=/var/cache/aa/bench-ebpf
mkdir -p "$WORK"

step "build aasm and the load generator (release)"
cargo build --release -p aasm --locked --quiet
cargo build --release -p aa-ebpf --example loadgen --locked --quiet
AASM="$CARGO_TARGET_DIR/release/aasm"
LOADGEN="$CARGO_TARGET_DIR/release/examples/loadgen"
source scripts/gateway-lib.sh
ATTACH_PID= FLOOR_PID=
cleanup() {
  [ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null
  [ -n "$ATTACH_PID" ] && kill -TERM "$ATTACH_PID" 2>/dev/null && wait "$ATTACH_PID" 2>/dev/null
  gateway_stop
  rmdir "$CGROUP" 2>/dev/null || true
}
trap cleanup EXIT
export AA_ADMIN_TOKEN="bench-admin-$(date +%s%N)"
rm -rf "$WORK"/gw.db* "$WORK/spill"
GW_LOG="$WORK/gateway.log" gateway_start "$WORK/gw.db" --policy bench/policy
[ -n "${AGENT_CPU:-}" ] && taskset -apc "$AGENT_CPU" "$GW_PID" > /dev/null
CG_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CGROUP="$CG_ROOT/aa-bench-$$"
mkdir -p "$CGROUP"
STATUS="$WORK/status.json"

attach() {
  rm -f "$STATUS"
  AA_TOKEN="$AA_ADMIN_TOKEN" AA_SPILL_DIR="$WORK/spill" RUST_LOG=warn $PIN_AGENT "$AASM" ebpf attach \
    --cgroup "$CGROUP" --gateway "$GW_URL" --agent bench --status-file "$STATUS" \
    > "$WORK/attach.out" 2>> "$WORK/attach.log" &
  ATTACH_PID=$!
  for _ in $(seq 1 300); do [ -s "$STATUS" ] && return 0; sleep 0.1; done
  echo "aasm ebpf attach did not come up (see $WORK/attach.log)" >&2; exit 1
}
detach() {
  kill -TERM "$ATTACH_PID"; wait "$ATTACH_PID" || true; ATTACH_PID=
}
run_in() { $PIN_LOAD "$AASM" ebpf exec --cgroup "$CGROUP" -- "$LOADGEN" "$@" | sed -n 's/.*"secs":\([0-9.]*\).*/\1/p'; }

# The floor: the open loop with a BPF program that does nothing on the hook the layer uses
# (bench/ebpf_floor.py), and on the cheapest other hook this kernel allows.
floor() {
  coproc FLOOR { exec python3 bench/ebpf_floor.py "$1" 2>&1; }
  local line
  read -r line <&"${FLOOR[0]}"
  [ "$line" = attached ] || { echo "ebpf_floor.py $1: $line" >&2; exit 1; }
}
unfloor() { kill "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null || true; FLOOR_PID=; }

declare -a EXEC_OFF EXEC_ON OPEN_OFF OPEN_ON OPEN_TP OPEN_RAW
step "loops: $ROUNDS rounds, $EXECS execs and $OPENS opens: detached, do-nothing programs, attached"
for r in $(seq 1 "$ROUNDS"); do
  EXEC_OFF+=("$(run_in exec "$EXECS")"); OPEN_OFF+=("$(run_in open "$OPENS")")
  floor tracepoint; OPEN_TP+=("$(run_in open "$OPENS")"); unfloor
  floor raw; OPEN_RAW+=("$(run_in open "$OPENS")"); unfloor
  attach
  EXEC_ON+=("$(run_in exec "$EXECS")"); OPEN_ON+=("$(run_in open "$OPENS")")
  detach
  echo "round $r: exec ${EXEC_OFF[-1]}s -> ${EXEC_ON[-1]}s, open ${OPEN_OFF[-1]}s -> ${OPEN_ON[-1]}s" \
    "(do-nothing program: tracepoint ${OPEN_TP[-1]}s, raw sys_enter ${OPEN_RAW[-1]}s)"
done
for hook in fentry lsm; do
  python3 bench/ebpf_floor.py "$hook" > /dev/null 2> "$WORK/$hook.err" & sleep 1
  if kill "$!" 2>/dev/null; then wait "$!" 2>/dev/null; echo "$hook: allowed"
  else echo "$hook programs on this kernel: $(cat "$WORK/$hook.err")"; fi
done

step "sustained rate: $RATE opens/s for ${SECONDS_AT_RATE}s, probes attached"
attach
RATE_OUT=$("$AASM" ebpf exec --cgroup "$CGROUP" -- "$LOADGEN" rate "$RATE" "$SECONDS_AT_RATE")
sleep 2
RATE_STATUS=$(cat "$STATUS")
detach
SUMMARY=$(tail -n 1 "$WORK/attach.out")

python3 - "$RATE_OUT" "$RATE_STATUS" "$SUMMARY" "${EXEC_OFF[*]}" "${EXEC_ON[*]}" "${OPEN_OFF[*]}" "${OPEN_ON[*]}" \
  "${OPEN_TP[*]}" "${OPEN_RAW[*]}" "$EXECS" "$OPENS" <<'PY'
import json, statistics, sys
rate, status, summary = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
eoff, eon, ooff, oon, otp, oraw = (list(map(float, a.split())) for a in sys.argv[4:10])
execs, opens = int(sys.argv[10]), int(sys.argv[11])
def row(name, n, off, on):
    m0, m1 = statistics.median(off), statistics.median(on)
    return f"| {name} | {m0*1e6/n:.2f} | {m1*1e6/n:.2f} | {100*(m1-m0)/m0:+.1f}% |"
print("| loop | detached µs/op (median) | attached µs/op (median) | slowdown |")
print("|---|---|---|---|")
print(row(f"exec x{execs} (/bin/true)", execs, eoff, eon))
print(row(f"open/close x{opens}", opens, ooff, oon))
print(row("open/close, a do-nothing program on sys_enter_openat (the floor)", opens, ooff, otp))
print(row("open/close, a do-nothing raw tracepoint on sys_enter", opens, ooff, oraw))
print()
print(f"sustained: {rate['ops']} opens in {rate['secs']:.2f}s = {rate['per_sec']:.0f}/s; kernel events "
      f"{status['events']}, lost {status['lost']}, recorded {status['recorded']}, "
      f"shipped {status['shipped']}, spilled {status['spilled']}")
print(summary)
PY
step "the audit chain at the gateway"
curl -sS -H "Authorization: Bearer $AA_ADMIN_TOKEN" "$GW_URL/v1/audit/verify"; echo
