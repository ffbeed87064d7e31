// Types: the examples in examples/typescript type-check under tsc --strict, and the committed
// native/index.d.ts and native/index.cjs are what `napi build` generates from the Rust doc
// comments today (type drift shows in review).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PKG, ROOT, TOOLS, runProcess } from './support.mjs';

const bin = (name) => join(TOOLS, 'node_modules/.bin', name);

test('examples/typescript pass tsc --noEmit --strict', async () => {
  assert.ok(existsSync(bin('tsc')), `tsc is not installed in ${TOOLS} (scripts/node.sh installs it)`);
  const out = await runProcess(bin('tsc'), ['--noEmit', '--strict', '-p', join(ROOT, 'examples/typescript')]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
});

test('the committed native/index.d.ts and loader match what napi build generates', { timeout: 900_000 }, async (t) => {
  assert.ok(existsSync(bin('napi')), `@napi-rs/cli is not installed in ${TOOLS} (scripts/node.sh installs it)`);
  const out = mkdtempSync(join(tmpdir(), 'aa-node-typegen-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const r = await runProcess(
    bin('napi'),
    ['build', '--platform', '--release', '--strip', '--output-dir', out, '--js', 'index.cjs', '--dts', 'index.d.ts'],
    { AA_BUILD_EBPF: '0' },
    PKG,
  );
  assert.equal(r.code, 0, r.stderr);
  for (const file of ['index.d.ts', 'index.cjs']) {
    const committed = readFileSync(join(PKG, 'native', file), 'utf8');
    const generated = readFileSync(join(out, file), 'utf8');
    assert.equal(committed, generated, `native/${file} is stale: run scripts/node.sh build and commit it`);
  }
});
