// A scripted OpenAI-compatible Chat Completions server on 127.0.0.1 (no network): the first
// request of a conversation asks for the tool calls it was given; once tool results are in
// the conversation it answers with text quoting them. Every request body is kept.
import { createServer } from 'node:http';

export async function startStubModel(toolCalls) {
  const requests = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const json = body ? JSON.parse(body) : {};
      requests.push({ path: req.url, body: json });
      const messages = json.messages ?? [];
      const results = messages.filter((m) => m.role === 'tool');
      const message =
        results.length === 0 && (json.tools ?? []).length > 0
          ? {
              role: 'assistant',
              content: null,
              tool_calls: toolCalls.map((c, i) => ({
                id: `call_${i + 1}`,
                type: 'function',
                function: { name: c.name, arguments: JSON.stringify(c.args) },
              })),
            }
          : {
              role: 'assistant',
              content: `done: ${results.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join(' | ')}`,
            };
      const out = {
        id: `chatcmpl-${requests.length}`,
        object: 'chat.completion',
        created: 1767614400,
        model: json.model ?? 'stub',
        choices: [{ index: 0, message, finish_reason: message.tool_calls ? 'tool_calls' : 'stop' }],
        usage: { prompt_tokens: 50, completion_tokens: 10, total_tokens: 60 },
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise((r) => server.close(r)),
  };
}
