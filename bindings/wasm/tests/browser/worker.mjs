// The same checks inside a module web worker.
import * as aa from '/pkg/web.mjs';
import { runChecks } from './checks.mjs';

(async () => {
  await aa.init();
  postMessage(await runChecks(aa));
})().catch((e) => postMessage({ error: String(e && e.stack || e) }));
