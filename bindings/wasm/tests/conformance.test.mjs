// The shared conformance table (conformance/cases.json) through the package's public API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Engine, verifyAudit } from '../pkg/index.mjs';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CONFORMANCE = join(ROOT, 'conformance');
const CASES = JSON.parse(readFileSync(join(CONFORMANCE, 'cases.json'), 'utf8')).case;
const DEFAULT_NOW_MS = 1_767_614_400_000;

/** A policy directory as `fromPolicies` takes it: Cedar files and the budget/price texts. */
export function policyDir(dir) {
  const files = {};
  const opts = {};
  for (const name of readdirSync(dir).sort()) {
    const text = readFileSync(join(dir, name), 'utf8');
    if (name.endsWith('.cedar')) files[name] = text;
    else if (name === 'budgets.toml') opts.budgetsToml = text;
    else if (name === 'prices.toml') opts.pricesToml = text;
  }
  return { files, opts };
}

const steps = (c) => c.steps ?? [c];

test('the table is not empty', () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
});

for (const c of CASES) {
  test(`conformance: ${c.name}`, () => {
    const { files, opts } = policyDir(join(CONFORMANCE, c.policy));
    const engine = Engine.fromPolicies(files, {
      ...opts,
      suspended: c.suspended ?? [],
      failOpen: c.fail_open ?? false,
      now: c.now ? Date.parse(c.now) : DEFAULT_NOW_MS,
      signingSeed: '11'.repeat(32),
    });
    let decisions = 0;
    for (const step of steps(c)) {
      engine.advanceClock(step.advance_ms ?? 0);
      const expect = typeof step.expect === 'string' ? { decision: step.expect } : step.expect;
      for (let i = 0; i < (step.repeat ?? 1); i++) {
        const d = engine.decide(step.agent, step.action, { layer: step.layer ?? 'sdk' });
        decisions++;
        assert.equal(d.effect, expect.decision, JSON.stringify(d));
        assert.equal(d.allowed, d.effect === 'allow');
        if ('reason' in expect) assert.equal(d.reason, expect.reason, JSON.stringify(d));
        if ('policy_ids' in expect) assert.deepEqual([...d.policyIds].sort(), [...expect.policy_ids].sort());
        if ('budget' in expect) assert.equal(d.budget, expect.budget);
        if ('message_contains' in expect) assert.ok(d.message.includes(expect.message_contains), d.message);
        if (d.allowed && step.outcome) engine.report(step.agent, step.action, d, step.outcome, { layer: step.layer });
      }
    }
    // Every decision (and report) went into the chain, and the chain verifies.
    const drained = engine.drain();
    assert.ok(drained.records.length >= decisions);
    const report = verifyAudit(drained.jsonl, { publicKey: engine.publicKey });
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.equal(report.records, drained.records.length);
  });
}
