#!/usr/bin/env bash
# The FFI binding (bindings/ffi, crate aa-ffi, uniffi): builds libaa_ffi.so and the
# uniffi-bindgen binary, generates the Python, Kotlin and Swift bindings (not committed) into
# the build cache,
# and runs the pytest tests through them against the real `aasm` (audit verify, gateway).
#   scripts/ffi.sh test      the tests (CI)
#   scripts/ffi.sh bench     call overhead through the C ABI beside the pyo3 binding, one run
#   scripts/ffi.sh generate  only build and generate; prints the output directory
# The tests include 100,000 governed calls with resident memory sampled after warm-up; `test`
# then runs a shorter loop under valgrind (leak_check below).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SDK_VENV="${AA_SDK_VENV:-/var/cache/aa/venv-sdk}"
OUT="$CARGO_TARGET_DIR/ffi-bindings"
# The tests use the dev profile (its dependencies are already built by the workspace's
# `cargo test` step, so CI does not compile them again); the benchmarks use release.
PROFILE=debug
[ "${1:-test}" = bench ] && PROFILE=release

generate() {
  if [ "$PROFILE" = release ]; then
    cargo build -p aa-ffi --release --locked --quiet
  else
    cargo build -p aa-ffi --locked --quiet
  fi
  local lib="$CARGO_TARGET_DIR/$PROFILE/libaa_ffi.so" bindgen="$CARGO_TARGET_DIR/$PROFILE/uniffi-bindgen"
  rm -rf "$OUT"
  mkdir -p "$OUT/python"
  for lang in python kotlin swift; do
    "$bindgen" generate --library "$lib" --language "$lang" --out-dir "$OUT/$lang" >/dev/null
  done
  cp "$lib" "$OUT/python/"
}

# A short loop through the library under valgrind (Debian's): no definite or indirect leaks, and
# no memcheck error with a frame in the library or the Rust crates behind it. (CPython's own
# import machinery reports uninitialised reads here; they are CPython's and are left out.)
leak_check() {
  local dir log
  dir=$(mktemp -d)
  log="$dir/valgrind.log"
  PYTHONMALLOC=malloc PYTHONPATH="$OUT/python" valgrind --leak-check=full --show-leak-kinds=definite \
    --log-file="$log" "$SDK_VENV/bin/python" bindings/ffi/tests/valgrind_loop.py "${FFI_VALGRIND_LOOPS:-100}" \
    examples/policies/permissive "$dir/audit.jsonl"
  grep -A3 "LEAK SUMMARY" "$log" | sed 's/^==[0-9]*== //'
  if ! grep -q "definitely lost: 0 bytes in 0 blocks" "$log" || ! grep -q "indirectly lost: 0 bytes in 0 blocks" "$log"; then
    echo "valgrind: leaks through libaa_ffi.so (log: $log)" >&2
    exit 1
  fi
  if grep -q "libaa_ffi\|aa_ffi::\|aa_core::\|aa_sdk_client::\|uniffi" "$log"; then
    echo "valgrind: a memcheck error in libaa_ffi.so (log: $log)" >&2
    exit 1
  fi
  echo "valgrind: no definite or indirect leaks, no memcheck error in libaa_ffi.so"
  rm -rf "$dir"
}

case "${1:-test}" in
  generate) generate; echo "$OUT" ;;
  test)
    "$SDK_VENV/bin/ruff" check bindings/ffi
    generate
    cargo build -p aasm --locked --quiet   # audit verify and the gateway
    (cd bindings/ffi && AASM="$AASM" PYTHONPATH="$OUT/python" FFI_FIGURES_FILE="$OUT/memory.json" FFI_GENERATED="$OUT" \
      "$SDK_VENV/bin/pytest" -q -p no:cacheprovider tests bench --benchmark-disable)
    echo "resident memory over 100,000 governed calls: $(cat "$OUT/memory.json")"
    leak_check
    ;;
  bench)
    # Needs the pyo3 package (agent_assembly) in the SDK venv: scripts/python-sdk.sh test installs it.
    generate
    (cd bindings/ffi && PYTHONPATH="$OUT/python" "$SDK_VENV/bin/pytest" -q -p no:cacheprovider bench \
      --benchmark-only --benchmark-columns=min,median,mean,max,rounds --benchmark-sort=name)
    ;;
  *) echo "usage: $0 test|bench|generate" >&2; exit 2 ;;
esac
