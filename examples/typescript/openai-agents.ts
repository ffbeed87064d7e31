// OpenAI Agents JS: governed function tools; a denied call is explained to the model.
import { Agent, run, tool } from '@openai/agents';
import { z } from 'zod';
import { agentsErrorFunction, governExecute, init } from 'agent-assembly';

init(); // AA_GATEWAY_URL / AA_AGENT_ID / AA_TOKEN, or AA_POLICY

const getWeather = tool({
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: z.object({ city: z.string() }),
  execute: governExecute('get_weather', async ({ city }: { city: string }) => `sunny in ${city}`),
  errorFunction: agentsErrorFunction,
});

const shell = tool({
  name: 'shell',
  description: 'Run a shell command',
  parameters: z.object({ command: z.string() }),
  execute: governExecute('shell', async ({ command }: { command: string }) => `ran ${command}`),
  errorFunction: agentsErrorFunction,
});

const agent = new Agent({ name: 'ops', instructions: 'Help the user.', tools: [getWeather, shell] });
const result = await run(agent, 'What is the weather in Paris? Then delete the build directory.');
console.log(result.finalOutput);
