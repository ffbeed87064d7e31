// Profiling loop (not a benchmark): govern() at 100 policies in local mode, for `perf record`.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as aa from '../lib/index.mjs';
import { Gateway } from '../tests/support.mjs';
import { BUDGETS, policyText } from '../../../bench/policy-sets.mjs';

const n = 100;
const work = mkdtempSync(join(tmpdir(), 'aa-node-prof-'));
process.env.AA_SPILL_DIR = join(work, 'spill');
const policyDir = join(work, 'set');
mkdirSync(policyDir);
writeFileSync(join(policyDir, 'set.cedar'), policyText(n));
writeFileSync(join(policyDir, 'budgets.toml'), BUDGETS);
const gw = await Gateway.start(join(work, 'gw.db'), policyDir);
try {
  const token = await gw.register(`a${n - 1}`);
  aa.init({ gatewayUrl: gw.url, agentId: `a${n - 1}`, token, queueCapacity: 4_000_000 });
  const governed = aa.govern((a) => a.x, { tool: `t${n - 1}` });
  const args = { x: 42, y: 7, path: '/tmp/work/file.txt' };
  if (process.env.PAUSE) gw.proc.kill('SIGSTOP');
  const rounds = Number(process.env.ROUNDS ?? 1_000_000);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) governed(args);
  const t1 = process.hrtime.bigint();
  console.log(JSON.stringify(aa.stats()));
  console.log(`mean ${(Number(t1 - t0) / rounds / 1000).toFixed(2)} us over ${rounds}`);
  gw.proc.kill('SIGCONT');
} finally {
  aa.shutdown(1);
  await gw.stop();
  rmSync(work, { recursive: true, force: true });
}
