// The official TypeScript MCP client (@modelcontextprotocol/sdk), Node's fetch through the proxy
// (undici's ProxyAgent: Node 20 has no proxy environment support), the proxy's CA trusted.
// Prints one JSON line.   node mcp_client.mjs URL PROXY_URL PROXY_CA
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { ProxyAgent, fetch } from "undici";

const [url, proxy, ca] = process.argv.slice(2);
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(ca) } });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  fetch: (input, init) => fetch(input, { ...init, dispatcher }),
});
const client = new Client({ name: "node-agent", version: "1.0.0" });
await client.connect(transport);
const out = { session: Boolean(transport.sessionId) };
out.tools = (await client.listTools()).tools.map((t) => t.name);
const ok = await client.callTool({ name: "read_file", arguments: { path: "/tmp/x" } });
out.ok = ok.content.filter((c) => c.type === "text").map((c) => c.text);
try {
  await client.callTool({ name: "delete_repo", arguments: { repo: "prod" } });
  out.denied = null;
} catch (e) {
  if (!(e instanceof McpError)) throw e;
  out.denied = { code: e.code, message: e.message, data: e.data };
}
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
