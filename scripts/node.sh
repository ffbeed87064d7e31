#!/usr/bin/env bash
# The Node SDK (bindings/node: crate aa-node, napi-rs 3; npm package agent-assembly).
#   scripts/node.sh build   the native module (release, stripped) → bindings/node/native/, plus the
#                           generated loader and index.d.ts (committed; a test checks they are current)
#   scripts/node.sh test    tools, build, `aasm`, then node --test bindings/node/tests/*.test.mjs:
#                           conformance, govern, a real aasm gateway (SIGKILL/restart), Python
#                           parity and a budget shared with Python, the adapters with the real npm
#                           packages, tsc --strict on examples/typescript, typegen drift, npm pack
#   scripts/node.sh bench   tools, build, a release `aasm`, then bench/bench.mjs (mitata) beside cedar-wasm
# Tools (pinned in bindings/node/tools/package-lock.json) are installed with `npm ci` into
# $AA_NODE_TOOLS (default /var/cache/aa/node-tools-node), outside the clone, only when the lock
# changed; bindings/node/node_modules and examples/typescript/node_modules link to them (ignored).
# The Python side of the parity and shared-budget tests is the agent_assembly installed in
# $AA_SDK_VENV (scripts/python-sdk.sh test installs it there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export AA_NODE_TOOLS="${AA_NODE_TOOLS:-/var/cache/aa/node-tools-node}"
SDK_VENV="${AA_SDK_VENV:-/var/cache/aa/venv-sdk}"
PKG=bindings/node

log() { printf '[node] %s\n' "$*" >&2; }

tools() {
  mkdir -p "$AA_NODE_TOOLS"
  if ! cmp -s "$PKG/tools/package-lock.json" "$AA_NODE_TOOLS/package-lock.json" \
     || [ ! -d "$AA_NODE_TOOLS/node_modules" ]; then
    log "npm ci into $AA_NODE_TOOLS"
    cp "$PKG/tools/package.json" "$PKG/tools/package-lock.json" "$AA_NODE_TOOLS/"
    # Some pinned dev tools declare node >=22 (EBADENGINE warnings); they run on Node 20.
    (cd "$AA_NODE_TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  ln -sfn "$AA_NODE_TOOLS/node_modules" "$PKG/node_modules"
  ln -sfn "$AA_NODE_TOOLS/node_modules" examples/typescript/node_modules
}

build() {
  log "napi build (release, stripped) → $PKG/native"
  (cd "$PKG" && "$AA_NODE_TOOLS/node_modules/.bin/napi" build --platform --release --strip \
     --output-dir native --js index.cjs --dts index.d.ts >/dev/null)
  ls -l "$PKG"/native/*.node >&2
}

python_sdk() {
  "$SDK_VENV/bin/python" -c 'import agent_assembly' 2>/dev/null || {
    echo "the parity and shared-budget tests need agent_assembly in $SDK_VENV: run scripts/python-sdk.sh test first" >&2
    exit 1
  }
}

case "${1:-test}" in
  build) tools; build ;;
  test)
    tools
    build
    python_sdk
    cargo build -p aasm --locked --quiet   # the tests start the real gateway
    log "node --test ($(node --version))"
    (cd "$PKG" && AASM="$AASM" AA_SDK_PYTHON="$SDK_VENV/bin/python" \
       node --test --test-concurrency=1 tests/*.test.mjs)
    ;;
  bench)
    tools
    build
    # A release gateway: a debug one would spend the shared cores the measured process needs.
    cargo build -p aasm --release --locked --quiet
    (cd "$PKG" && AASM="$CARGO_TARGET_DIR/release/aasm" node bench/bench.mjs "${@:2}")
    ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
