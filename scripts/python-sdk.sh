#!/usr/bin/env bash
# The Python SDK (bindings/python): `build` makes dist/agent_assembly-*.whl; `test` builds it,
# installs it into a fresh venv (import check) and into the SDK tool venv, lints, type-checks
# (mypy --strict over the package, examples/python and examples/agents/python), and runs pytest
# against the real `aasm gateway`; `bench` runs the pytest-benchmark figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SDK_VENV="${AA_SDK_VENV:-/var/cache/aa/venv-sdk}"
ROOT=$(pwd)

build() {
  rm -f dist/agent_assembly-*.whl
  (cd bindings/python && "$SDK_VENV/bin/maturin" build --release --locked -o "$ROOT/dist" -q)
  ls dist/agent_assembly-*.whl
}

fresh_install_check() {
  local venv
  venv=$(mktemp -d)
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q dist/agent_assembly-*.whl
  "$venv/bin/python" -c "import agent_assembly; print('fresh venv: import agent_assembly', agent_assembly.__version__)"
  rm -rf "$venv"
}

install_into_tools() {
  "$SDK_VENV/bin/pip" install -q --force-reinstall --no-deps dist/agent_assembly-*.whl
}

case "${1:-test}" in
  build) build ;;
  install)
    build
    install_into_tools
    ;;
  test)
    build
    fresh_install_check
    install_into_tools
    "$SDK_VENV/bin/ruff" check bindings/python examples/python examples/agents proxy/tests ebpf/tests cli/tests/run testsupport bench
    "$SDK_VENV/bin/mypy" --strict --cache-dir "${TMPDIR:-/tmp}/aa-mypy-cache" bindings/python/python/agent_assembly examples/python examples/agents/python
    cargo build -p aasm --locked --quiet   # the tests start the real gateway
    (cd bindings/python && AASM="$AASM" "$SDK_VENV/bin/pytest" -q -p no:cacheprovider tests)
    ;;
  bench)
    build
    install_into_tools
    cargo build -p aasm --locked --quiet
    (cd bindings/python && AASM="$AASM" "$SDK_VENV/bin/pytest" -q -p no:cacheprovider bench \
      --benchmark-only --benchmark-columns=min,median,mean,max,rounds --benchmark-sort=name)
    ;;
  *) echo "usage: $0 build|install|test|bench" >&2; exit 2 ;;
esac
