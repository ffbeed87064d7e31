// modelCall(): a model call decided before it is sent; the tokens of its response, whole or
// streamed, charged to budgets (cost priced from the model price table).
import { init, modelCall, type ModelCall } from 'agent-assembly';

init({ policy: 'examples/policies/permissive', agentId: 'coder' });

interface ChatCompletion {
  id: string;
  usage: { prompt_tokens: number; completion_tokens: number };
}

const completion: ChatCompletion = await modelCall({ provider: 'openai', model: 'gpt-4o-mini' }, async (call: ModelCall) => {
  const response: ChatCompletion = { id: 'c1', usage: { prompt_tokens: 12, completion_tokens: 3 } }; // client.chat.completions.create(...)
  call.record(response);
  return response;
});
console.log(completion.id);
