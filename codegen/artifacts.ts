// What every target writes the same way: its entry points, manifest.json, model.ir, and where each entry's named values live.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Graph, nodeName } from '../ir/graph.js';
import type { Separability } from '../passes/rows.js';
import { printGraph } from '../ir/printer.js';
import type { Program } from './loop/ir.js';
import { printProgram } from './loop/printer.js';

/**
 * An entry point every target compiles: the traced graph of predict (at the largest batch, and `predict_1` at one row,
 * when its rows are independent) or of the training step.
 */
export interface TargetEntry {
  /** gradStep and applyGrads: the training step split at the gradients (--distributed) */
  readonly name: 'predict' | 'predict_1' | 'trainStep' | 'gradStep' | 'applyGrads';
  readonly graph: Graph;
  readonly batchSize: number;
  /**
   * Whether the runtimes may run any number of rows through this entry in chunks of batchSize (passes/rows.ts);
   * absent: exactly batchSize rows, as a training step takes.
   */
  readonly rows?: Separability;
}

/** Why an entry takes exactly its batch size of rows, or undefined when it takes any number. */
export function fixedRows(e: TargetEntry): string | undefined {
  if (e.rows?.separable) return undefined;
  return e.rows?.reason ?? (e.name === 'trainStep' || e.name === 'gradStep' || e.name === 'applyGrads' ? 'a training step runs one batch' : 'compiled for one batch size');
}

/** A model input or output as manifests list it (null: the batch dimension). */
export interface IoSpec {
  readonly name: string;
  readonly shape: readonly (number | null)[];
  readonly dtype: string;
}

/** What a target compiled for one entry, as the manifest and model.ir report it. */
export interface CompiledEntry {
  readonly e: TargetEntry;
  readonly c: { readonly graph: Graph; readonly program: Program; readonly memory: { readonly arenaBytes: number } };
}

function graphIo(g: Graph): { inputs: IoSpec[]; outputs: IoSpec[] } {
  return {
    inputs: g.inputs.map((n) => ({ name: nodeName(n), shape: n.type.shape, dtype: n.type.dtype })),
    outputs: g.outputs.map((x) => ({ name: x.name, shape: x.node.type.shape, dtype: x.node.type.dtype })),
  };
}

/**
 * manifest.json of every target: the model's inputs and outputs (from the model, else the first entry's graph),
 * params in Keras order, arena and memory sizes, and per entry its traced tensors and kernels with the ops they fused.
 */
export function manifestOf(target: string, compiled: readonly CompiledEntry[], params: readonly { name: string; shape: readonly number[]; dtype: string }[],
  sizes: { arenaBytes: number; memoryBytes: number }, io?: { inputs?: readonly IoSpec[]; outputs?: readonly IoSpec[] }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const first = graphIo(compiled[0]!.e.graph);
  // the batch axis stays null when predict takes any number of rows; else it is the one batch size predict takes
  const predict = compiled.find(({ e }) => e.name === 'predict')?.e;
  const fixed = predict && fixedRows(predict);
  const batched = (xs: readonly IoSpec[]) => xs.map((x) => ({ ...x, shape: x.shape.map((d, i) => (i === 0 && fixed !== undefined ? predict!.batchSize : d)) }));
  return {
    target,
    ...extra,
    inputs: batched(io?.inputs ?? first.inputs),
    outputs: batched(io?.outputs ?? first.outputs),
    ...(predict ? { maxBatch: fixed === undefined ? predict.batchSize : null, ...(fixed === undefined ? {} : { fixedRows: fixed }) } : {}),
    params: params.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype })),
    ...sizes,
    entries: Object.fromEntries(compiled.map(({ e, c }) => [e.name, {
      batchSize: e.batchSize,
      anyRows: fixedRows(e) === undefined,
      arenaBytes: c.memory.arenaBytes,
      ...graphIo(e.graph),
      kernels: c.program.kernels.map((k) => ({ name: k.name, ops: k.ops })),
    }])),
  };
}

/** model.ir: each entry's final graph and its loop IR. */
export function irText(compiled: readonly CompiledEntry[]): string {
  return compiled.map(({ e, c }) => `// entry ${e.name}\n${printGraph(c.graph)}\n${printProgram(c.program)}`).join('\n');
}

/** Where one entry's named values live in memory, as the wasm loader and the native runtime's tables need it. */
export interface EntryLayout {
  readonly inputs: { name: string; offset: number; size: number; dtype: string }[];
  readonly outputs: { name: string; offset: number; size: number; dtype: string }[];
  readonly params: { name: string; offset: number; size: number; dtype: string }[];
  /** new values not written in place: copied into their param after the call */
  readonly copies: { name: string; from: number; to: number; bytes: number }[];
}

export function entryLayout(program: Program, offsets: Record<string, number>): EntryLayout {
  const buf = (name: string) => program.buffers.find((b) => b.name === name)!;
  const place = (xs: readonly { name: string; buffer: string }[]) => xs.map((x) => ({
    name: x.name, offset: offsets[x.buffer]!, size: buf(x.buffer).size, dtype: buf(x.buffer).dtype,
  }));
  const params = place(program.params);
  const copies = program.updates.flatMap((u) => {
    const p = params.find((x) => x.name === u.name)!;
    const from = offsets[u.buffer]!;
    return from === p.offset ? [] : [{ name: u.name, from, to: p.offset, bytes: p.size * (p.dtype === 'bool' ? 1 : 4) }];
  });
  return { inputs: place(program.inputs), outputs: place(program.outputs), params, copies };
}

/** A folder of the runtime sources artifacts copy (runtime/c, runtime/cuda, runtime/wasm), from the sources or from dist/. */
export function runtimeDir(sub: 'c' | 'cuda' | 'wasm'): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const marker = { c: 'kiln_runtime.c', cuda: 'kiln_cuda.h', wasm: 'model.mjs' }[sub];
  for (const up of ['../runtime', '../../runtime']) {
    const d = path.resolve(here, up, sub);
    if (existsSync(path.join(d, marker))) return d;
  }
  throw new Error(`cannot find the runtime sources (runtime/${sub})`);
}
