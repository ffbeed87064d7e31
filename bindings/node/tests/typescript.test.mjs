// Types: the examples in examples/typescript type-check under tsc --strict, and the committed
// native/index.d.ts and native/index.cjs are what `napi build` generates from the Rust doc
// comments today (type drift shows in review).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

test('the examples that need no model run (compiled by tsc, against this package)', async (t) => {
  const { mkdirSync, readdirSync, symlinkSync } = await import('node:fs');
  const out = mkdtempSync(join(tmpdir(), 'aa-node-examples-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const tsc = await runProcess(bin('tsc'), ['-p', join(ROOT, 'examples/typescript'), '--noEmit', 'false', '--outDir', out]);
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
  // The emitted ESM resolves `agent-assembly` to this package and the rest to the tools.
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module' }));
  mkdirSync(join(out, 'node_modules'));
  symlinkSync(PKG, join(out, 'node_modules', 'agent-assembly'));
  for (const name of readdirSync(join(TOOLS, 'node_modules'))) {
    if (!name.startsWith('.')) symlinkSync(join(TOOLS, 'node_modules', name), join(out, 'node_modules', name));
  }
  const env = { AA_SPILL_DIR: join(out, 'spill'), AA_AUDIT_FILE: join(out, 'audit.jsonl') };
  const expect = {
    'govern.js': /ran ls[\s\S]*cedar[\s\S]*denied: forbidden by no-rm-rf-via-shell/,
    'langchain.js': /ran ls[\s\S]*denied: forbidden: a shell command containing rm -rf is forbidden/,
    'mcp.js': /contents of \/tmp\/a/,
    'model-call.js': /^c1$/m,
  };
  for (const [file, pattern] of Object.entries(expect)) {
    const r = await runProcess(process.execPath, [join(out, file)], env, ROOT);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
    assert.match(r.stdout, pattern, file);
  }
});
