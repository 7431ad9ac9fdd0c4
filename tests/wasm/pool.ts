// A hand-written threads artifact for the wasm thread pool's tests: model-threads.wasm (its chunk0 and a trainStep
// that runs it through kiln.parallel) beside the shipped loader and worker, so a test loads it as it loads a model.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import binaryen from 'binaryen';
import { expect } from 'vitest';
import { loaderSource, workerSource } from '../../codegen/wasm/artifacts.js';

/** An output of trainStep: an int32 array at an offset of the memory. */
export interface PoolOutput { readonly name: string; readonly dtype: 'int32'; readonly offset: number; readonly size: number }

/**
 * Writes the artifact into dir (created): `build` adds the functions chunk0 and trainStep to a module with the shared
 * memory (one page) and the kiln.parallel import; they are exported, the module validated.
 */
export function writePoolArtifact(dir: string, build: (m: binaryen.Module) => void, outputs: readonly PoolOutput[] = []): void {
  const m = new binaryen.Module();
  m.setFeatures(binaryen.Features.MVP | binaryen.Features.Atomics | binaryen.Features.BulkMemory);
  m.addFunctionImport('kiln.parallel', 'kiln', 'parallel', binaryen.createType([binaryen.i32, binaryen.i32]), binaryen.i32);
  m.setMemory(1, 1, null, [], true);
  m.addMemoryImport('0', 'env', 'memory');
  build(m);
  m.addFunctionExport('chunk0', 'chunk0');
  m.addFunctionExport('trainStep', 'trainStep');
  expect(m.validate()).toBeTruthy();
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'model-threads.wasm'), m.emitBinary());
  m.dispose();
  writeFileSync(path.join(dir, 'model.mjs'), loaderSource({ trainStep: { inputs: [], outputs, copies: [], params: [] } } as never, { params: [], memoryBytes: 65536, entries: { trainStep: { batchSize: 1 } }, maxBatch: null }, true));
  writeFileSync(path.join(dir, 'model.worker.mjs'), workerSource());
}
