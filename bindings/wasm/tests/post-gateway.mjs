// Against a real `aasm gateway` (URL and token as arguments): fetches the policy document
// (GET /v1/policy) into Engine.fromBundle, decides and governs in WebAssembly, and posts the
// drained events to POST /v1/events. Prints the number of events the gateway accepted.
import { Engine, PolicyDeniedError } from '../pkg/index.mjs';

const [url, token] = process.argv.slice(2);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const res = await fetch(`${url}/v1/policy`, { headers });
if (!res.ok) throw new Error(`GET /v1/policy: ${res.status} ${await res.text()}`);
const engine = Engine.fromBundle(await res.json(), { agent: 'wasm-agent' });
for (let i = 0; i < 5; i++) engine.decide('wasm-agent', { kind: 'tool_call', tool: 'search', args: { q: `n${i}` } });
engine.govern(() => 'done', { tool: 'read_file', args: { path: '/tmp/x' } });
try {
  engine.decide('wasm-agent', { kind: 'process_exec', path: '/bin/rm', argv: ['rm', '-rf', '/'] });
  engine.govern(() => { throw new Error('must not run'); }, { tool: 'shell', args: { cmd: 'rm -rf /' } });
} catch (e) {
  if (!(e instanceof PolicyDeniedError)) throw e;
}
const { events, records } = engine.drain();
const post = await fetch(`${url}/v1/events`, { method: 'POST', headers, body: JSON.stringify({ events }) });
const body = await post.text();
if (!post.ok) throw new Error(`POST /v1/events: ${post.status} ${body}`);
if (events.length !== records.length) throw new Error('events and records differ');
const ack = JSON.parse(body);
if (ack.accepted !== events.length) throw new Error(`accepted ${ack.accepted} of ${events.length}`);
console.log(events.length);
