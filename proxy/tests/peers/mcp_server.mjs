// A real MCP server, the official TypeScript SDK (@modelcontextprotocol/sdk) with its
// streamable-HTTP transport, stateful (Mcp-Session-Id), on HTTPS.
//   node mcp_server.mjs PORT CERT KEY sse|json
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const [port, cert, key, mode] = process.argv.slice(2);
const sessions = new Map();

function mcpServer() {
  const server = new McpServer({ name: "files", version: "1.0.0" });
  server.registerTool("read_file", { description: "Read a file.", inputSchema: { path: z.string() } },
    async ({ path }) => ({ content: [{ type: "text", text: `contents of ${path}` }] }));
  server.registerTool("delete_repo", { description: "Delete a repository.", inputSchema: { repo: z.string() } },
    async ({ repo }) => ({ content: [{ type: "text", text: `deleted ${repo}` }] }));
  return server;
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
}

createServer({ cert: readFileSync(cert), key: readFileSync(key) }, async (req, res) => {
  try {
    const parsed = req.method === "POST" ? await body(req) : undefined;
    let transport = sessions.get(req.headers["mcp-session-id"]);
    if (!transport) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: mode === "json",
        onsessioninitialized: (id) => sessions.set(id, transport),
      });
      await mcpServer().connect(transport);
    }
    await transport.handleRequest(req, res, parsed);
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
}).listen(Number(port), "127.0.0.1", () => console.log(`listening ${port}`));
