#!/usr/bin/env bash
# Type-checks (tsc --strict) and compiles the TypeScript agent to dist/agent.js, runnable with
# `node examples/agents/typescript/dist/agent.js`: `agent-assembly` resolves to bindings/node
# (its native module built by scripts/node.sh build) and the npm packages to the agents' tools
# installed by scripts/setup.sh ($AA_AGENTS_NODE_TOOLS, default /var/cache/aa/node-tools-agents).
set -euo pipefail
cd "$(dirname "$0")"
TOOLS="${AA_AGENTS_NODE_TOOLS:-/var/cache/aa/node-tools-agents}"
PKG="$(cd ../../../bindings/node && pwd)"
[ -x "$TOOLS/node_modules/.bin/tsc" ] || { echo "no tsc in $TOOLS: run scripts/setup.sh" >&2; exit 1; }
ln -sfn "$TOOLS/node_modules" node_modules
"$TOOLS/node_modules/.bin/tsc" -p . --noEmit false --outDir dist
mkdir -p dist/node_modules
cp package.json dist/package.json
ln -sfn "$PKG" dist/node_modules/agent-assembly
ls "$PKG"/native/*.node >/dev/null 2>&1 || echo "warning: $PKG/native has no .node yet (scripts/node.sh build)" >&2
echo "built $(pwd)/dist/agent.js"
