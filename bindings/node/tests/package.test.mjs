// The package as users get it: `npm pack`, installed from the tarball into a fresh directory,
// imported from ESM and CommonJS (one module instance), and typed for both under nodenext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PERMISSIVE, PKG, TOOLS, runProcess, tempDir } from './support.mjs';

test('npm pack, install the tarball in a fresh directory, import from ESM and CJS', { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  const packed = await runProcess('npm', ['pack', '--pack-destination', dir, '--json'], {}, PKG);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout);
  const files = info.files.map((f) => f.path).sort();
  assert.ok(files.includes('native/agent-assembly.linux-x64-gnu.node'), files.join(' '));
  for (const f of ['lib/index.cjs', 'lib/index.mjs', 'lib/index.d.ts', 'lib/index.d.mts', 'native/index.cjs', 'native/index.d.ts', 'package.json', 'README.md']) {
    assert.ok(files.includes(f), `${f} missing from the package: ${files.join(' ')}`);
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('tests/')), files.join(' '));
  const tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz')));

  const app = join(dir, 'app');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  const install = await runProcess('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], {}, app);
  assert.equal(install.code, 0, install.stderr);

  const env = { AA_POLICY: PERMISSIVE, AA_AGENT_ID: 'packed', AA_AUDIT_FILE: join(dir, 'audit.jsonl'), AA_SPILL_DIR: join(dir, 'spill') };
  writeFileSync(
    join(app, 'esm.mjs'),
    `import * as aa from 'agent-assembly';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('agent-assembly');
if (cjs.govern !== aa.govern) throw new Error('ESM and CJS are two instances');
const f = aa.govern((x) => x + 1, { tool: 'inc', args: ['x'] });
let denied = false;
try { aa.govern((cmd) => cmd, { tool: 'shell', args: ['cmd'] })('rm -rf /'); } catch (e) { denied = e instanceof cjs.PolicyDeniedError && e.code === 'policy_denied'; }
console.log(JSON.stringify({ esm: f(1), denied, mode: aa.governor().mode, version: aa.version }));`,
  );
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const aa = require('agent-assembly');
const f = aa.govern(async ({ q }) => q.toUpperCase(), { tool: 'upper' });
f({ q: 'ok' }).then((v) => console.log(JSON.stringify({ cjs: v, mode: aa.governor().mode })));`,
  );
  const esm = await runProcess(process.execPath, ['esm.mjs'], env, app);
  assert.equal(esm.code, 0, esm.stderr);
  assert.deepEqual(JSON.parse(esm.stdout), { esm: 2, denied: true, mode: 'embedded', version: '0.1.0' });
  const cjs = await runProcess(process.execPath, ['cjs.cjs'], env, app);
  assert.equal(cjs.code, 0, cjs.stderr);
  assert.deepEqual(JSON.parse(cjs.stdout), { cjs: 'OK', mode: 'embedded' });

  // Types, as a TypeScript user resolves them from the installed package (ESM and CJS).
  writeFileSync(
    join(app, 'use.mts'),
    `import { govern, PolicyDeniedError, type Decision } from 'agent-assembly';
const f: (x: number) => number = govern((x: number) => x + 1, { tool: 'inc', args: ['x'] });
const check = (e: unknown): string | null => (e instanceof PolicyDeniedError ? e.reason : null);
export const used: [typeof f, typeof check, Decision | null] = [f, check, null];`,
  );
  writeFileSync(
    join(app, 'use.cts'),
    `import aa = require('agent-assembly');
export const g: () => Promise<number> = aa.govern(async () => 1, { tool: 'one' });`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false, types: [], typeRoots: [join(TOOLS, 'node_modules/@types')] }, files: ['use.mts', 'use.cts'] }),
  );
  const tsc = await runProcess(join(TOOLS, 'node_modules/.bin/tsc'), ['-p', app], {}, app);
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
});
