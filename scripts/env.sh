# Sourced by the scripts: one shared build cache outside the clone, one profile for tests.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/aa/target}"
export AA_WASM_TARGET_DIR="${AA_WASM_TARGET_DIR:-/var/cache/aa/target-wasm}"
export AASM="$CARGO_TARGET_DIR/debug/aasm"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR" "$AA_WASM_TARGET_DIR"
if [ -t 2 ]; then
  step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*" >&2; }
else
  step() { printf '\n==> %s\n' "$*" >&2; }
fi
