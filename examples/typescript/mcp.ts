// MCP: a governed client (callTool decided before the request is sent) and a governed
// server (its tool handlers decided before they run), over an in-memory transport.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { z } from 'zod';
import { governMcpClient, governMcpServer, init } from 'agent-assembly';

init({ policy: 'examples/policies/permissive', agentId: 'coder' });

const server = governMcpServer(new McpServer({ name: 'files', version: '1.0.0' }), { server: 'files' });
server.registerTool('read_file', { description: 'Read a file', inputSchema: { path: z.string() } }, async ({ path }) => ({
  content: [{ type: 'text' as const, text: `contents of ${path}` }],
}));

const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
const client = governMcpClient(new Client({ name: 'agent', version: '1.0.0' }), { server: 'files' });
await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
console.log(await client.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } }));
await client.close();
