// The Vercel AI SDK (`ai`) with its OpenAI provider (@ai-sdk/openai, chat completions), Node's
// fetch through the proxy. Prints one JSON line.   node vercel_ai.mjs BASE_URL PROXY_URL PROXY_CA
import { readFileSync } from "node:fs";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { ProxyAgent, fetch } from "undici";

const [baseURL, proxy, ca] = process.argv.slice(2);
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(ca) } });
const openai = createOpenAI({
  baseURL,
  apiKey: "sk-test-not-real",
  fetch: (input, init) => fetch(input, { ...init, dispatcher }),
});
const model = openai.chat("gpt-5-mini");
const { text, usage } = await generateText({ model, prompt: "hi", maxRetries: 0 });
const stream = streamText({ model, prompt: "hi", maxRetries: 0 });
let streamed = "";
for await (const part of stream.textStream) streamed += part;
console.log(JSON.stringify({ text, streamed, usage, streamedUsage: await stream.usage }));
