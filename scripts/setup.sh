#!/usr/bin/env bash
# Installs what Agent Assembly's build, demo and tests need on Debian 12 (run as root).
# Idempotent: every step checks first and is skipped quickly when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# The downloads (Debian packages, PyPI, npm) wait on the network and dpkg, the two cargo installs
# on the CPU: they run side by side, each background job with its own log, shown if it fails.
JOB_LOGS=$(mktemp -d)
# On a failure the jobs still running are stopped, not left behind.
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$JOB_LOGS"' EXIT
declare -A JOB_PIDS=()
background() {  # background NAME FUNCTION: run FUNCTION in the background, its output in a log
  "$2" >"$JOB_LOGS/$1.log" 2>&1 &
  JOB_PIDS[$1]=$!
}
await() {  # await NAME: wait for a background job; on failure show its log and stop
  if ! wait "${JOB_PIDS[$1]}"; then
    log "$1 failed:"
    cat "$JOB_LOGS/$1.log" >&2
    exit 1
  fi
  cat "$JOB_LOGS/$1.log" >&2
}

# Debian packages: the wasm32 toolchain (Debian's rustc-web, linked into rustup as `web`) and
# the eBPF one (core for bpfel-unknown-none, which pulls clang/LLVM 22; bpftool); valgrind for the
# FFI binding's leak check; PostgreSQL for the replica tests (scripts/pg.sh runs its own
# throwaway cluster; the package's default cluster is not used). Debian's chromium (without its
# recommends) for the WASM package's browser test.
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 libstd-rust-web-dev-bpf bpftool valgrind postgresql)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
debian_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
  if ((${#missing[@]})) || ! installed chromium; then apt-get update -qq; fi
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! installed chromium; then
    log "installing chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
}

# A venv with pinned packages, rebuilt when the pins change (a marker file holds them).
pip_venv() {  # pip_venv DIR PACKAGE...
  local venv=$1
  shift
  if [ ! -f "$venv/.aa-ready" ] || [ "$(cat "$venv/.aa-ready")" != "$*" ]; then
    log "installing $* into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$@"
    echo "$*" > "$venv/.aa-ready"
  fi
}
# An npm directory with pinned packages, the same way.
npm_dir() {  # npm_dir DIR PACKAGE...
  local dir=$1
  shift
  if [ ! -f "$dir/.aa-ready" ] || [ "$(cat "$dir/.aa-ready")" != "$*" ]; then
    log "installing $* into $dir"
    mkdir -p "$dir"
    # Some pins declare node >=22 (EBADENGINE warnings, e.g. openai 7); they run on Node 20.
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --save-exact "$@" >/dev/null)
    echo "$*" > "$dir/.aa-ready"
  fi
}

# Python tools for the tests (outside the clone, like the build cache): schemathesis.
schemathesis_venv() { pip_venv "${AA_VENV:-/var/cache/aa/venv}" "schemathesis==4.32.5"; }
# The Python SDK's build and test tools (its own venv: framework pins differ from schemathesis).
# openai and mcp (2.x) are also what the example Python agent (examples/agents/python) imports.
sdk_venv() {
  pip_venv "${AA_SDK_VENV:-/var/cache/aa/venv-sdk}" "maturin>=1.16,<2" "pytest>=8" \
    "pytest-asyncio>=0.24" "pytest-benchmark>=5" cedarpy langchain-core openai-agents openai mcp \
    ruff "mypy>=1.10" requests "httpx[http2]"
}
# The proxy's peers, the SDKs users run through it (their own venv: `mcp` 1.x here, while
# openai-agents in the SDK venv pulls mcp 2.x): the MCP Python SDK, anthropic, LiteLLM, openai.
proxy_venv() {
  pip_venv "${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}" "mcp==1.30.0" "anthropic==2.14.0" \
    "litellm==1.110.2" "openai==3.57.0" "uvicorn==0.54.0" "pytest>=8" "pytest-asyncio>=0.24" \
    requests "httpx[http2]" websockets
}
# Node peers for the proxy tests: undici (fetch through a proxy on Node 20), the MCP TypeScript
# SDK, the Vercel AI SDK and its OpenAI provider (ai 6 / @ai-sdk/openai 3: the newest that run on
# Node 20; ai 7 needs Node 22).
proxy_node_tools() {
  npm_dir "${AA_NODE_TOOLS:-/var/cache/aa/node-tools}" undici@6.29.1 @modelcontextprotocol/sdk@1.32.2 \
    ai@6.0.325 @ai-sdk/openai@3.0.141 zod@4.6.7
}
# The TypeScript example agent (examples/agents/typescript): the official openai npm SDK, the MCP
# TypeScript SDK, undici (Node 20's fetch ignores HTTPS_PROXY) and tsc. Outside the clone;
# examples/agents/typescript/build.sh links it as node_modules.
agents_node_tools() {
  npm_dir "${AA_AGENTS_NODE_TOOLS:-/var/cache/aa/node-tools-agents}" openai@7.59.0 \
    @modelcontextprotocol/sdk@1.32.2 undici@6.29.1 zod@4.6.7 typescript@7.0.2 @types/node@20.19.30
}
# The WASM package's browser test: playwright-core (npm) drives Debian's chromium;
# @cedar-policy/cedar-wasm for the size/speed comparison; outside the clone.
wasm_node_tools() {
  npm_dir "${AA_WASM_NODE_TOOLS:-/var/cache/aa/node-tools-wasm}" playwright-core@1.65.1 \
    @cedar-policy/cedar-wasm@4
}

background debian debian_packages
for job in schemathesis_venv sdk_venv proxy_venv proxy_node_tools agents_node_tools wasm_node_tools; do
  background "$job" "$job"
done

for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# wasm-bindgen's CLI, the exact version of the crate's pinned `wasm-bindgen` (bindings/wasm).
# Not --locked: its lock file pins a crate the index no longer has.
WASM_BINDGEN_VERSION=0.2.130
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "building wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install -q "wasm-bindgen-cli@$WASM_BINDGEN_VERSION"
fi

await debian
if ! rustup toolchain list | grep -q '^web'; then
  log "linking Debian's rustc-web as the rustup toolchain 'web'"
  rustup toolchain link web /usr
fi

# bpf-linker links the kernel programs (aa-ebpf's build script runs it through `cargo +web`).
BPF_LINKER_VERSION=0.13.0
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/bpf-linker" --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "building bpf-linker $BPF_LINKER_VERSION against LLVM 22"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install -q "bpf-linker@$BPF_LINKER_VERSION" --locked \
    --no-default-features --features llvm-22
fi

for job in schemathesis_venv sdk_venv proxy_venv proxy_node_tools agents_node_tools wasm_node_tools; do
  await "$job"
done
log "ready"
