// The package's API: decide, govern, hot reload, errors, the audit chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Engine, verifyAudit, PolicyDeniedError, PolicyError, InvalidInputError, AgentAssemblyError,
} from '../pkg/index.mjs';

const POLICY = `
@id("base")
permit (principal, action, resource);

@id("no-delete")
@reason("deleting is not allowed")
forbid (principal, action == Action::"tool_call", resource == Tool::"delete_file");
`;

test('decide: allow and deny, as plain objects', () => {
  const engine = Engine.fromPolicies(POLICY);
  const allow = engine.decide('coder', { kind: 'tool_call', tool: 'read_file', args: { path: '/tmp/x' } });
  assert.equal(allow.allowed, true);
  assert.equal(allow.effect, 'allow');
  assert.deepEqual(allow.policyIds, ['base']);
  assert.match(allow.decisionId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(allow.policyVersion, engine.policyVersion);
  const deny = engine.decide({ agent_id: 'coder', team: 'eng' }, { kind: 'tool_call', tool: 'delete_file', args: {} });
  assert.equal(deny.allowed, false);
  assert.equal(deny.reason, 'forbidden');
  assert.deepEqual(deny.policyIds, ['no-delete']);
  assert.equal(deny.message, 'deleting is not allowed');
  assert.notEqual(deny.decisionId, allow.decisionId);
});

test('govern: runs fn when allowed, records its outcome', () => {
  const engine = Engine.fromPolicies(POLICY, { agent: 'coder' });
  let ran = 0;
  const out = engine.govern(({ path }) => { ran++; return `read ${path}`; }, { tool: 'read_file', args: { path: '/tmp/x' } });
  assert.equal(out, 'read /tmp/x');
  assert.equal(ran, 1);
  const { records } = engine.drain();
  assert.equal(records.length, 2);
  assert.equal(records[0].action.kind, 'tool_call');
  assert.deepEqual(records[0].action.args, { path: '/tmp/x' });
  assert.equal(records[1].outcome.status, 'ok');
  assert.equal(records[1].outcome.result_size, 'read /tmp/x'.length);
  assert.equal(records[1].decision.decision_id, records[0].decision.decision_id);
});

test('govern: throws PolicyDeniedError before fn runs', () => {
  const engine = Engine.fromPolicies(POLICY, { agent: 'coder' });
  let ran = false;
  assert.throws(
    () => engine.govern(() => { ran = true; }, { tool: 'delete_file', args: { path: '/etc' } }),
    (e) => {
      assert.ok(e instanceof PolicyDeniedError);
      assert.ok(e instanceof AgentAssemblyError);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'PolicyDeniedError');
      assert.equal(e.code, 'policy_denied');
      assert.equal(e.reason, 'forbidden');
      assert.deepEqual(e.policyIds, ['no-delete']);
      assert.match(e.decisionId, /^[0-9a-f-]{36}$/);
      return true;
    });
  assert.equal(ran, false);
  const { records } = engine.drain();
  assert.equal(records.length, 1);
  assert.equal(records[0].decision.effect, 'deny');
});

test('govern: async functions and thrown errors are recorded', async () => {
  const engine = Engine.fromPolicies(POLICY, { agent: 'coder' });
  assert.deepEqual(await engine.govern(async () => [1, 2, 3], { tool: 'list', args: {} }), [1, 2, 3]);
  await assert.rejects(engine.govern(async () => { throw new TypeError('boom'); }, { tool: 'list', args: {} }), TypeError);
  assert.throws(() => engine.govern(() => { throw new RangeError('x'); }, { tool: 'list' }), RangeError);
  const outcomes = engine.drain().records.filter((r) => r.outcome).map((r) => r.outcome);
  assert.deepEqual(outcomes.map((o) => [o.status, o.result_size, o.error]),
    [['ok', 3, undefined], ['error', undefined, 'TypeError'], ['error', undefined, 'RangeError']]);
});

test('govern: arguments go through the core tool-call rules', () => {
  const engine = Engine.fromPolicies(POLICY, { agent: 'coder' });
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  const args = {
    password: 'hunter2', note: 'key sk-abcdefghijklmnopqrstuvwxyz0123', big: 'x'.repeat(5000),
    nan: NaN, n: 3, f: 1.5, big_int: 12n, bytes: new Uint8Array([104, 105, 0]), list: new Set(['a']),
    map: new Map([[1, 'one']]), cyclic, date: new Date(0), mine: 'visible', fn: undefined,
  };
  engine.govern(() => null, { tool: 'x', args, redact: ['mine'] });
  const recorded = engine.drain().records[0].action.args;
  assert.equal(recorded.password, '[redacted]');
  assert.equal(recorded.mine, '[redacted]');
  assert.ok(!recorded.note.includes('sk-abc'), recorded.note);
  assert.equal(recorded.big.length, 4097);
  assert.equal(recorded.nan, null);
  assert.equal(recorded.n, 3);
  assert.equal(recorded.f, 1.5);
  assert.equal(recorded.big_int, 12);
  assert.equal(recorded.bytes, "b'hi\\x00'");
  assert.deepEqual(recorded.list, ['a']);
  assert.deepEqual(recorded.map, { 1: 'one' });
  assert.deepEqual(recorded.cyclic, { a: 1, self: '<cycle>' });
  assert.equal(recorded.date, String(new Date(0)));
  assert.equal(recorded.fn, null);
});

test('wrap: a governed function', () => {
  const engine = Engine.fromPolicies(POLICY, { agent: 'coder' });
  const del = engine.wrap(function delete_file(path) { return path; }, { params: ['path'] });
  assert.throws(() => del('/x'), PolicyDeniedError);
  const read = engine.wrap((path) => `r:${path}`, { tool: 'read_file', params: ['path'] });
  assert.equal(read('/y'), 'r:/y');
  assert.deepEqual(engine.drain().records[1].action.args, { path: '/y' });
});

test('setPolicies: hot reload, and a bad policy keeps the old one', () => {
  const engine = Engine.fromPolicies(POLICY, { fileName: 'p.cedar' });
  const v1 = engine.policyVersion;
  const action = { kind: 'tool_call', tool: 'read_file', args: {} };
  assert.equal(engine.decide('a', action).allowed, true);
  const v2 = engine.setPolicies('@id("deny-all") forbid (principal, action, resource);');
  assert.notEqual(v2, v1);
  assert.equal(engine.policyVersion, v2);
  assert.deepEqual(engine.decide('a', action).policyIds, ['deny-all']);
  assert.throws(() => engine.setPolicies('permit (principal, action, resource'), PolicyError);
  assert.equal(engine.policyVersion, v2);
  const v3 = engine.setPolicies({ version: 'ignored', bundle: { files: { 'p.cedar': POLICY } } });
  assert.equal(v3, v1);
});

test('a bad policy names file, line and column', () => {
  assert.throws(
    () => Engine.fromPolicies({ 'ok.cedar': POLICY, 'bad.cedar': 'permit (principal, action, resource);\n\nforbid (principal, actoin, resource);\n' }),
    (e) => {
      assert.ok(e instanceof PolicyError);
      assert.equal(e.code, 'invalid_policy');
      assert.equal(e.file, 'bad.cedar');
      assert.equal(e.line, 3);
      assert.equal(typeof e.column, 'number');
      assert.ok(e.diagnostics.length >= 1);
      assert.match(e.message, /bad\.cedar:3:\d+/);
      return true;
    });
  assert.throws(() => Engine.fromPolicies(POLICY, { budgetsToml: '[[budget]]\nname = 1\n' }),
    (e) => e instanceof PolicyError && e.file === 'budgets.toml');
});

test('bad input is an InvalidInputError', () => {
  const engine = Engine.fromPolicies(POLICY);
  assert.throws(() => engine.decide('a', { kind: 'nope' }), (e) => e instanceof InvalidInputError && e.code === 'invalid_input');
  assert.throws(() => engine.decide('a', { kind: 'tool_call', tool: 't', args: {} }, { layer: 'kernel' }), InvalidInputError);
  assert.throws(() => Engine.fromBundle('{"not":"a document"}'), InvalidInputError);
  assert.throws(() => Engine.fromPolicies(POLICY, { signingSeed: 'zz' }), InvalidInputError);
  assert.throws(() => Engine.fromPolicies(POLICY, { schema: 'entity Agent;' }), /schema/);
  // An invalid agent id is a decision (deny, invalid_input), as in every binding.
  const d = engine.decide('', { kind: 'tool_call', tool: 't', args: {} });
  assert.equal(d.reason, 'invalid_input');
});

test('fromBundle takes the gateway policy document', () => {
  const doc = { version: 'x', bundle: { files: { 'p.cedar': POLICY }, suspended: ['rogue'] } };
  const engine = Engine.fromBundle(JSON.stringify(doc));
  assert.equal(engine.decide('rogue', { kind: 'tool_call', tool: 't', args: {} }).reason, 'suspended');
  assert.equal(Engine.fromBundle(doc).decide('ok', { kind: 'tool_call', tool: 't', args: {} }).allowed, true);
});

test('audit: a hash chain with signed checkpoints, drained in the wire format', () => {
  const engine = Engine.fromPolicies(POLICY, { checkpointEvery: 2 });
  for (let i = 0; i < 5; i++) engine.decide('a', { kind: 'tool_call', tool: i % 2 ? 'delete_file' : 'read', args: { i } });
  const first = engine.drain();
  assert.deepEqual(first.records.map((r) => r.seq), [1, 2, 3, 4, 5]);
  assert.equal(first.records[0].prev_hash, '0'.repeat(64));
  first.records.slice(1).forEach((r, i) => assert.equal(r.prev_hash, first.records[i].hash));
  // every 2 records, and one at the drain for the head
  assert.deepEqual(first.checkpoints.map((c) => c.seq), [2, 4, 5]);
  assert.ok(first.checkpoints.every((c) => c.public_key === engine.publicKey));
  assert.equal(first.jsonl.trim().split('\n').length, 8);
  assert.deepEqual(Object.keys(first.events[0]).sort(), ['action', 'agent_id', 'decision', 'id', 'layer', 'ts']);
  const report = verifyAudit(first.jsonl, { publicKey: engine.publicKey });
  assert.equal(report.ok, true);
  assert.equal(report.records, 5);
  assert.equal(report.sealed_seq, 5);
  // the chain continues across drains
  engine.decide('a', { kind: 'tool_call', tool: 'read', args: {} });
  const second = engine.drain();
  assert.equal(second.records[0].seq, 6);
  assert.equal(second.records[0].prev_hash, first.records[4].hash);
  assert.equal(verifyAudit(first.jsonl + second.jsonl).ok, true);
  // tampering is caught
  const tampered = first.jsonl.replace('"tool":"read"', '"tool":"reed"');
  const bad = verifyAudit(tampered);
  assert.equal(bad.ok, false);
  assert.equal(bad.failure.seq, 1);
  // a different key is caught
  assert.equal(verifyAudit(first.jsonl, { publicKey: '00'.repeat(32) }).ok, false);
});

test('time and ids come from the host', () => {
  const engine = Engine.fromPolicies(POLICY);
  const before = Date.now();
  engine.decide('a', { kind: 'tool_call', tool: 't', args: {} });
  const { records } = engine.drain();
  const ts = Date.parse(records[0].ts);
  assert.ok(ts >= before - 1 && ts <= Date.now() + 1, `${records[0].ts}`);
  // UUIDv7: the first 48 bits are the millisecond time
  assert.ok(Math.abs(parseInt(records[0].id.replace(/-/g, '').slice(0, 12), 16) - ts) <= 1);
  engine.setNow(Date.UTC(2030, 0, 1));
  engine.decide('a', { kind: 'tool_call', tool: 't', args: {} });
  assert.equal(engine.drain().records[0].ts, '2030-01-01T00:00:00.000Z');
  // two engines with random keys differ; a seed fixes the key
  assert.notEqual(Engine.fromPolicies(POLICY).publicKey, engine.publicKey);
  const seed = '07'.repeat(32);
  assert.equal(Engine.fromPolicies(POLICY, { signingSeed: seed }).publicKey, Engine.fromPolicies(POLICY, { signingSeed: seed }).publicKey);
});
