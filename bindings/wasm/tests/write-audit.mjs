// Writes an audit file produced in WebAssembly (decisions, a governed call, a denial, several
// drains), for `aasm audit verify FILE`: one format everywhere. Prints the public key.
import { writeFileSync } from 'node:fs';
import { Engine, PolicyDeniedError } from '../pkg/index.mjs';

const engine = Engine.fromPolicies(
  '@id("base") permit (principal, action, resource);\n@id("no-rm") forbid (principal, action == Action::"tool_call", resource == Tool::"rm");',
  { agent: 'wasm-agent', checkpointEvery: 3 });
let jsonl = '';
for (let i = 0; i < 7; i++) {
  engine.decide('wasm-agent', { kind: 'tool_call', tool: 'read', args: { i, token: 'secret' } });
  if (i === 3) jsonl += engine.drain().jsonl;
}
engine.govern(() => 'ok', { tool: 'write', args: { path: '/tmp/x' } });
try { engine.govern(() => 'never', { tool: 'rm', args: {} }); } catch (e) { if (!(e instanceof PolicyDeniedError)) throw e; }
jsonl += engine.drain().jsonl;
writeFileSync(process.argv[2], jsonl);
console.log(engine.publicKey);
