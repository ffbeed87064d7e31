#!/usr/bin/env bash
# The Agent Assembly demo (set-up included): a scripted agent's actions decided in embedded
# mode against examples/policies/permissive, every decision in a hash-chained audit file,
# the file verified, then tampered with and caught.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh >/dev/null

step "build aasm"
cargo build -p aasm --locked --quiet

DEMO=.aa/demo
rm -rf "$DEMO" && mkdir -p "$DEMO"

step "check the policy set"
"$AASM" policy check examples/policies/permissive

step "a scripted agent's actions, decided before they run (embedded mode)"
"$AASM" decide --policy examples/policies/permissive --audit "$DEMO/audit.jsonl" \
  < examples/demo/agent-actions.jsonl || true

step "the audit file, verified (hash chain + Ed25519 checkpoints)"
"$AASM" audit tail -n 5 "$DEMO/audit.jsonl"
"$AASM" audit verify "$DEMO/audit.jsonl"

step "someone edits record 5 to hide a deny…"
sed '5s/"effect":"deny"/"effect":"allow"/' "$DEMO/audit.jsonl" > "$DEMO/tampered.jsonl"
cp "$DEMO/audit.jsonl.key" "$DEMO/tampered.jsonl.key"
if "$AASM" audit verify "$DEMO/tampered.jsonl"; then
  echo "tampering went unnoticed — this is a bug" >&2
  exit 1
fi
echo "…and verify names the record."
