// The wasm target: compiles entry graphs into one module and writes every artifact of DESIGN.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { IoSpec, TargetEntry } from '../entry.js';
import { printGraph } from '../../ir/printer.js';
import { type NamedTensor, writeSafetensors } from '../../runtime/safetensors.js';
import { printProgram } from '../loop/printer.js';
import { DEFAULT_CAPS, type TargetCaps } from '../loop/schedule.js';
import { runPipeline } from '../../passes/pipeline.js';
import { entryLayout, loaderSource, typesSource } from './artifacts.js';
import { renderWasmModule } from './render.js';

/** wasm SIMD128: four f32 lanes, one thread. */
export const WASM_CAPS: TargetCaps = { ...DEFAULT_CAPS, vectorWidth: 4, threads: 1 };

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
  const manifest = {
    target: 'wasm',
    inputs: o.inputs,
    outputs: o.outputs,
    params: o.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype })),
    arenaBytes: Math.max(...compiled.map(({ c }) => c.memory.arenaBytes)),
    memoryBytes: module.memoryBytes,
    entries: Object.fromEntries(compiled.map(({ e, c }) => [e.name, {
      batchSize: e.batchSize,
      arenaBytes: c.memory.arenaBytes,
      inputs: c.program.inputs.map((i) => i.name),
      outputs: c.program.outputs.map((x) => x.name),
      kernels: c.program.kernels.map((k) => ({ name: k.name, ops: k.ops })),
    }])),
  };
  mkdirSync(o.outDir, { recursive: true });
  const files: [string, string | Uint8Array][] = [
    ['model.wasm', module.binary],
    ['model.mjs', loaderSource(layouts, manifest, o.embedWeights ?? false)],
    ['model.d.ts', typesSource(o.entries.some((e) => e.name === 'trainStep'))],
    ['manifest.json', `${JSON.stringify(manifest, null, 2)}\n`],
    ['weights.safetensors', writeSafetensors(o.weights, { format: 'kiln' })],
    ['model.ir', compiled.map(({ e, c }) => `// entry ${e.name}\n${printGraph(c.graph)}\n${printProgram(c.program)}`).join('\n')],
  ];
  return files.map(([name, data]) => {
    const p = path.join(o.outDir, name);
    writeFileSync(p, data);
    return p;
  });
}
