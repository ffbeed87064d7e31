// Local and remote modes against a real `aasm gateway` process: shipping, the gateway killed
// (SIGKILL) and restarted mid-run, fail-closed, the event loop while the gateway is slow, a
// budget shared by a Node and a Python process.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as aa from '../lib/index.mjs';
import { Gateway, PYTHON, cleanEnv, runNode, runProcess, sleep, tempDir, waitFor } from './support.mjs';

let dir;
let gw;
beforeEach(async (t) => {
  cleanEnv();
  dir = tempDir(t);
  process.env.AA_SPILL_DIR = join(dir, 'spill');
  gw = await Gateway.start(join(dir, 'gw.db'));
});
afterEach(async () => {
  aa.shutdown(1);
  await gw.stop('SIGKILL');
});

const spillFiles = () => {
  try {
    return readdirSync(join(dir, 'spill')).filter((f) => f.endsWith('.spill.jsonl'));
  } catch {
    return [];
  }
};

test('local mode decides in process and ships the audit to the gateway', async () => {
  const token = await gw.register('local-agent');
  const g = aa.init({ gatewayUrl: gw.url, agentId: 'local-agent', token });
  assert.equal(g.mode, 'local');
  assert.equal(aa.stats().policyVersion, (await gw.request('GET', '/v1/policy')).version);
  const shell = aa.govern((cmd) => 'ok', { tool: 'shell', args: ['cmd'] });
  assert.equal(shell('ls'), 'ok');
  assert.throws(() => shell('rm -rf /'), (e) => e instanceof aa.PolicyDeniedError && e.policyIds[0] === 'no-rm-rf-via-shell');
  aa.flush();
  const recs = await gw.records();
  // The quick call's outcome comes while its decision is still queued: one combined record.
  assert.deepEqual(recs.map((r) => [r.decision.effect, 'outcome' in r, Boolean(r.combined)]), [['allow', true, true], ['deny', false, false]]);
  assert.ok(recs.every((r) => r.agent_id === 'local-agent' && r.layer === 'sdk'));
  assert.equal((await gw.verify()).ok, true);
});

test('remote mode: the gateway decides; async governed calls do not block the event loop', async () => {
  const token = await gw.register('remote-agent');
  aa.init({ gatewayUrl: gw.url, agentId: 'remote-agent', token, mode: 'remote' });
  const shell = aa.govern(async (cmd) => cmd, { tool: 'shell', args: ['cmd'] });
  assert.equal(await shell('ls'), 'ls');
  await assert.rejects(shell('rm -rf /'), (e) => e instanceof aa.PolicyDeniedError && e.reason === 'forbidden');
  // A sync governed function decides synchronously (and still asks the gateway).
  const sync = aa.govern((x) => x * 2, { tool: 'double', args: ['x'] });
  assert.equal(sync(21), 42);

  // Freeze the gateway: a decision now waits on the network. The loop keeps turning meanwhile.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  gw.proc.kill('SIGSTOP');
  const pending = shell('echo slow');
  await sleep(300);
  const ticksWhilePending = ticks;
  gw.proc.kill('SIGCONT');
  assert.equal(await pending, 'echo slow');
  clearInterval(timer);
  assert.ok(ticksWhilePending >= 20, `the event loop ran ${ticksWhilePending} timer ticks while the decision was pending`);

  aa.flush();
  const recs = await gw.records();
  const decisions = recs.filter((r) => !('outcome' in r));
  const outcomes = recs.filter((r) => 'outcome' in r);
  assert.deepEqual(decisions.map((r) => r.decision.effect), ['allow', 'deny', 'allow', 'allow']);
  assert.equal(outcomes.length, 3);
  assert.equal(outcomes[0].decision.decision_id, decisions[0].decision.decision_id);
});

test('local mode: gateway SIGKILLed and restarted mid-run, every record delivered exactly once', async () => {
  const token = await gw.register('resilient');
  aa.init({ gatewayUrl: gw.url, agentId: 'resilient', token });
  const step = aa.govern((i) => i, { tool: 'step', args: ['i'] });
  const port = gw.port;
  // Calls spread over ~1 s while the shipper sends batches every 100 ms: the kill lands while
  // batches are being sent (some stored by the gateway but not acknowledged), the restart while
  // the calls go on.
  for (let i = 0; i < 100; i++) {
    step(i);
    if (i === 40) await gw.stop('SIGKILL');
    if (i === 60) {
      assert.throws(() => aa.flush(0.3), (e) => e instanceof aa.GatewayUnavailableError && e.code === 'unavailable');
      assert.ok(spillFiles().length > 0);
    }
    if (i === 70) await gw.start(port);
    await sleep(10);
  }
  aa.flush(20);
  const s = aa.stats();
  assert.deepEqual([s.queued, s.spilled], [0, 0], JSON.stringify(s));
  const recs = await gw.records();
  const ids = recs.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length);
  // every call's decision and outcome, once each (an outcome that found its decision still
  // queued is combined into its record)
  const steps = recs.filter((r) => 'outcome' in r).map((r) => r.action.args.i).sort((a, b) => a - b);
  assert.deepEqual(steps, Array.from({ length: 100 }, (_, i) => i));
  const decided = recs.filter((r) => !('outcome' in r) || r.combined).map((r) => r.action.args.i).sort((a, b) => a - b);
  assert.deepEqual(decided, Array.from({ length: 100 }, (_, i) => i));
  assert.equal((await gw.verify()).ok, true);
  const cli = gw.cliVerify();
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);
  assert.match(cli.stdout, new RegExp(`^ok: ${ids.length} records`, 'm'));
  assert.deepEqual(spillFiles(), []);
});

test('remote mode: gateway SIGKILLed mid-run fails closed, then every record arrives once', async () => {
  const token = await gw.register('remote-resilient');
  aa.init({ gatewayUrl: gw.url, agentId: 'remote-resilient', token, mode: 'remote' });
  const ran = [];
  const step = aa.govern(async (i) => ran.push(i), { tool: 'step', args: ['i'] });
  for (let i = 0; i < 20; i++) await step(i);
  const port = gw.port;
  await gw.stop('SIGKILL');
  const denied = [];
  for (let i = 20; i < 25; i++) {
    await step(i).catch((e) => {
      assert.ok(e instanceof aa.PolicyDeniedError);
      denied.push(e.reason);
    });
  }
  assert.deepEqual(denied, Array(5).fill('unavailable'));
  await gw.start(port);
  for (let i = 25; i < 40; i++) await step(i);
  aa.flush(20);
  assert.deepEqual(ran, [...Array.from({ length: 20 }, (_, i) => i), ...Array.from({ length: 15 }, (_, i) => i + 25)]);
  const recs = await gw.records();
  assert.equal(new Set(recs.map((r) => r.id)).size, recs.length);
  const outcomes = recs.filter((r) => 'outcome' in r).map((r) => r.action.args.i);
  const decided = recs.filter((r) => !('outcome' in r)).map((r) => r.action.args.i);
  assert.deepEqual(outcomes, ran);
  assert.deepEqual(decided, ran);
  assert.equal((await gw.verify()).ok, true);
});

test('remote mode fails closed when the gateway is down; fail-open is explicit and flagged', async () => {
  aa.init({ gatewayUrl: 'http://127.0.0.1:9', agentId: 'lonely', token: 'aa_x', mode: 'remote' });
  let ran = 0;
  const act = aa.govern(async () => ran++, { tool: 'act' });
  await assert.rejects(act(), (e) => e instanceof aa.PolicyDeniedError && e.reason === 'unavailable');
  assert.equal(ran, 0);
  aa.init({ gatewayUrl: 'http://127.0.0.1:9', agentId: 'lonely', token: 'aa_x', mode: 'remote', failOpen: true });
  const d = aa.decide({ kind: 'tool_call', tool: 'act' });
  assert.ok(d.allowed && d.failOpen && d.reason === 'unavailable');
  aa.init({ gatewayUrl: 'http://127.0.0.1:9', agentId: 'lonely', token: 'aa_x' });
  assert.equal(aa.decide({ kind: 'tool_call', tool: 'x' }).reason, 'unavailable');
});

test('a budget shared by a Node and a Python process (remote mode): exactly the limit is allowed', async () => {
  await gw.stop('SIGKILL');
  const policy = join(dir, 'policy');
  mkdirSync(policy);
  writeFileSync(join(policy, 'p.cedar'), 'permit(principal, action, resource);');
  writeFileSync(join(policy, 'budgets.toml'), '[[budget]]\nname = "team-calls"\nper = "team"\nwindow = "total"\ncalls = 10\n');
  gw = await Gateway.start(join(dir, 'gw2.db'), policy);
  const [nodeToken, pyToken] = [await gw.register('node-worker', 'crew'), await gw.register('py-worker', 'crew')];
  const env = (id, token) => ({ AA_GATEWAY_URL: gw.url, AA_AGENT_ID: id, AA_TOKEN: token, AA_MODE: 'remote', AA_SPILL_DIR: join(dir, `spill-${id}`) });
  const nodeCode = `
    import * as aa from ${JSON.stringify(new URL('../lib/index.mjs', import.meta.url).href)};
    const step = aa.govern(async (i) => i, { tool: 'step', args: ['i'] });
    let ok = 0, denied = 0;
    for (let i = 0; i < 8; i++) {
      try { await step(i); ok++; } catch (e) { if (!(e instanceof aa.PolicyDeniedError) || e.budget !== 'team-calls') throw e; denied++; }
    }
    aa.shutdown();
    console.log(JSON.stringify({ ok, denied }));`;
  const pyCode = `
import json, agent_assembly as aa
@aa.govern
def step(i): return i
ok = denied = 0
for i in range(8):
    try:
        step(i); ok += 1
    except aa.PolicyDenied as e:
        assert e.budget == "team-calls", e.budget
        denied += 1
aa.shutdown()
print(json.dumps({"ok": ok, "denied": denied}))`;
  const [n, p] = await Promise.all([
    runNode(nodeCode, env('node-worker', nodeToken)),
    runProcess(PYTHON, ['-c', pyCode], env('py-worker', pyToken)),
  ]);
  assert.equal(n.code, 0, n.stderr);
  assert.equal(p.code, 0, p.stderr);
  const [rn, rp] = [JSON.parse(n.stdout), JSON.parse(p.stdout)];
  assert.equal(rn.ok + rp.ok, 10, JSON.stringify({ rn, rp }));
  assert.equal(rn.denied + rp.denied, 6);
  const budgets = await gw.request('GET', '/v1/budgets');
  assert.match(JSON.stringify(budgets), /team-calls/);
});
