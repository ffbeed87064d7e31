// Node entry point: the wasm-bindgen `nodejs` build, instantiated synchronously.
import native from './node/aa_wasm.js';
import { bind } from './api.mjs';

export { AgentAssemblyError, PolicyError, InvalidInputError, AuditError, PolicyDeniedError } from './api.mjs';
export const { Engine, verifyAudit } = bind(native);
