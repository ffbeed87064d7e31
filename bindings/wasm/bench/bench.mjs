// One run, side by side: aa-wasm `engine.decide` vs @cedar-policy/cedar-wasm
// `statefulIsAuthorized`, at 10/100/1,000 policies, and the gzip size of both .wasm files.
// Their sets and request: ../shared/bench/cedar_policies.py (DATA_DIR). Ours: the same shapes
// written against Agent Assembly's schema (bench/policy-sets.mjs).
// Every aa-wasm decision is also chained into the in-memory audit log (hash + canonical JSON).
// Usage: node bench.mjs DATA_DIR NODE_MODULES_DIR [ITERS]
import { readFileSync } from 'node:fs';
import { gzipSync, constants as zc } from 'node:zlib';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Engine } from '../pkg/index.mjs';
import { BUDGETS, policyText } from '../../../bench/policy-sets.mjs';

const [dataDir, modules, itersArg] = process.argv.slice(2);
const ITERS = Number(itersArg ?? 20000);
const require = createRequire(join(modules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const cedarDir = dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs'));
const cedarVersion = JSON.parse(readFileSync(join(cedarDir, '..', 'package.json'), 'utf8')).version;


function measure(fn, iters) {
  for (let i = 0; i < Math.min(2000, iters); i++) fn();
  const samples = new Float64Array(iters);
  const now = process.hrtime.bigint;
  for (let i = 0; i < iters; i++) {
    const t0 = now();
    fn();
    samples[i] = Number(now() - t0);
  }
  samples.sort();
  const pct = (p) => samples[Math.max(0, Math.ceil(iters * p / 100) - 1)] / 1e3;
  return { p50: pct(50), p99: pct(99) };
}

const gz = (path) => gzipSync(readFileSync(path), { level: zc.Z_BEST_COMPRESSION }).length;
const ours = fileURLToPath(new URL('../pkg/node/aa_wasm_bg.wasm', import.meta.url));
const theirs = join(cedarDir, 'cedar_wasm_bg.wasm');
console.log(`# node ${process.version}; iters ${ITERS}; cedar-wasm ${cedarVersion}`);
console.log(`# .wasm gzip -9: aa-wasm ${gz(ours)} B (raw ${readFileSync(ours).length}), cedar-wasm ${gz(theirs)} B (raw ${readFileSync(theirs).length})`);
console.log('     N   aa-wasm decide p50/p99 (us)   cedar-wasm statefulIsAuthorized p50/p99 (us)   speed-up p50');
for (const n of [10, 100, 1000]) {
  const engine = Engine.fromPolicies(policyText(n), { budgetsToml: BUDGETS, fileName: 'set.cedar' });
  const action = { kind: 'tool_call', tool: `t${n - 1}`, args: { x: 42, y: 7, path: '/tmp/work/file.txt' } };
  const agent = `a${n - 1}`;
  const first = engine.decide(agent, action);
  if (!first.allowed || first.policyIds[0] !== `p${n - 1}`) throw new Error(`aa-wasm N=${n}: ${JSON.stringify(first)}`);
  const a = measure(() => engine.decide(agent, action), ITERS);
  engine.free();

  const r = JSON.parse(readFileSync(join(dataDir, `request_${n}.json`), 'utf8'));
  const pre = cedar.preparsePolicySet(`bench_${n}`, { staticPolicies: readFileSync(join(dataDir, `policies_${n}.cedar`), 'utf8') });
  if (pre.type !== 'success') throw new Error(JSON.stringify(pre));
  const call = { principal: r.principal, action: r.action, resource: r.resource, context: r.context, entities: [], preparsedPolicySetId: `bench_${n}` };
  const ans = cedar.statefulIsAuthorized(call);
  if (ans.type !== 'success' || ans.response.decision !== 'allow') throw new Error(JSON.stringify(ans));
  const c = measure(() => cedar.statefulIsAuthorized(call), ITERS);
  console.log(`${String(n).padStart(6)}   ${a.p50.toFixed(2).padStart(10)} / ${a.p99.toFixed(2).padEnd(10)}        ${c.p50.toFixed(2).padStart(10)} / ${c.p99.toFixed(2).padEnd(10)}                     ${(c.p50 / a.p50).toFixed(1)}x`);
}
