// govern(), decide()/report(), modelCall() and configuration in embedded mode (no gateway).
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as aa from '../lib/index.mjs';
import { AASM, PERMISSIVE, auditLines, cleanEnv, tempDir } from './support.mjs';

let audit;
beforeEach((t) => {
  cleanEnv();
  const d = tempDir(t);
  process.env.AA_SPILL_DIR = join(d, 'spill');
  audit = join(d, 'audit.jsonl');
});
afterEach(() => aa.shutdown(2));

function embedded() {
  return aa.init({ policy: PERMISSIVE, agentId: 'node-agent', auditFile: audit });
}
function records() {
  aa.governor().flush();
  return auditLines(audit);
}

test('a sync tool that is allowed runs, and its decision and outcome are recorded', () => {
  embedded();
  const search = aa.govern((query, limit) => Array(limit).fill(query), { tool: 'search', args: ['query', 'limit'] });
  assert.deepEqual(search('cedar', 2), ['cedar', 'cedar']);
  const recs = records();
  assert.deepEqual(recs.map((r) => r.decision.effect), ['allow', 'allow']);
  const [decided, done] = recs;
  assert.deepEqual(decided.action, { kind: 'tool_call', tool: 'search', args: { query: 'cedar', limit: 2 } });
  assert.equal(decided.outcome, undefined);
  assert.equal(done.outcome.status, 'ok');
  assert.equal(done.outcome.result_size, 2);
  assert.equal(typeof done.outcome.duration_us, 'number');
  assert.equal(done.decision.decision_id, decided.decision.decision_id);
});

test('a governed function follows init() to the new governor: decided, recorded and ended there', (t) => {
  embedded();
  const search = aa.govern((q) => q, { tool: 'search', args: ['q'] });
  assert.equal(search('one'), 'one');
  const first = audit;
  assert.equal(records().length, 2);
  aa.shutdown(2);
  // A second governor with its own audit file, and a policy that forbids the tool.
  const policy = join(tempDir(t), 'deny');
  mkdirSync(policy);
  writeFileSync(join(policy, 'p.cedar'), 'permit (principal, action, resource);\nforbid (principal, action, resource == Tool::"search");\n');
  audit = join(tempDir(t), 'second.jsonl');
  aa.init({ policy, agentId: 'node-agent', auditFile: audit });
  assert.throws(() => search('two'), (e) => e instanceof aa.PolicyDeniedError);
  assert.deepEqual(records().map((r) => [r.action.args.q, r.decision.effect]), [['two', 'deny']]);
  assert.equal(auditLines(first).length, 2, 'nothing more reached the first governor');
});

test('a call ticket ends once; a later end, or a number that is not a ticket, records nothing more', () => {
  embedded();
  const g = aa.governor();
  const rules = new aa.native.ArgRules(undefined, ['q']);
  const ticket = g.beginCall('search', ['x'], rules);
  assert.equal(typeof ticket, 'number');
  g.endOk(ticket, 'abc');
  g.endOk(ticket, 'abcdef'); // ended already: ignored
  g.endError(ticket, 'TypeError');
  assert.throws(() => g.endOk(0.5, null), (e) => e.code === 'invalid_input');
  const recs = records();
  assert.equal(recs.length, 2, 'one decision, one outcome');
  assert.equal(recs[1].outcome.status, 'ok');
  assert.equal(recs[1].outcome.result_size, 3);
});

test('a deny throws PolicyDeniedError before the body runs (sync)', () => {
  embedded();
  const ran = [];
  const shell = aa.govern((cmd) => ran.push(cmd), { tool: 'shell', args: ['cmd'] });
  let caught;
  try {
    shell('cd /tmp && rm -rf ./build');
  } catch (e) {
    caught = e;
  }
  assert.deepEqual(ran, []);
  assert.ok(caught instanceof aa.PolicyDeniedError);
  assert.ok(caught instanceof aa.AgentAssemblyError);
  assert.ok(caught instanceof Error);
  assert.equal(caught.code, 'policy_denied');
  assert.equal(caught.reason, 'forbidden');
  assert.deepEqual(caught.policyIds, ['no-rm-rf-via-shell']);
  assert.match(caught.decisionId, /^[0-9a-f-]{36}$/);
  assert.equal(caught.budget, null);
  assert.equal(caught.action, 'shell');
  assert.match(caught.message, /rm -rf/);
  assert.deepEqual(records().map((r) => r.decision.effect), ['deny']);
});

test('async tools: allowed ones resolve, a deny rejects before the body runs', async () => {
  embedded();
  let ran = 0;
  const shell = aa.govern(
    async function shell({ cmd }) {
      ran++;
      await new Promise((r) => setTimeout(r, 5));
      return `ran ${cmd}`;
    },
  );
  assert.equal(await shell({ cmd: 'ls' }), 'ran ls');
  await assert.rejects(shell({ cmd: 'rm -rf /' }), (e) => e instanceof aa.PolicyDeniedError && e.reason === 'forbidden');
  assert.equal(ran, 1);
  // A sync function returning a promise: its outcome is recorded when the promise settles.
  const later = aa.govern((n) => Promise.resolve('x'.repeat(n)), { tool: 'later', args: ['n'] });
  assert.equal(await later(7), 'xxxxxxx');
  const recs = records();
  assert.deepEqual(recs[0].action.args, { cmd: 'ls' });
  assert.equal(recs[1].outcome.result_size, 6);
  assert.equal(recs.at(-1).outcome.result_size, 7);
  assert.ok(recs[1].outcome.duration_us >= 4000, JSON.stringify(recs[1].outcome));
});

test('errors are recorded by type name (never the message) and rethrown', async () => {
  embedded();
  const flaky = aa.govern(() => {
    throw new RangeError('secret detail');
  }, { tool: 'flaky' });
  assert.throws(flaky, RangeError);
  const flakyAsync = aa.govern(async () => {
    throw new TypeError('more detail');
  }, { tool: 'flaky_async' });
  await assert.rejects(flakyAsync(), TypeError);
  const recs = records();
  assert.deepEqual(recs[1].outcome.status, 'error');
  assert.equal(recs[1].outcome.error, 'RangeError');
  assert.equal(recs[3].outcome.error, 'TypeError');
  assert.ok(!readFileSync(audit, 'utf8').includes('secret detail'));
});

test('argument naming, mapping and redaction', () => {
  embedded();
  const fetchUrl = aa.govern((url, headers) => url, { tool: 'fetch', args: ['url'] });
  const login = aa.govern((user, apiKey, extra) => true, {
    tool: 'login',
    args: (user, apiKey, extra) => ({ user, api_key: apiKey, n: Object.keys(extra).length }),
  });
  const lookup = aa.govern(({ name, ssn, password }) => name, { tool: 'lookup', redact: ['ssn'] });
  const many = aa.govern((a, b) => a + b, { tool: 'many' });
  fetchUrl('https://example.com', { Authorization: 'Bearer x' });
  login('ann', 'sk-live-123', { a: 1 });
  lookup({ name: 'ann', ssn: '123-45-6789', password: 'hunter2' });
  many(1, 2);
  const args = records().filter((_, i) => i % 2 === 0).map((r) => r.action.args);
  assert.deepEqual(args[0], { url: 'https://example.com' });
  assert.deepEqual(args[1], { user: 'ann', api_key: '[redacted]', n: 1 });
  assert.deepEqual(args[2], { name: 'ann', ssn: '[redacted]', password: '[redacted]' });
  assert.deepEqual(args[3], { args: [1, 2] });
  const text = readFileSync(audit, 'utf8');
  assert.ok(!text.includes('hunter2') && !text.includes('sk-live-123') && !text.includes('123-45-6789'));
});

test('plain JSON arguments cross as text and are recorded as the N-API conversion records them', () => {
  const g = embedded();
  const rules = new aa.native.ArgRules();
  const viaNapi = (args) => JSON.parse(g.decideCall('t', [args], rules).actionJson()).args;
  const nested = { a: [1, { b: [true, null, 'x'] }], '10': 'ten', '2': 'two' };
  const polluted = {};
  const withGetter = {};
  let reads = 0;
  Object.defineProperty(withGetter, 'g', {
    enumerable: true,
    get: () => (reads++ === 0 ? 'plain' : { toJSON: () => 'hidden' }),
  });
  const cases = [
    // Plain JSON: sent as text.
    { s: 'é ✓ \u0000 "q" \\', n: -0, big: 2 ** 60, huge: 1e21, tiny: 0.1, neg: -7, t: true, z: null },
    // Keys and strings quoted directly (printable ASCII) and through JSON.stringify (the rest).
    { 'k "q"': 'a\\b', 'tab\t': '\u001f~ !#[]', 'ü': 'caf\u00e9', '\u2028': '\ud83d\ude00', plain: '' },
    nested,
    Object.assign(Object.create(null), { a: 1 }),
    JSON.parse('{"__proto__": {"x": 1}, "k": "v"}'),
    { key: 'sk-abcdefghijklmnopqrstuvwxyz', token: 'x', long: 'y'.repeat(5000), NaN: NaN, inf: Infinity },
    { arr: [[[[['deep enough']]]]] },
    // Not plain JSON: the N-API conversion.
    { arr: [[[[[[[[[[['too deep for text']]]]]]]]]]] },
    { o: { toJSON: () => 'lies' } },
    { s: 'lone \ud800 surrogate' },
    { u: undefined, hole: [1, , 3] },
    { big: 1n, d: new Date(0), m: new Map([['k', 1]]) },
    Object.assign(Object.create(polluted), { own: 1 }),
  ];
  // Count the calls that crossed as text.
  const { gateBeginCallJson } = aa.native;
  let asText = 0;
  aa.native.gateBeginCallJson = (...a) => {
    asText++;
    return gateBeginCallJson(...a);
  };
  try {
    for (const args of cases) {
      const governed = aa.govern((a) => a, { tool: 't' });
      governed(args);
      const recorded = records().at(-2).action.args;
      assert.deepEqual(recorded, viaNapi(args), JSON.stringify(recorded));
    }
  } finally {
    aa.native.gateBeginCallJson = gateBeginCallJson;
  }
  assert.equal(asText, 7, 'the seven plain cases crossed as text, the others through N-API');
  // The named form (an adapter's mapper) and names given to positional arguments.
  const mapped = aa.govern((x, y) => x, { tool: 't', args: (x, y) => ({ x, y }) });
  mapped({ deep: [1] }, 'two');
  assert.deepEqual(records().at(-2).action.args, { x: { deep: [1] }, y: 'two' });
  const named = aa.govern((x, y) => x, { tool: 't', args: ['x', 'y'] });
  named(1, [2]);
  assert.deepEqual(records().at(-2).action.args, { x: 1, y: [2] });
  const many = aa.govern((...xs) => xs, { tool: 't' });
  for (const argv of [['a', 1], [], [5], [[1, 2]]]) {
    many(...argv);
    const want = JSON.parse(g.decideCall('t', argv, rules).actionJson()).args;
    assert.deepEqual(records().at(-2).action.args, want);
  }
  assert.deepEqual(records().at(-2).action.args, { args: [[1, 2]] });
  // A getter is read once by either path, and a toJSON it returns later is never called.
  aa.govern((a) => a, { tool: 't' })(withGetter);
  assert.deepEqual(records().at(-2).action.args, { g: 'plain' });
  // An inherited enumerable key (a polluted prototype) takes the N-API path, which reads it.
  polluted.inherited = 'seen';
  aa.govern((a) => a, { tool: 't' })(Object.assign(Object.create(polluted), { own: 1 }));
  assert.deepEqual(records().at(-2).action.args, viaNapi(Object.assign(Object.create(polluted), { own: 1 })));
});

test('JS values follow the core rule (aa_core::tool_call)', () => {
  const g = embedded();
  const cyclic = { name: 'c' };
  cyclic.self = cyclic;
  const list = [1];
  list.push(list);
  let deep = 'bottom';
  for (let i = 0; i < 40; i++) deep = [deep];
  class Point {
    toString() {
      return 'Point(1, 2)';
    }
  }
  const call = g.decideTool('convert', {
    int: 42,
    negZero: -0,
    float: 2.5,
    big: 1n,
    hugeBig: 2n ** 70n,
    unsafeInt: 2 ** 60,
    nan: NaN,
    inf: -Infinity,
    none: null,
    undef: undefined,
    bool: true,
    date: new Date(0),
    buffer: Buffer.from([104, 105, 0, 39]),
    bytes: new Uint8Array([1, 2]),
    arrayBuffer: new Uint8Array([65]).buffer,
    floats: new Float32Array([1.5]),
    map: new Map([[1, 'one'], ['k', { v: 1 }]]),
    set: new Set(['a', 'b']),
    point: new Point(),
    symbol: Symbol('s'),
    fn: function named() {},
    cyclic,
    list,
    deep,
    nullProto: Object.assign(Object.create(null), { a: 1 }),
    long: 'x'.repeat(5000),
    note: 'token is Bearer abcdefghijklmnopqrstuvwxyz',
  });
  const args = JSON.parse(call.actionJson()).args;
  assert.equal(args.int, 42);
  assert.equal(args.negZero, 0);
  assert.equal(args.float, 2.5);
  assert.equal(args.big, 1);
  assert.equal(args.hugeBig, '1180591620717411303424');
  assert.equal(args.unsafeInt, 2 ** 60); // a float past 2^53, still a number
  assert.equal(args.nan, null);
  assert.equal(args.inf, null);
  assert.equal(args.none, null);
  assert.equal(args.undef, null);
  assert.equal(args.bool, true);
  assert.equal(args.date, String(new Date(0)));
  assert.equal(args.buffer, "b\"hi\\x00'\"");
  assert.equal(args.bytes, "b'\\x01\\x02'");
  assert.equal(args.arrayBuffer, "b'A'");
  assert.equal(args.floats, '1.5');
  assert.deepEqual(args.map, { 1: 'one', k: { v: 1 } });
  assert.deepEqual(args.set, ['a', 'b']);
  assert.equal(args.point, 'Point(1, 2)');
  assert.equal(args.symbol, 'Symbol(s)');
  assert.match(args.fn, /^function named/);
  assert.deepEqual(args.cyclic, { name: 'c', self: '<cycle>' });
  assert.deepEqual(args.list, [1, '<cycle>']);
  let d = args.deep;
  let depth = 1;
  while (Array.isArray(d)) {
    d = d[0];
    depth++;
  }
  assert.equal(d, '<nested too deep>');
  assert.equal(depth, 33);
  assert.deepEqual(args.nullProto, { a: 1 });
  assert.equal([...args.long].length, 4097);
  assert.ok(args.long.endsWith('…'));
  assert.equal(args.note, 'token is [redacted]');
  // result sizes: string characters, bytes, collection entries
  call.ok('héllo');
  const sizes = [];
  for (const r of ['héllo', Buffer.alloc(3), [1, 2], new Map([[1, 1]]), new Set([1, 2, 3]), { a: 1, b: 2 }, 5, null]) {
    const c = g.decideTool('size', {});
    c.ok(r);
    sizes.push(r);
  }
  const outcomes = records().filter((r) => r.action.tool === 'size' && r.outcome).map((r) => r.outcome.result_size ?? null);
  assert.deepEqual(outcomes, [5, 3, 2, 1, 3, 2, null, null]);
});

test('decide() and report() for any action; a malformed action is InvalidActionError', () => {
  embedded();
  let d = aa.decide({ kind: 'file_access', path: '/etc/passwd', access: 'write' });
  assert.deepEqual([d.effect, d.reason, d.policyIds], ['deny', 'forbidden', ['no-etc-writes']]);
  const req = { kind: 'http_request', method: 'GET', scheme: 'https', host: 'example.com', port: 443, path: '/' };
  d = aa.decide(req);
  assert.ok(d.allowed);
  aa.report(req, d, { ok: true, durationMs: 10, resultSize: 10 });
  assert.throws(() => aa.decide({ kind: 'teleport' }), (e) => e instanceof aa.InvalidActionError && e.code === 'invalid_input');
  const last = records().at(-1);
  assert.equal(last.outcome.duration_us, 10000);
  assert.equal(last.outcome.result_size, 10);
});

test('model usage (JSON and streamed) is charged to budgets, cost priced by the core', async (t) => {
  const dir = tempDir(t);
  const policy = join(dir, 'policy');
  mkdirSync(policy);
  writeFileSync(join(policy, 'p.cedar'), 'permit(principal, action, resource);');
  writeFileSync(
    join(policy, 'budgets.toml'),
    '[[budget]]\nname = "llm"\nkinds = ["model_call"]\nwindow = "day"\ncost_usd = 0.01\n',
  );
  aa.init({ policy, agentId: 'spender', auditFile: join(dir, 'a.jsonl') });
  // An OpenAI chat completion (non-streamed): 1000 x $2.50/M + 800 x $10/M = $0.0105.
  let seen;
  const completion = await aa.modelCall({ provider: 'openai', model: 'gpt-4o' }, async (call) => {
    seen = call;
    return { id: 'c1', object: 'chat.completion', usage: { prompt_tokens: 1000, completion_tokens: 800 } };
  });
  assert.equal(completion.id, 'c1');
  assert.deepEqual(seen.usage, { input_tokens: 1000, output_tokens: 800 });
  await assert.rejects(
    aa.modelCall({ provider: 'openai', model: 'gpt-4o' }, () => assert.fail('must not run')),
    (e) => e instanceof aa.PolicyDeniedError && e.reason === 'budget_exceeded' && e.budget === 'llm',
  );
  const recs = auditLines(join(dir, 'a.jsonl'));
  const charged = recs.find((r) => r.outcome);
  assert.deepEqual(charged.outcome.usage.input_tokens, 1000);
  assert.ok(Math.abs(charged.outcome.usage.cost_usd - 0.0105) < 1e-9, JSON.stringify(charged.outcome));

  // Streamed: an Anthropic event stream as an SDK yields it (objects), and raw SSE bytes.
  aa.init({ policy: PERMISSIVE, agentId: 'streamer', auditFile: join(dir, 'b.jsonl') });
  async function* anthropicStream() {
    yield { type: 'message_start', message: { usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 7 } } };
    yield { type: 'content_block_delta', delta: { text: 'hi' } };
    yield { type: 'message_delta', usage: { output_tokens: 5 } };
  }
  const stream = await aa.modelCall({ provider: 'anthropic', model: 'claude-sonnet-4' }, () => anthropicStream());
  const chunks = [];
  for await (const c of stream) chunks.push(c.type);
  assert.deepEqual(chunks, ['message_start', 'content_block_delta', 'message_delta']);
  await aa.modelCall({ provider: 'openai', model: 'gpt-4o-mini' }, (call) => {
    call.feedSse('data: {"choices":[{"delta":{"content":"h"}}]}\n\n');
    call.feedSse(Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\ndata: [DONE]\n\n'));
  });
  aa.governor().flush();
  const usages = auditLines(join(dir, 'b.jsonl')).filter((r) => r.outcome).map((r) => [r.outcome.usage.input_tokens, r.outcome.usage.output_tokens]);
  assert.deepEqual(usages, [[17, 5], [3, 4]]);
});

test('bad configuration throws ConfigError with a code', (t) => {
  const dir = tempDir(t);
  const bad = (options, code, pattern) =>
    assert.throws(() => aa.init(options), (e) => e instanceof aa.ConfigError && e.code === code && pattern.test(e.message));
  bad({ agentId: 'x' }, 'config', /give a gateway/);
  bad({ policy: PERMISSIVE }, 'config', /agent_id is required/);
  bad({ policy: join(dir, 'nope'), agentId: 'x' }, 'config', /does not exist/);
  bad({ gatewayUrl: 'http://127.0.0.1:9', agentId: 'x' }, 'config', /needs the agent's token/);
  bad({ gatewayUrl: 'ftp://x', agentId: 'x', token: 't' }, 'config', /must start with http/);
  bad({ policy: PERMISSIVE, agentId: 'x', mode: 'sideways' }, 'config', /mode must be/);
  bad({ policy: PERMISSIVE, agentId: 'bad\nid' }, 'config', /control character/);
  const broken = join(dir, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'p.cedar'), 'permit(principal, action, resource)\nwhen { context.nope };');
  bad({ policy: broken, agentId: 'x' }, 'invalid_policy', /p\.cedar:2:8/);
  process.env.AA_FAIL_OPEN = 'maybe';
  bad({ policy: PERMISSIVE, agentId: 'x' }, 'config', /AA_FAIL_OPEN must be true or false/);
  delete process.env.AA_FAIL_OPEN;
  // Without init() or AA_* variables, the first governed call says what to do.
  aa.shutdown();
  const t1 = aa.govern(() => 1, { tool: 't' });
  assert.throws(t1, (e) => e instanceof aa.ConfigError && /call init/.test(e.message));
});

test('the AA_* environment variables configure the process', (t) => {
  process.env.AA_POLICY = PERMISSIVE;
  process.env.AA_AGENT_ID = 'from-env';
  process.env.AA_AUDIT_FILE = join(tempDir(t), 'env.jsonl');
  aa.shutdown();
  assert.equal(aa.governor().mode, 'embedded');
  assert.equal(aa.governor().agentId, 'from-env');
});

test('the embedded audit file verifies with aasm audit verify', () => {
  embedded();
  const step = aa.govern((i) => i, { tool: 'step', args: ['i'] });
  for (let i = 0; i < 20; i++) step(i);
  assert.equal(aa.shutdown(), true);
  const out = spawnSync(AASM, ['--json', 'audit', 'verify', audit, '--strict'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stdout + out.stderr);
  const report = JSON.parse(out.stdout.trim().split('\n').at(-1)).data;
  assert.equal(report.records, 40);
  assert.equal(report.sealed_seq, 40);
});
