#!/usr/bin/env bash
# Runs every test of Agent Assembly (set-up included). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh

step "format"
cargo fmt --all -- --check
cargo fmt --manifest-path ebpf/probes/Cargo.toml -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests (core, SDK client, gateway, CLI; the gateway tests run the real aasm gateway)"
cargo test --workspace --exclude aa-python --locked

step "schemathesis against docs/openapi.yaml and a live gateway"
scripts/schemathesis.sh

step "example policies pass their case tables"
for dir in examples/policies/*/; do
  "$AASM" policy check "$dir"
  "$AASM" policy test "$dir" "$dir/cases.toml" >/dev/null
  echo "ok: $dir cases"
done

step "Python SDK: build the wheel, install it in a fresh venv, run its tests"
scripts/python-sdk.sh test

step "Node SDK (napi-rs): the native module, the agent-assembly package, conformance, a real gateway, the adapters with the real npm packages, npm pack"
scripts/node.sh test

step "proxy: real HTTPS upstreams, a real gateway; curl, requests, httpx, Node fetch; the MCP SDKs (Python, TypeScript), openai, anthropic, LiteLLM, Vercel AI"
cargo build -p aasm --locked --quiet
(cd proxy/tests && AASM="$AASM" "${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}/bin/pytest" -q -p no:cacheprovider .)

step "eBPF on the real kernel (root): observation scoped to a cgroup, records at a real gateway, enforcement"
(cd ebpf/tests && AASM="$AASM" "${AA_SDK_VENV:-/var/cache/aa/venv-sdk}/bin/pytest" -q -p no:cacheprovider -rs .)

step "aasm run end to end (root): the example agents (Python, TypeScript) under the SDK, the proxy and the eBPF layer; curl; levels; bypasses; teardown after SIGKILL and SIGINT"
examples/agents/typescript/build.sh
(cd cli/tests/run && AASM="$AASM" "${AA_PROXY_VENV:-/var/cache/aa/venv-proxy}/bin/pytest" -q -p no:cacheprovider -rs .)

step "FFI binding (uniffi): libaa_ffi.so, generated Python bindings, conformance, audit, gateway, memory"
scripts/ffi.sh test

# aa-wasm depends on aa-core without default features: its build is also the proof that the
# core builds for wasm32-unknown-unknown (warnings are errors there too).
step "WASM package: aa-wasm (and aa-core without default features) for wasm32, node + web glue, node tests incl. the conformance table"
CARGO_TARGET_DIR="$AA_WASM_TARGET_DIR" scripts/wasm.sh test

step "all tests passed"
