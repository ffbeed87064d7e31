// govern() overhead in local mode (policy from a real `aasm gateway`, decided in process,
// audit shipped by the Rust thread) at 10/100/1,000 policies, in the same run as
// @cedar-policy/cedar-wasm `statefulIsAuthorized` on the peers' sets and request
// (../shared/bench/cedar_policies.py). Timed with mitata's `measure`.
//   node bench/bench.mjs [--json OUT.jsonl]        (scripts/node.sh bench)
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { measure } from 'mitata';
import * as aa from '../lib/index.mjs';
import { Gateway, ROOT, TOOLS } from '../tests/support.mjs';
import { BUDGETS, policyText } from '../../../bench/policy-sets.mjs';

const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
const SIZES = [10, 100, 1000];
const QUEUE = 400_000;
const OPTS = { min_cpu_time: 250e6 }; // mitata: at least 250 ms of samples per figure
const work = mkdtempSync(join(tmpdir(), 'aa-node-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// The peers' sets and requests.
const data = join(work, 'peer-data');
const gen = spawnSync('python3', [join(ROOT, '../shared/bench/cedar_policies.py'), data], { encoding: 'utf8' });
if (gen.status !== 0) throw new Error(`cedar_policies.py failed: ${gen.stderr}`);
const require = createRequire(join(TOOLS, 'package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const cedarVersion = JSON.parse(
  readFileSync(join(dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), '..', 'package.json'), 'utf8'),
).version;

const us = (ns) => ns / 1e3;
const rows = [];
function record(peer, version, n, mode, stats) {
  const row = { peer, version, n, mode, p50_us: us(stats.p50), p99_us: us(stats.p99), mean_us: us(stats.avg) };
  rows.push(row);
  if (jsonOut) appendFileSync(jsonOut, JSON.stringify(row) + '\n');
}

for (const n of SIZES) {
  // Each size spills into its own directory: what one size's shutdown leaves is never replayed
  // to the next size's gateway while that size is measured.
  process.env.AA_SPILL_DIR = join(work, `spill-${n}`);
  const policyDir = join(work, `set-${n}`);
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'set.cedar'), policyText(n));
  writeFileSync(join(policyDir, 'budgets.toml'), BUDGETS);
  const agentId = `a${n - 1}`;
  const tool = `t${n - 1}`;
  const args = { x: 42, y: 7, path: '/tmp/work/file.txt' };
  const plain = (a) => a.x;
  const gw = await Gateway.start(join(work, `gw-${n}.db`), policyDir);
  try {
    const token = await gw.register(agentId);
    // The queue holds every event of the run: the figure is the decision and the hand-off to
    // the shipper thread, not the gateway's ingest rate (a full queue spills to disk).
    aa.init({ gatewayUrl: gw.url, agentId, token, queueCapacity: QUEUE });
    if (!aa.stats().policyVersion) throw new Error('local mode did not fetch the policy');
    const governed = aa.govern(plain, { tool });
    const check = aa.governor().decideTool(tool, args);
    if (!check.allowed || check.decision.policyIds[0] !== `p${n - 1}`) {
      throw new Error(`N=${n}: ${check.decision.toJsonString()}`);
    }
    // 1. As deployed here: the gateway ingests the shipped events on the same 2 cores.
    record('agent-assembly-node', aa.version, n, 'govern-local', await measure(() => governed(args), OPTS));
    // 2. The caller's cost alone: the gateway paused (SIGSTOP), the events wait in the queue.
    gw.proc.kill('SIGSTOP');
    try {
      record('agent-assembly-node', aa.version, n, 'govern-local-gw-paused', await measure(() => governed(args), OPTS));
    } finally {
      gw.proc.kill('SIGCONT');
    }
    const spilled = aa.stats().spilled;
    if (spilled > 0) throw new Error(`N=${n}: ${spilled} events spilled during the measurement; raise QUEUE`);
  } finally {
    // What the gateway has not taken yet is spilled into the scratch dir, so nothing ships
    // while the peers below are measured.
    aa.shutdown(1);
    await gw.stop();
  }
  {
    // 3. What the core's decision alone costs on this set (no audit, fixed clock).
    const engine = new aa.native.ConformanceEngine(policyDir, Date.now(), false, []);
    const agentJson = JSON.stringify({ agent_id: agentId });
    const actionJson = JSON.stringify({ kind: 'tool_call', tool, args });
    if (!engine.decide(agentJson, actionJson, 'sdk').allowed) throw new Error(`N=${n}: core engine denied`);
    record('aa-core-engine', aa.version, n, 'decide-only', await measure(() => engine.decide(agentJson, actionJson, 'sdk'), OPTS));
    record('plain-js-call', process.version, n, 'baseline', await measure(() => plain(args), OPTS));
  }

  const r = JSON.parse(readFileSync(join(data, `request_${n}.json`), 'utf8'));
  const pre = cedar.preparsePolicySet(`bench_${n}`, { staticPolicies: readFileSync(join(data, `policies_${n}.cedar`), 'utf8') });
  if (pre.type !== 'success') throw new Error(JSON.stringify(pre));
  const call = { principal: r.principal, action: r.action, resource: r.resource, context: r.context, entities: [], preparsedPolicySetId: `bench_${n}` };
  const ans = cedar.statefulIsAuthorized(call);
  if (ans.type !== 'success' || ans.response.decision !== 'allow') throw new Error(JSON.stringify(ans));
  record('cedar-wasm', cedarVersion, n, 'stateful', await measure(() => cedar.statefulIsAuthorized(call), OPTS));
}

// The permissive example set without its budgets, a no-op of one argument: the setting of the
// Python SDK's benchmark (bindings/python/bench), for comparing the two bindings' overhead.
{
  const policyDir = join(work, 'permissive');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'base.cedar'), readFileSync(join(ROOT, 'examples/policies/permissive/base.cedar')));
  const gw = await Gateway.start(join(work, 'gw-permissive.db'), policyDir);
  try {
    const token = await gw.register('bench');
    aa.init({ gatewayUrl: gw.url, agentId: 'bench', token, queueCapacity: QUEUE });
    const noop = aa.govern((x) => x, { tool: 'noop', args: ['x'] });
    if (noop(1) !== 1) throw new Error('noop');
    record('agent-assembly-node', aa.version, 'permissive', 'govern-local', await measure(() => noop(1), OPTS));
    gw.proc.kill('SIGSTOP');
    try {
      record('agent-assembly-node', aa.version, 'permissive', 'govern-local-gw-paused', await measure(() => noop(1), OPTS));
    } finally {
      gw.proc.kill('SIGCONT');
    }
  } finally {
    aa.shutdown(1);
    await gw.stop();
  }
}

console.log(`# node ${process.version}; agent-assembly ${aa.version} (local mode, aasm gateway); cedar-wasm ${cedarVersion}; mitata measure`);
const MODES = [
  ['govern-local', 'govern() local'],
  ['govern-local-gw-paused', 'govern() local, gw paused'],
  ['decide-only', 'aa-core decide only'],
  ['stateful', 'cedar-wasm stateful'],
  ['baseline', 'plain call'],
];
console.log(`${'N'.padStart(6)}  ${MODES.map(([, h]) => `${h} p50/p99 us`.padEnd(36)).join('')}`);
for (const n of SIZES) {
  const cells = MODES.map(([m]) => rows.find((r) => r.n === n && r.mode === m)).map(
    (r) => `${r.p50_us.toFixed(2)} / ${r.p99_us.toFixed(2)}`.padEnd(36),
  );
  console.log(`${String(n).padStart(6)}  ${cells.join('')}`);
}
for (const m of ['govern-local', 'govern-local-gw-paused']) {
  const r = rows.find((x) => x.n === 'permissive' && x.mode === m);
  console.log(`permissive example set (the Python bench's), no-op, ${m}: p50 ${r.p50_us.toFixed(2)} / p99 ${r.p99_us.toFixed(2)} us`);
}
const at100 = rows.find((r) => r.n === 100 && r.mode === 'govern-local');
console.log(`govern() p50 at 100 policies: ${at100.p50_us.toFixed(2)} us (target <= 5 us): ${at100.p50_us <= 5 ? 'met' : 'NOT MET'}`);
