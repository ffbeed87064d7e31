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

const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : null);
const jsonOut = arg('--json');
// govern() shares the 2 cores with the shipper thread and the gateway, and one measurement
// lands in a slow or a fast state of that pipeline for its whole length (±3 µs at N=100 from
// run to run): each size runs REPEAT times, each time with a fresh gateway and governor, and
// the table shows the median.
const REPEAT = Number(arg('--repeat') ?? 3);
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
function record(peer, version, n, mode, stats, run = 0) {
  const row = { peer, version, n, mode, run, p50_us: us(stats.p50), p99_us: us(stats.p99), mean_us: us(stats.avg) };
  rows.push(row);
  if (jsonOut) appendFileSync(jsonOut, JSON.stringify(row) + '\n');
}

for (const n of SIZES) {
  const policyDir = join(work, `set-${n}`);
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'set.cedar'), policyText(n));
  writeFileSync(join(policyDir, 'budgets.toml'), BUDGETS);
  const agentId = `a${n - 1}`;
  const tool = `t${n - 1}`;
  const args = { x: 42, y: 7, path: '/tmp/work/file.txt' };
  const plain = (a) => a.x;
  for (let run = 0; run < REPEAT; run++) {
    // Each run spills into its own directory: what one run's shutdown leaves is never replayed
    // to the next run's gateway while that run is measured.
    process.env.AA_SPILL_DIR = join(work, `spill-${n}-${run}`);
    const gw = await Gateway.start(join(work, `gw-${n}-${run}.db`), policyDir);
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
      record('agent-assembly-node', aa.version, n, 'govern-local', await measure(() => governed(args), OPTS), run);
      // 2. The caller's cost alone: the gateway paused (SIGSTOP), the events wait in the queue.
      gw.proc.kill('SIGSTOP');
      try {
        record('agent-assembly-node', aa.version, n, 'govern-local-gw-paused', await measure(() => governed(args), OPTS), run);
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
  process.env.AA_SPILL_DIR = join(work, 'spill-permissive');
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
console.log(`${'N'.padStart(6)}  ${MODES.map(([, h]) => `${h} p50/p99 us`.padEnd(38)).join('')}`);
/** The run of median p50 among the runs of `n` in `mode`. */
function median(n, mode) {
  const runs = rows.filter((r) => r.n === n && r.mode === mode).sort((a, b) => a.p50_us - b.p50_us);
  return runs[(runs.length - 1) >> 1];
}
const runsOf = (n, mode) => rows.filter((r) => r.n === n && r.mode === mode).map((r) => r.p50_us.toFixed(2)).join(', ');
for (const n of SIZES) {
  const cells = MODES.map(([m]) => median(n, m)).map((r) => `${r.p50_us.toFixed(2)} / ${r.p99_us.toFixed(2)}`.padEnd(38));
  console.log(`${String(n).padStart(6)}  ${cells.join('')}`);
}
console.log(`(govern() rows: the median of ${REPEAT} runs; p50 of each run, live: ${SIZES.map((n) => `N=${n} ${runsOf(n, 'govern-local')}`).join('; ')}; paused: ${SIZES.map((n) => `N=${n} ${runsOf(n, 'govern-local-gw-paused')}`).join('; ')})`);
for (const m of ['govern-local', 'govern-local-gw-paused']) {
  const r = rows.find((x) => x.n === 'permissive' && x.mode === m);
  console.log(`permissive example set (the Python bench's), no-op, ${m}: p50 ${r.p50_us.toFixed(2)} / p99 ${r.p99_us.toFixed(2)} us`);
}
const at100 = median(100, 'govern-local');
console.log(`govern() p50 at 100 policies, median of ${REPEAT} runs: ${at100.p50_us.toFixed(2)} us (target <= 5 us): ${at100.p50_us <= 5 ? 'met' : 'NOT MET'}`);
