#!/usr/bin/env bash
# Installs what Agent Assembly's build, demo and tests need on Debian 12 (run as root).
# Idempotent: every step checks first and is skipped quickly when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: the wasm32 toolchain (Debian's rustc-web, linked into rustup as `web`) and
# the eBPF one (core for bpfel-unknown-none, which pulls clang/LLVM 22; bpftool); valgrind for the
# FFI binding's leak check; PostgreSQL for the replica tests (scripts/pg.sh runs its own
# throwaway cluster; the package's default cluster is not used).
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 libstd-rust-web-dev-bpf bpftool valgrind postgresql)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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

# wasm-bindgen's CLI, the exact version of the crate's pinned `wasm-bindgen` (bindings/wasm).
# Not --locked: its lock file pins a crate the index no longer has.
WASM_BINDGEN_VERSION=0.2.130
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "building wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install -q "wasm-bindgen-cli@$WASM_BINDGEN_VERSION"
fi

# Python tools for the tests (outside the clone, like the build cache).
VENV="${AA_VENV:-/var/cache/aa/venv}"
SCHEMATHESIS_VERSION=4.32.5
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The Python SDK's build and test tools (its own venv: framework pins differ from schemathesis).
SDK_VENV="${AA_SDK_VENV:-/var/cache/aa/venv-sdk}"
# openai and mcp (2.x) are also what the example Python agent (examples/agents/python) imports.
SDK_PACKAGES=("maturin>=1.16,<2" "pytest>=8" "pytest-asyncio>=0.24" "pytest-benchmark>=5" cedarpy langchain-core openai-agents openai mcp ruff "mypy>=1.10" requests "httpx[http2]")
if [ ! -f "$SDK_VENV/.aa-ready" ] || [ "$(cat "$SDK_VENV/.aa-ready")" != "${SDK_PACKAGES[*]}" ]; then
  log "installing the Python SDK tools into $SDK_VENV"
  python3 -m venv "$SDK_VENV"
  "$SDK_VENV/bin/pip" install -q "${SDK_PACKAGES[@]}"
  echo "${SDK_PACKAGES[*]}" > "$SDK_VENV/.aa-ready"
fi

# The proxy's peers, the SDKs users run through it (their own venv: `mcp` 1.x here, while
# openai-agents in the SDK venv pulls mcp 2.x): the MCP Python SDK, anthropic, LiteLLM, openai.
PROXY_VENV="${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}"
PROXY_PACKAGES=("mcp==1.30.0" "anthropic==2.14.0" "litellm==1.110.2" "openai==3.57.0" "uvicorn==0.54.0" "pytest>=8" "pytest-asyncio>=0.24" requests "httpx[http2]" websockets)
if [ ! -f "$PROXY_VENV/.aa-ready" ] || [ "$(cat "$PROXY_VENV/.aa-ready")" != "${PROXY_PACKAGES[*]}" ]; then
  log "installing the proxy tests' SDKs into $PROXY_VENV"
  python3 -m venv "$PROXY_VENV"
  "$PROXY_VENV/bin/pip" install -q "${PROXY_PACKAGES[@]}"
  echo "${PROXY_PACKAGES[*]}" > "$PROXY_VENV/.aa-ready"
fi

# Node peers for the proxy tests: undici (fetch through a proxy on Node 20), the MCP TypeScript
# SDK, the Vercel AI SDK and its OpenAI provider (ai 6 / @ai-sdk/openai 3: the newest that run on
# Node 20; ai 7 needs Node 22).
NODE_TOOLS="${AA_NODE_TOOLS:-/var/cache/aa/node-tools}"
NODE_PACKAGES=(undici@6.29.1 @modelcontextprotocol/sdk@1.32.2 ai@6.0.325 @ai-sdk/openai@3.0.141 zod@4.6.7)
if [ ! -f "$NODE_TOOLS/.aa-ready" ] || [ "$(cat "$NODE_TOOLS/.aa-ready")" != "${NODE_PACKAGES[*]}" ]; then
  log "installing ${NODE_PACKAGES[*]} into $NODE_TOOLS"
  mkdir -p "$NODE_TOOLS"
  (cd "$NODE_TOOLS" && npm install --silent --no-audit --no-fund --save-exact "${NODE_PACKAGES[@]}" >/dev/null)
  echo "${NODE_PACKAGES[*]}" > "$NODE_TOOLS/.aa-ready"
fi

# The TypeScript example agent (examples/agents/typescript): the official openai npm SDK, the MCP
# TypeScript SDK, undici (Node 20's fetch ignores HTTPS_PROXY) and tsc. Outside the clone;
# examples/agents/typescript/build.sh links it as node_modules.
AGENTS_NODE_TOOLS="${AA_AGENTS_NODE_TOOLS:-/var/cache/aa/node-tools-agents}"
AGENTS_NODE_PACKAGES=(openai@7.59.0 @modelcontextprotocol/sdk@1.32.2 undici@6.29.1 zod@4.6.7 typescript@7.0.2 @types/node@20.19.30)
if [ ! -f "$AGENTS_NODE_TOOLS/.aa-ready" ] || [ "$(cat "$AGENTS_NODE_TOOLS/.aa-ready")" != "${AGENTS_NODE_PACKAGES[*]}" ]; then
  log "installing ${AGENTS_NODE_PACKAGES[*]} into $AGENTS_NODE_TOOLS"
  mkdir -p "$AGENTS_NODE_TOOLS"
  # openai 7 declares node >=22 (an EBADENGINE warning); it runs on Node 20.
  (cd "$AGENTS_NODE_TOOLS" && npm install --no-audit --no-fund --loglevel=error --save-exact "${AGENTS_NODE_PACKAGES[@]}" >/dev/null)
  echo "${AGENTS_NODE_PACKAGES[*]}" > "$AGENTS_NODE_TOOLS/.aa-ready"
fi

# The WASM package's browser test: Debian's chromium driven by playwright-core (npm), and
# @cedar-policy/cedar-wasm for the size/speed comparison; outside the clone.
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  log "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
WASM_NODE_TOOLS="${AA_WASM_NODE_TOOLS:-/var/cache/aa/node-tools-wasm}"
if [ ! -d "$WASM_NODE_TOOLS/node_modules/playwright-core" ] || [ ! -d "$WASM_NODE_TOOLS/node_modules/@cedar-policy/cedar-wasm" ]; then
  log "installing playwright-core and @cedar-policy/cedar-wasm into $WASM_NODE_TOOLS"
  mkdir -p "$WASM_NODE_TOOLS"
  (cd "$WASM_NODE_TOOLS" && npm install --silent --no-audit --no-fund playwright-core@1.65.1 @cedar-policy/cedar-wasm@4 >/dev/null)
fi

for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
log "ready"
