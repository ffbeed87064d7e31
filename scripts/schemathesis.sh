#!/usr/bin/env bash
# schemathesis (PyPI) against docs/openapi.yaml and a live gateway: no 5xx, no response that
# breaks the schema, auth enforced. `positive_data_acceptance` is left out: the server rejects
# some schema-valid inputs on purpose (empty ids, control characters, a non-empty `suspended`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/gateway-lib.sh
VENV="${AA_VENV:-/var/cache/aa/venv}"
WORK=$(mktemp -d)
trap 'gateway_stop; rm -rf "$WORK"' EXIT
export AA_ADMIN_TOKEN="schemathesis-admin-$(date +%s%N)"
GW_LOG="$WORK/gateway.log" gateway_start "$WORK/gw.db" --policy examples/policies/permissive
"$VENV/bin/st" run docs/openapi.yaml --url "$GW_URL" \
  -H "Authorization: Bearer $AA_ADMIN_TOKEN" \
  --checks all --exclude-checks positive_data_acceptance \
  --exclude-path /v1/audit/stream \
  --max-examples "${ST_MAX_EXAMPLES:-40}" --request-timeout 10 --seed 1 \
  --no-color 2>&1 | tee "$WORK/st.log" | tail -n 25 || { cp "$WORK/st.log" /tmp/st-full.log; exit 1; }
# After the fuzzing, the chain the gateway wrote still verifies.
AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit verify
if grep -q '"level":"ERROR"\|ERROR' "$WORK/gateway.log"; then
  echo "the gateway logged errors during fuzzing:" >&2
  grep ERROR "$WORK/gateway.log" | head >&2
  exit 1
fi
