// The wasm target: compiles entry graphs into one module and writes every artifact of DESIGN.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type IoSpec, type TargetEntry, entryLayout, irText, manifestOf } from '../artifacts.js';
import { type NamedTensor, writeSafetensors } from '../../runtime/safetensors.js';
import type { TargetCaps } from '../loop/schedule.js';
import { SIMD128 } from '../loop/vectorize.js';
import { runPipeline } from '../../driver/pipeline.js';
import { loaderSource, typesSource, workerSource } from './artifacts.js';
import { renderWasmModule } from './render.js';

/**
 * wasm SIMD128: four f32 lanes, no fused multiply-add; micro-kernels within 14 of the 16 xmm registers (V8 keeps
 * one as scratch on x86-64; measured: 4 x 8 tiles run faster than 4 x 16 or 8 x 8). Parallel loops are marked
 * (threads > 1) and become chunk functions; the loader decides at load time how many threads run them.
 */
export const WASM_CAPS: TargetCaps = { vectorWidth: 4, vectorRegisters: 14, fma: false, threads: 2, parallelGrain: 1 << 15, vector: SIMD128, legal: { ieeeMinMax: true } };

export interface TargetOptions {
  readonly outDir: string;
  readonly entries: readonly TargetEntry[];
  /** Initial values of every param (weights, then optimizer state), by Keras name. */
  readonly weights: readonly NamedTensor[];
  readonly inputs: readonly IoSpec[];
  readonly outputs: readonly IoSpec[];
  /** Store the weights inside model.wasm (the loader then needs no weights file). */
  readonly embedWeights?: boolean;
}

export function compileWasm(o: TargetOptions): string[] {
  const compiled = o.entries.map((e) => ({ e, c: runPipeline(e.graph, { caps: WASM_CAPS }) }));
  const module = renderWasmModule(compiled.map(({ e, c }) => ({ name: e.name, program: c.program, memory: c.memory })), {
    embed: o.embedWeights ? new Map(o.weights.map((w) => [w.name, w.data])) : undefined, threads: true,
  });
  // the same code with relaxed_madd in its micro-kernels (same layout: rendering decides no memory)
  const relaxed = renderWasmModule(compiled.map(({ e, c }) => ({ name: e.name, program: c.program, memory: c.memory })), {
    embed: o.embedWeights ? new Map(o.weights.map((w) => [w.name, w.data])) : undefined, threads: true, relaxed: true,
  });
  const layouts = Object.fromEntries(compiled.map(({ e, c }) => [e.name, entryLayout(c.program, module.offsets[e.name]!)]));
  const manifest = manifestOf('wasm', compiled, o.weights, {
    arenaBytes: Math.max(...compiled.map(({ c }) => c.memory.arenaBytes)), memoryBytes: module.memoryBytes,
  }, o, { threads: module.threads });
  mkdirSync(o.outDir, { recursive: true });
  const files: [string, string | Uint8Array][] = [
    ['model.wasm', module.binary],
    ['model-threads.wasm', module.threaded!],
    ['model-relaxed.wasm', relaxed.binary],
    ['model-threads-relaxed.wasm', relaxed.threaded!],
    ['model.worker.mjs', workerSource()],
    ['model.mjs', loaderSource(layouts, manifest, o.embedWeights ?? false)],
    ['model.d.mts', typesSource(o.entries.some((e) => e.name === 'trainStep'))],
    ['manifest.json', `${JSON.stringify(manifest, null, 2)}\n`],
    ['weights.safetensors', writeSafetensors(o.weights, { format: 'kiln' })],
    ['model.ir', irText(compiled)],
  ];
  return files.map(([name, data]) => {
    const p = path.join(o.outDir, name);
    writeFileSync(p, data);
    return p;
  });
}
