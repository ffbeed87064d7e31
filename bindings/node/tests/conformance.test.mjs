// The shared conformance table (conformance/cases.json) through this binding: the same
// expectations as testsupport/conformance.py holds the Python and FFI bindings to, decisions
// compared in their wire form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../lib/index.mjs';
import { ROOT } from './support.mjs';

const CASES = JSON.parse(readFileSync(join(ROOT, 'conformance/cases.json'), 'utf8')).case;
const DEFAULT_NOW_MS = 1_767_614_400_000;

const agentJson = (spec) => JSON.stringify(typeof spec === 'string' ? { agent_id: spec } : spec);
const nowMs = (c) => (c.now ? Date.parse(c.now) : DEFAULT_NOW_MS);
const KEYS = ['agent', 'layer', 'action', 'outcome', 'repeat', 'advance_ms', 'expect'];
const steps = (c) =>
  c.steps ?? [Object.fromEntries(KEYS.filter((k) => k in c).map((k) => [k, c[k]]))];

function runCase(c) {
  const engine = new native.ConformanceEngine(
    join(ROOT, 'conformance', c.policy),
    nowMs(c),
    c.fail_open ?? false,
    c.suspended ?? [],
  );
  for (const step of steps(c)) {
    engine.advance(step.advance_ms ?? 0);
    const expect = typeof step.expect === 'string' ? { decision: step.expect } : step.expect;
    const layer = step.layer ?? 'sdk';
    const agent = agentJson(step.agent);
    const action = JSON.stringify(step.action);
    for (let i = 0; i < (step.repeat ?? 1); i++) {
      const d = engine.decide(agent, action, layer);
      const wire = JSON.parse(d.toJsonString());
      assert.equal(wire.effect, expect.decision, JSON.stringify(wire));
      if ('reason' in expect) assert.equal(wire.reason, expect.reason, JSON.stringify(wire));
      if ('policy_ids' in expect) {
        assert.deepEqual([...(wire.policy_ids ?? [])].sort(), [...expect.policy_ids].sort());
      }
      if ('budget' in expect) assert.equal(wire.budget ?? null, expect.budget);
      if ('message_contains' in expect) assert.ok(wire.message.includes(expect.message_contains), wire.message);
      if (wire.effect === 'allow' && 'outcome' in step) {
        engine.report(agent, action, layer, d, JSON.stringify(step.outcome));
      }
    }
  }
}

test('the conformance table is not empty', () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
});

for (const c of CASES) {
  test(`conformance: ${c.name}`, () => runCase(c));
}
