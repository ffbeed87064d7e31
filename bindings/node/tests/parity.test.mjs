// A Python and a Node process governing the same calls (fixtures/parity-cases.json) in
// embedded mode write audit records that differ only in ids and times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HERE, PERMISSIVE, PYTHON, auditLines, cleanEnv, runNode, runProcess, tempDir } from './support.mjs';

const CASES = join(HERE, 'fixtures/parity-cases.json');

const NODE = `
import * as aa from ${JSON.stringify(new URL('../lib/index.mjs', import.meta.url).href)};
import { readFileSync } from 'node:fs';
const cases = JSON.parse(readFileSync(process.env.CASES, 'utf8'));
class ToolError extends Error {}
const value = (v) => Array.isArray(v) ? v.map(value)
  : v && typeof v === 'object' ? ('$bytes' in v ? Buffer.from(v.$bytes) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value(x)])))
  : v;
for (const c of cases.calls) {
  const tool = aa.govern((args) => { if (c.raise) throw new ToolError('boom'); return 'x'.repeat(c.result_len); }, { tool: c.tool });
  try { tool(value(c.args)); } catch (e) { if (!(e instanceof aa.PolicyDeniedError || e instanceof ToolError)) throw e; }
}
for (const m of cases.models) {
  await aa.modelCall({ provider: m.provider, model: m.model }, (call) => call.record({ usage: m.usage }));
}
aa.shutdown();
`;

const PY = `
import json, os
import agent_assembly as aa
cases = json.load(open(os.environ["CASES"]))
class ToolError(Exception): pass
def value(v):
    if isinstance(v, list): return [value(x) for x in v]
    if isinstance(v, dict): return bytes(v["$bytes"]) if "$bytes" in v else {k: value(x) for k, x in v.items()}
    return v
for c in cases["calls"]:
    @aa.govern(tool=c["tool"])
    def tool(**kwargs):
        if c.get("raise"): raise ToolError("boom")
        return "x" * c["result_len"]
    try:
        tool(**value(c["args"]))
    except (aa.PolicyDenied, ToolError):
        pass
for m in cases["models"]:
    with aa.model_call(m["provider"], m["model"]) as call:
        call.record({"usage": m["usage"]})
aa.shutdown()
`;

/** A record without what may differ: ids, times, hashes (which cover them), durations. */
function normalize(r) {
  const { id, ts, hash, prev_hash, ...rest } = r;
  const decision = { ...rest.decision };
  delete decision.decision_id;
  const out = { ...rest, decision };
  if (rest.outcome) {
    out.outcome = { ...rest.outcome };
    delete out.outcome.duration_us;
  }
  return out;
}

test('Python and Node audit records for the same calls differ only in ids and times', async (t) => {
  cleanEnv();
  const dir = tempDir(t);
  const env = (file) => ({ AA_POLICY: PERMISSIVE, AA_AGENT_ID: 'parity-agent', AA_AUDIT_FILE: join(dir, file), CASES });
  const [n, p] = await Promise.all([
    runNode(NODE, env('node.jsonl')),
    runProcess(PYTHON, ['-c', PY], env('python.jsonl')),
  ]);
  assert.equal(n.code, 0, n.stderr);
  assert.equal(p.code, 0, p.stderr);
  const [nodeRecs, pyRecs] = [auditLines(join(dir, 'node.jsonl')), auditLines(join(dir, 'python.jsonl'))];
  // 7 allowed calls (decision + outcome), 1 deny, 1 model call (decision + outcome)
  assert.equal(nodeRecs.length, 17);
  assert.equal(pyRecs.length, nodeRecs.length);
  for (let i = 0; i < nodeRecs.length; i++) {
    assert.deepEqual(normalize(nodeRecs[i]), normalize(pyRecs[i]), `record ${i + 1}`);
  }
  // and the ids really are per process
  assert.notEqual(nodeRecs[0].decision.decision_id, pyRecs[0].decision.decision_id);
});
