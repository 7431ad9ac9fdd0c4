// keras.config: process-wide settings (the execution backend of predict / fit / evaluate).
import { show } from './errors.js';
export type Backend = 'wasm' | 'interpreter';

/** Every backend, for errors and option checks. */
export const BACKENDS: readonly Backend[] = ['wasm', 'interpreter'];

let current: Backend = 'wasm';

/** Throws unless b names a backend; `what` says where it was given. */
export function checkBackend(b: unknown, what: string): asserts b is Backend {
  if (!BACKENDS.includes(b as Backend)) throw new Error(`${what}: unknown backend ${show(b)}; backends: ${BACKENDS.map((x) => `'${x}'`).join(', ')}`);
}

/** Selects where predict/fit/evaluate run: compiled WebAssembly (default) or the reference interpreter. */
export function setBackend(b: Backend): void {
  checkBackend(b, 'keras.config.setBackend');
  current = b;
}

export function backend(): Backend {
  return current;
}
