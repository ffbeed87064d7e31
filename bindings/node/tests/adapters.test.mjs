// The adapters with the real npm packages (installed by scripts/node.sh outside the clone):
// Vercel AI SDK, OpenAI Agents JS, LangChain.js, the MCP TypeScript SDK, each driven by a
// scripted local model (stub-model.mjs) or an in-memory MCP transport — no network.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import * as aa from '../lib/index.mjs';
import { HERE, auditLines, cleanEnv, tempDir } from './support.mjs';
import { startStubModel } from './stub-model.mjs';

const POLICY = join(HERE, 'fixtures/adapters-policy');
let audit;
beforeEach((t) => {
  cleanEnv();
  audit = join(tempDir(t), 'audit.jsonl');
  aa.init({ policy: POLICY, agentId: 'adapter-agent', auditFile: audit });
});
afterEach(() => aa.shutdown(2));

const records = () => {
  aa.governor().flush();
  return auditLines(audit);
};
const TOOL_CALLS = [
  { name: 'get_weather', args: { city: 'Paris' } },
  { name: 'shell', args: { command: 'rm -rf /' } },
];

test('Vercel AI SDK: tool({...}) with a governed execute in a generateText loop', async (t) => {
  const { generateText, tool, stepCountIs } = await import('ai');
  const { createOpenAICompatible } = await import('@ai-sdk/openai-compatible');
  const stub = await startStubModel(TOOL_CALLS);
  t.after(stub.close);
  const ran = [];
  const tools = {
    get_weather: aa.governTool('get_weather', tool({
      description: 'The weather in a city',
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => (ran.push(city), `sunny in ${city}`),
    })),
    shell: tool({
      description: 'Run a shell command',
      inputSchema: z.object({ command: z.string() }),
      execute: aa.governExecute('shell', async ({ command }) => (ran.push(command), 'ran')),
    }),
  };
  const model = createOpenAICompatible({ name: 'stub', baseURL: stub.url, apiKey: 'stub' })('stub-model');
  const result = await generateText({ model, tools, prompt: 'weather, then clean up', stopWhen: stepCountIs(3) });
  assert.deepEqual(ran, ['Paris']);
  // The model's second request carries the tool results: the weather, and the denial.
  const seen = JSON.stringify(stub.requests[1].body.messages.filter((m) => m.role === 'tool'));
  assert.match(seen, /sunny in Paris/);
  assert.match(seen, /a shell command containing rm -rf is forbidden/);
  assert.match(result.text, /^done: /);
  // The SDK runs the two tool calls concurrently: compare the records in a stable order.
  const recs = records();
  assert.deepEqual(
    recs.map((r) => [r.action.tool, r.decision.effect, Boolean(r.outcome)]).sort(),
    [['get_weather', 'allow', false], ['get_weather', 'allow', true], ['shell', 'deny', false]],
  );
  assert.deepEqual(recs.find((r) => r.action.tool === 'get_weather').action.args, { city: 'Paris' });
});

test('OpenAI Agents JS: a full agent run; the model sees the denial of a tool', async (t) => {
  const agents = await import('@openai/agents');
  const { default: OpenAI } = await import('openai');
  const stub = await startStubModel(TOOL_CALLS);
  t.after(stub.close);
  agents.setTracingDisabled(true);
  agents.setOpenAIAPI('chat_completions');
  agents.setDefaultOpenAIClient(new OpenAI({ apiKey: 'stub', baseURL: stub.url }));
  const ran = [];
  const getWeather = agents.tool({
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: z.object({ city: z.string() }),
    execute: aa.governExecute('get_weather', async ({ city }) => (ran.push(city), `sunny in ${city}`)),
    errorFunction: aa.agentsErrorFunction,
  });
  const shell = agents.tool({
    name: 'shell',
    description: 'Run a shell command',
    parameters: z.object({ command: z.string() }),
    execute: aa.governExecute('shell', async ({ command }) => (ran.push(command), 'ran')),
    errorFunction: aa.agentsErrorFunction,
  });
  const agent = new agents.Agent({ name: 'ops', instructions: 'Help.', model: 'stub-model', tools: [getWeather, shell] });
  const result = await agents.run(agent, 'weather, then clean up');
  assert.deepEqual(ran, ['Paris']);
  assert.equal(stub.requests.length, 2);
  const toolMessages = stub.requests[1].body.messages.filter((m) => m.role === 'tool');
  const byId = Object.fromEntries(toolMessages.map((m) => [m.tool_call_id, String(m.content)]));
  assert.match(byId.call_1, /sunny in Paris/);
  assert.match(byId.call_2, /^Agent Assembly denied this action \(forbidden\): a shell command containing rm -rf is forbidden\. It was not run/);
  assert.match(result.finalOutput, /Agent Assembly denied this action/);
  const denied = records().find((r) => r.decision.effect === 'deny');
  assert.deepEqual(denied.action, { kind: 'tool_call', tool: 'shell', args: { command: 'rm -rf /' } });
});

test('LangChain.js: tool(...) over a governed function', async () => {
  const { tool } = await import('@langchain/core/tools');
  const ran = [];
  const shell = tool(aa.governExecute('shell', async ({ command }) => (ran.push(command), `ran ${command}`)), {
    name: 'shell',
    description: 'Run a shell command',
    schema: z.object({ command: z.string() }),
  });
  assert.equal(await shell.invoke({ command: 'ls' }), 'ran ls');
  // A model's tool call in, a ToolMessage out.
  const msg = await shell.invoke({ id: 'tc1', name: 'shell', args: { command: 'pwd' }, type: 'tool_call' });
  assert.equal(msg.content, 'ran pwd');
  assert.equal(msg.tool_call_id, 'tc1');
  await assert.rejects(shell.invoke({ command: 'rm -rf /' }), (e) => e instanceof aa.PolicyDeniedError && e.reason === 'forbidden');
  assert.deepEqual(ran, ['ls', 'pwd']);
  const recs = records();
  assert.deepEqual(recs.filter((r) => !r.outcome).map((r) => [r.action.args.command, r.decision.effect]), [
    ['ls', 'allow'],
    ['pwd', 'allow'],
    ['rm -rf /', 'deny'],
  ]);
});

test('MCP TypeScript SDK: a governed client callTool and a governed server', async () => {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { InMemoryTransport } = await import('@modelcontextprotocol/sdk/inMemory.js');
  const ran = [];
  const connect = async (server, name) => {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name, version: '1.0.0' });
    await Promise.all([server.connect(a), client.connect(b)]);
    return client;
  };
  const makeServer = () => {
    const server = new McpServer({ name: 'files', version: '1.0.0' });
    return server;
  };
  const register = (server) => {
    server.registerTool('read_file', { description: 'Read', inputSchema: { path: z.string() } }, async ({ path }) => {
      ran.push(`read ${path}`);
      return { content: [{ type: 'text', text: `contents of ${path}` }] };
    });
    server.registerTool('delete_file', { description: 'Delete', inputSchema: { path: z.string() } }, async ({ path }) => {
      ran.push(`delete ${path}`);
      return { content: [{ type: 'text', text: 'deleted' }] };
    });
  };

  // Client side: the request for a denied tool is never sent.
  const plainServer = makeServer();
  register(plainServer);
  const client = aa.governMcpClient(await connect(plainServer, 'agent'), { server: 'files' });
  const read = await client.callTool({ name: 'read_file', arguments: { path: '/a' } });
  assert.equal(read.content[0].text, 'contents of /a');
  await assert.rejects(
    client.callTool({ name: 'delete_file', arguments: { path: '/a' } }),
    (e) => e instanceof aa.PolicyDeniedError && e.policyIds[0] === 'no-mcp-delete' && e.action === 'files/delete_file',
  );
  assert.deepEqual(ran, ['read /a']);

  // Server side: its handlers are governed whoever calls; a deny is an error result.
  const governed = aa.governMcpServer(makeServer(), { server: 'files' });
  register(governed);
  const other = await connect(governed, 'someone');
  const ok = await other.callTool({ name: 'read_file', arguments: { path: '/b' } });
  assert.equal(ok.content[0].text, 'contents of /b');
  const no = await other.callTool({ name: 'delete_file', arguments: { path: '/b' } });
  assert.equal(no.isError, true);
  assert.match(no.content[0].text, /Agent Assembly denied this action \(forbidden\): deleting files through MCP is forbidden/);
  assert.deepEqual(ran, ['read /a', 'read /b']);

  const recs = records();
  assert.deepEqual(
    recs.map((r) => [r.action.kind, r.action.server, r.action.tool, r.decision.effect, Boolean(r.outcome)]),
    [
      ['mcp_call', 'files', 'read_file', 'allow', false],
      ['mcp_call', 'files', 'read_file', 'allow', true],
      ['mcp_call', 'files', 'delete_file', 'deny', false],
      ['mcp_call', 'files', 'read_file', 'allow', false],
      ['mcp_call', 'files', 'read_file', 'allow', true],
      ['mcp_call', 'files', 'delete_file', 'deny', false],
    ],
  );
  assert.deepEqual(recs[0].action.args, { path: '/a' });
  await client.close();
  await other.close();
});
