// keras.config: process-wide settings (the execution backend of predict / fit / evaluate).
export type Backend = 'wasm' | 'interpreter';

let current: Backend = 'wasm';

/** Selects where predict/fit/evaluate run: compiled WebAssembly (default) or the reference interpreter. */
export function setBackend(b: Backend): void {
  if (b !== 'wasm' && b !== 'interpreter') throw new Error(`unknown backend '${String(b)}'; use 'wasm' or 'interpreter'`);
  current = b;
}

export function backend(): Backend {
  return current;
}
