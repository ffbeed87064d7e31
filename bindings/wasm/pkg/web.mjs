// Browser, web worker and bundler entry point: the wasm-bindgen `web` build. Call
// `await init()` (optionally with the .wasm URL, bytes or a Response) before using `Engine`.
import initWasm, * as native from './web/aa_wasm.js';
import { bind } from './api.mjs';

export { AgentAssemblyError, PolicyError, InvalidInputError, AuditError, PolicyDeniedError } from './api.mjs';
export const { Engine, verifyAudit } = bind(native);

/** Instantiates the WebAssembly module (once). */
export async function init(input) {
  await initWasm(input === undefined ? undefined : { module_or_path: input });
}
