// The checks the page and the web worker run inside the browser: an allow, a deny before the
// function ran, a verified audit chain, and the shared conformance table.
const DEFAULT_NOW_MS = 1_767_614_400_000;
const POLICY = '@id("base") permit (principal, action, resource);\n'
  + '@id("no-rm") forbid (principal, action == Action::"tool_call", resource == Tool::"rm");';

async function policyDir(dir) {
  const index = JSON.parse(await (await fetch(`${dir}/index.json`)).text());
  const files = {};
  const opts = {};
  for (const name of index) {
    const text = await (await fetch(`${dir}/${name}`)).text();
    if (name.endsWith('.cedar')) files[name] = text;
    else if (name === 'budgets.toml') opts.budgetsToml = text;
    else if (name === 'prices.toml') opts.pricesToml = text;
  }
  return { files, opts };
}

function expectMatches(d, expect) {
  if (d.effect !== expect.decision) return `effect ${d.effect}`;
  if ('reason' in expect && d.reason !== expect.reason) return `reason ${d.reason}`;
  if ('policy_ids' in expect && JSON.stringify([...d.policyIds].sort()) !== JSON.stringify([...expect.policy_ids].sort())) return `policy_ids ${d.policyIds}`;
  if ('budget' in expect && d.budget !== expect.budget) return `budget ${d.budget}`;
  if ('message_contains' in expect && !d.message.includes(expect.message_contains)) return `message ${d.message}`;
  return null;
}

export async function runChecks({ Engine, verifyAudit, PolicyDeniedError }) {
  const out = {};
  const engine = Engine.fromPolicies(POLICY, { agent: 'browser-agent', checkpointEvery: 2 });
  out.allow = engine.govern(({ q }) => `found ${q}`, { tool: 'search', args: { q: 'cedar' } });
  let ran = false;
  try {
    engine.govern(() => { ran = true; }, { tool: 'rm', args: { path: '/' } });
    out.deny = 'not denied';
  } catch (e) {
    out.deny = e instanceof PolicyDeniedError ? { code: e.code, reason: e.reason, policyIds: e.policyIds } : String(e);
  }
  out.ranAfterDeny = ran;
  const drained = engine.drain();
  out.records = drained.records.length;
  out.verify = verifyAudit(drained.jsonl, { publicKey: engine.publicKey });
  out.tamperedOk = verifyAudit(drained.jsonl.replace('"tool":"search"', '"tool":"serch"')).ok;

  const cases = JSON.parse(await (await fetch('/conformance/cases.json')).text()).case;
  const failures = [];
  for (const c of cases) {
    const { files, opts } = await policyDir(`/conformance/${c.policy}`);
    const e = Engine.fromPolicies(files, {
      ...opts, suspended: c.suspended ?? [], failOpen: c.fail_open ?? false,
      now: c.now ? Date.parse(c.now) : DEFAULT_NOW_MS,
    });
    for (const step of c.steps ?? [c]) {
      e.advanceClock(step.advance_ms ?? 0);
      const expect = typeof step.expect === 'string' ? { decision: step.expect } : step.expect;
      for (let i = 0; i < (step.repeat ?? 1); i++) {
        const d = e.decide(step.agent, step.action, { layer: step.layer ?? 'sdk' });
        const why = expectMatches(d, expect);
        if (why) failures.push(`${c.name}: ${why}`);
        if (d.allowed && step.outcome) e.report(step.agent, step.action, d, step.outcome, { layer: step.layer });
      }
    }
    if (!verifyAudit(e.drain().jsonl).ok) failures.push(`${c.name}: chain does not verify`);
    e.free();
  }
  out.conformance = { cases: cases.length, failures };
  return out;
}
