// Vercel AI SDK: a tool whose execute is governed; a deny reaches the model as a tool error.
import { generateText, stepCountIs, tool } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';
import { governTool, init } from 'agent-assembly';

init({ policy: 'examples/policies/permissive', agentId: 'coder' });

const shell = governTool(
  'shell',
  tool({
    description: 'Run a shell command',
    inputSchema: z.object({ command: z.string() }),
    execute: async ({ command }: { command: string }): Promise<string> => `ran ${command}`,
  }),
);

const model = createOpenAICompatible({
  name: 'local',
  baseURL: process.env.OPENAI_BASE_URL ?? 'http://127.0.0.1:8080/v1',
  apiKey: process.env.OPENAI_API_KEY ?? 'local',
})('local-model');

const result = await generateText({ model, tools: { shell }, prompt: 'clean up the build directory', stopWhen: stepCountIs(3) });
console.log(result.text);
