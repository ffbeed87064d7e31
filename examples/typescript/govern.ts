// govern() on plain functions, sync and async; a deny throws before the body runs.
//   AA_POLICY=examples/policies/permissive AA_AGENT_ID=coder node govern.js
import { init, govern, PolicyDeniedError, shutdown } from 'agent-assembly';

init({ policy: 'examples/policies/permissive', agentId: 'coder' }); // or AA_* env vars

const runShell = govern((cmd: string): string => `ran ${cmd}`, { tool: 'shell', args: ['cmd'] });

const search = govern(
  async ({ query, limit }: { query: string; limit: number }): Promise<string[]> => Array(limit).fill(query),
  { tool: 'web_search' },
);

async function main(): Promise<void> {
  console.log(runShell('ls'));
  console.log(await search({ query: 'cedar', limit: 2 }));
  try {
    runShell('rm -rf /');
  } catch (e) {
    if (e instanceof PolicyDeniedError) {
      console.log(`denied: ${e.reason} by ${e.policyIds.join(', ')} (decision ${e.decisionId})`);
    } else {
      throw e;
    }
  }
  shutdown();
}

void main();
