// The wasm target: compiles entry graphs into one module and writes every artifact of DESIGN.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type IoSpec, type TargetEntry, irText, manifestOf } from '../entry.js';
import { type NamedTensor, writeSafetensors } from '../../runtime/safetensors.js';
import { DEFAULT_CAPS, type TargetCaps } from '../loop/schedule.js';
import { SIMD128 } from '../loop/vectorize.js';
import { runPipeline } from '../../passes/pipeline.js';
import { entryLayout, loaderSource, typesSource } from './artifacts.js';
import { renderWasmModule } from './render.js';

/** wasm SIMD128: four f32 lanes, one thread. */
export const WASM_CAPS: TargetCaps = { ...DEFAULT_CAPS, vectorWidth: 4, threads: 1, vector: SIMD128 };

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
    embed: o.embedWeights ? new Map(o.weights.map((w) => [w.name, w.data])) : undefined,
  });
  const layouts = Object.fromEntries(compiled.map(({ e, c }) => [e.name, entryLayout(c.program, module.offsets[e.name]!)]));
  const manifest = manifestOf('wasm', compiled, o.weights, {
    arenaBytes: Math.max(...compiled.map(({ c }) => c.memory.arenaBytes)), memoryBytes: module.memoryBytes,
  }, o);
  mkdirSync(o.outDir, { recursive: true });
  const files: [string, string | Uint8Array][] = [
    ['model.wasm', module.binary],
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
