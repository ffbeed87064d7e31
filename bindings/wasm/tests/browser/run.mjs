// Serves the package, these pages and conformance/ on localhost and drives Debian's chromium
// through playwright-core: the page and a web worker must report an allow, a deny before the
// function ran, a verified chain and the conformance table passing.
// Usage: node run.mjs PLAYWRIGHT_CORE_DIR
import { createServer } from 'node:http';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const { chromium } = createRequire(join(process.argv[2], 'x.js'))('playwright-core');

const MOUNTS = { '/pkg/': join(root, 'bindings/wasm/pkg'), '/t/': here, '/conformance/': join(root, 'conformance'), '/examples/': join(root, 'examples') };
const TYPES = { '.mjs': 'text/javascript', '.js': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.json': 'application/json' };

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const prefix = Object.keys(MOUNTS).find((p) => path.startsWith(p));
  if (!prefix || path.includes('..')) { res.writeHead(404).end(); return; }
  const file = normalize(join(MOUNTS[prefix], path.slice(prefix.length)));
  try {
    if (path.endsWith('/index.json')) {
      // a directory listing for the policy directories
      const dir = file.slice(0, -'index.json'.length);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile())));
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'text/plain' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // launch() gives the browser a fresh temporary profile of its own (no --user-data-dir).
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${url}/t/page.html`);
  const result = await page.evaluate(() => window.result);
  assert.ok(!result.error, result.error);
  for (const [where, r] of Object.entries(result)) {
    assert.ok(!r.error, `${where}: ${r.error}`);
    assert.equal(r.allow, 'found cedar', where);
    assert.deepEqual(r.deny, { code: 'policy_denied', reason: 'forbidden', policyIds: ['no-rm'] }, where);
    assert.equal(r.ranAfterDeny, false, where);
    assert.equal(r.records, 3, where);
    assert.equal(r.verify.ok, true, `${where}: ${JSON.stringify(r.verify)}`);
    assert.equal(r.verify.records, 3, where);
    assert.equal(r.tamperedOk, false, where);
    assert.ok(r.conformance.cases >= 30, where);
    assert.deepEqual(r.conformance.failures, [], where);
    console.log(`ok: ${where}: allow, deny before fn ran, chain verified (${r.verify.records} records, ${r.verify.checkpoints} checkpoints), ${r.conformance.cases} conformance cases`);
  }
} finally {
  await browser.close();
  server.close();
}
