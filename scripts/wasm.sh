#!/usr/bin/env bash
# Builds the WASM package (bindings/wasm → bindings/wasm/pkg/{node,web}) and runs its tests.
#   scripts/wasm.sh build   only build the .wasm and the wasm-bindgen glue
#   scripts/wasm.sh test    build, then the node tests (node --test)
# Toolchain (scripts/setup.sh): Debian's rustc-web linked as rustup toolchain `web`, rust-lld,
# wasm-bindgen-cli pinned to the crate's wasm-bindgen version.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[wasm] %s\n' "$*" >&2; }
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
PKG=bindings/wasm/pkg
WASM="$TARGET_DIR/wasm32-unknown-unknown/wasm-release/aa_wasm.wasm"
WASM_BINDGEN="${WASM_BINDGEN:-$(command -v wasm-bindgen || echo "${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen")}"

build() {
  log "cargo +web build aa-wasm (wasm32-unknown-unknown, build-std)"
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="-D warnings" cargo +web build -q --locked -p aa-wasm --profile wasm-release \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
  local flags=(--remove-name-section --remove-producers-section)
  "$WASM_BINDGEN" "${flags[@]}" --target nodejs --out-dir "$PKG/node" "$WASM"
  "$WASM_BINDGEN" "${flags[@]}" --target web --out-dir "$PKG/web" "$WASM"
  # The package is ESM ("type": "module"); the nodejs glue is CommonJS.
  echo '{"type": "commonjs"}' > "$PKG/node/package.json"
  log "aa_wasm_bg.wasm: $(stat -c %s "$PKG/web/aa_wasm_bg.wasm") bytes, gzip $(gzip -9c "$PKG/web/aa_wasm_bg.wasm" | wc -c)"
}

case "${1:-test}" in
  build) build ;;
  test)
    build
    # The size promise, checked on every run: our .wasm gzips no larger than cedar-wasm's.
    theirs="${AA_WASM_NODE_TOOLS:-/var/cache/aa/node-tools-wasm}/node_modules/@cedar-policy/cedar-wasm/web/cedar_wasm_bg.wasm"
    ours_gz=$(gzip -9c "$PKG/web/aa_wasm_bg.wasm" | wc -c)
    theirs_gz=$(gzip -9c "$theirs" | wc -c)
    if [ "$ours_gz" -gt "$theirs_gz" ]; then
      echo "aa_wasm_bg.wasm gzips to $ours_gz B, larger than cedar-wasm's $theirs_gz B" >&2; exit 1
    fi
    echo "ok: .wasm gzip -9 $ours_gz B <= cedar-wasm $theirs_gz B"
    log "node --test"
    node --test bindings/wasm/tests/
    log "records chained in WASM verify with aasm audit verify (\$AASM)"
    [ -x "${AASM:-}" ] || { echo "AASM must name the aasm binary (scripts/env.sh sets it)" >&2; exit 1; }
    local_dir=$(mktemp -d)
    trap 'rm -rf "$local_dir"' EXIT
    key=$(node bindings/wasm/tests/write-audit.mjs "$local_dir/audit.jsonl")
    "$AASM" audit verify --strict --public-key "$key" "$local_dir/audit.jsonl"
    sed 's/"tool":"write"/"tool":"wrote"/' "$local_dir/audit.jsonl" > "$local_dir/tampered.jsonl"
    if "$AASM" audit verify "$local_dir/tampered.jsonl" >/dev/null 2>&1; then
      echo "a tampered WASM audit file verified" >&2; exit 1
    fi
    echo "ok: a tampered WASM audit file is refused"
    log "events drained from WASM, posted to a real aasm gateway (/v1/events), verify there"
    source scripts/gateway-lib.sh
    export AA_ADMIN_TOKEN="wasm-admin-$(date +%s%N)"
    trap 'gateway_stop; rm -rf "$local_dir"' EXIT
    GW_LOG="$local_dir/gateway.log" gateway_start "$local_dir/gw.db" --policy examples/policies/permissive
    posted=$(node bindings/wasm/tests/post-gateway.mjs "$GW_URL" "$AA_ADMIN_TOKEN")
    out=$(AA_GATEWAY_URL="$GW_URL" AA_TOKEN="$AA_ADMIN_TOKEN" "$AASM" audit verify 2>&1)
    echo "$out"
    grep -q "^ok: $posted records" <<< "$out" || { echo "expected $posted verified records" >&2; exit 1; }
    gateway_stop
    log "headless chromium: the package in a page and a web worker on localhost"
    node bindings/wasm/tests/browser/run.mjs "${AA_WASM_NODE_TOOLS:-/var/cache/aa/node-tools-wasm}"
    ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac
