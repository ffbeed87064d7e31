// LangChain.js: tool(...) over a governed function.
import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import { governExecute, init, PolicyDeniedError } from 'agent-assembly';

init({ policy: 'examples/policies/permissive', agentId: 'coder' });

const shell = tool(governExecute('shell', async ({ command }: { command: string }) => `ran ${command}`), {
  name: 'shell',
  description: 'Run a shell command',
  schema: z.object({ command: z.string() }),
});

console.log(await shell.invoke({ command: 'ls' }));
try {
  await shell.invoke({ command: 'rm -rf /' });
} catch (e) {
  if (!(e instanceof PolicyDeniedError)) throw e;
  console.log(`denied: ${e.message}`);
}
