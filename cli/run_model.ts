// Model-file running: tsx, with `kiln` resolving to this package; imported on first use only.
import { register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerTsx } from 'tsx/esm/api';
import { KilnError, displayPath, unprefixed } from './common.js';
import type { Model } from '../frontend/models/model.js';
import type { HookData } from './hooks.js';

let hooksInstalled = false;

/**
 * Installs tsx and the resolve hook of hooks.ts (once per process): `kiln` and `kiln/compiler` map to the modules
 * beside this file, so the model shares this process's frontend (one Model class, one trace state); user `.ts` files
 * load as ES modules.
 * tsx is registered globally, not with tsImport: tsImport's namespace query would give the model its own copy of kiln.
 */
export function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  registerTsx();
  const aliases = {
    kiln: new URL('../frontend/index.js', import.meta.url).href,
    'kiln/compiler': new URL('../compiler.js', import.meta.url).href,
  };
  // while the direct mode records the run (cli/record.ts), the hooks report every module they resolve
  const recording = (globalThis as Record<symbol, unknown>)[Symbol.for('kiln.hookPort')] as (() => Partial<HookData> | undefined) | undefined;
  const more = recording?.();
  const data: HookData = { aliases, ...more };
  register(new URL('./hooks.js', import.meta.url), { data, ...(more?.port ? { transferList: [more.port] } : {}) });
}

/** Runs a model file (absolute path) and returns its module namespace. */
export async function importModelFile(file: string): Promise<Record<string, unknown>> {
  installHooks();
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/** Loads an ONNX file (absolute path) as a model; its problems are KilnErrors naming the file. */
export async function loadOnnxFile(file: string): Promise<Model> {
  const { loadOnnx } = await import('../io/onnx/import.js');
  try {
    return loadOnnx(file);
  } catch (err) {
    throw new KilnError(unprefixed(err instanceof Error ? err.message : String(err)).split(file).join(displayPath(file)), { cause: err });
  }
}
