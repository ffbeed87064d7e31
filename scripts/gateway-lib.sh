# Sourced: start and stop a real `aasm gateway` for scripts. Needs scripts/env.sh first.

# gateway_start DB [--policy DIR ...]: starts a gateway on a free port; sets GW_PID and GW_URL.
gateway_start() {
  local db="$1"; shift
  local out; out=$(mktemp)
  AA_ADMIN_TOKEN="$AA_ADMIN_TOKEN" "$AASM" gateway --listen 127.0.0.1:0 --db "$db" "$@" \
    > "$out" 2>> "${GW_LOG:-/dev/null}" &
  GW_PID=$!
  for _ in $(seq 1 100); do
    GW_URL=$(sed -n 's/^listening on //p' "$out")
    [ -n "$GW_URL" ] && break
    kill -0 "$GW_PID" 2>/dev/null || { echo "the gateway did not start" >&2; return 1; }
    sleep 0.1
  done
  rm -f "$out"
  [ -n "$GW_URL" ] || { echo "the gateway did not report its address" >&2; return 1; }
  export GW_URL GW_PID
}

gateway_stop() {
  [ -n "${GW_PID:-}" ] || return 0
  kill -TERM "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}
