export * from './index';
/** Instantiates the WebAssembly module; call (and await) once before using `Engine`. */
export function init(input?: string | URL | Request | Response | BufferSource | WebAssembly.Module): Promise<void>;
