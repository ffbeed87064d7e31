# Sourced by the scripts: one shared build cache outside the clone, one profile for tests.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/aa/target}"
export AA_WASM_TARGET_DIR="${AA_WASM_TARGET_DIR:-/var/cache/aa/target-wasm}"
export AASM="$CARGO_TARGET_DIR/debug/aasm"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR" "$AA_WASM_TARGET_DIR"
# Each step says when it starts, in seconds since the outermost script began (where CI's
# minutes go).
export AA_T0="${AA_T0:-$(date +%s)}"
if [ -t 2 ]; then
  step() { printf '\n\033[1;32m==> %s\033[0m  [%ss]\n' "$*" "$(($(date +%s) - AA_T0))" >&2; }
else
  step() { printf '\n==> %s  [%ss]\n' "$*" "$(($(date +%s) - AA_T0))" >&2; }
fi
