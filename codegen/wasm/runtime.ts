// Host side of a compiled wasm program: instantiate once, copy inputs/params in, run, read outputs/updates out.
import v8 from 'node:v8';
import { cPow, intPow } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import type { Program } from '../loop/ir.js';
import type { WasmArtifact } from './render.js';

let optimizingTier = false;

/**
 * In-process modules run thousands of times: compile them with the optimizing tier at once instead of
 * starting in V8's baseline compiler (Liftoff), several times slower until tier-up. Set on the first runner
 * only, so a process that just compiles (the CLI) keeps fast start-up.
 */
function useOptimizingTier(): void {
  if (!optimizingTier) v8.setFlagsFromString('--no-liftoff');
  optimizingTier = true;
}

const MATH_FNS = Object.fromEntries(Object.getOwnPropertyNames(Math).flatMap((k) => {
  const f: unknown = Math[k as keyof Math];
  return typeof f === 'function' ? [[k, f]] : [];
}));

/**
 * The functions a kiln wasm module imports: module "math", JS Math's by name (a module imports those its ops call),
 * C pow, integer pow; module "kiln", parallel(chunk, n), which runs a parallel loop on threads (returns 0 here: one
 * thread, the module runs the loop itself).
 */
export const WASM_IMPORTS = {
  math: { ...MATH_FNS, pow: cPow, ipow: intPow },
  kiln: { parallel: (): number => 0 },
};

export type Bindings = Readonly<Record<string, TypedArray>> | ReadonlyMap<string, TypedArray>;

function get(b: Bindings, name: string): TypedArray | undefined {
  return b instanceof Map ? b.get(name) : (b as Record<string, TypedArray>)[name];
}

/** A compiled program ready to run in this process. */
export class WasmRunner {
  private readonly instance: WebAssembly.Instance;
  private readonly memory: WebAssembly.Memory;
  private readonly runFn: () => void;
  private readonly sizes: Map<string, { offset: number; size: number; dtype: string }>;

  /**
   * options.parallel: runs each parallel loop instead of the module (chunk(begin, end, thread) runs iterations
   * [begin, end) of its n, with the local arrays of thread `thread`, default 0: memory grows to hold the scratch of
   * the threads named), as a thread pool would; by default the module runs them itself.
   */
  constructor(readonly program: Program, readonly artifact: WasmArtifact, options: { parallel?: (chunk: (begin: number, end: number, thread?: number) => void, n: number) => void } = {}) {
    useOptimizingTier();
    const mod = new WebAssembly.Module(artifact.binary as BufferSource);
    const hook = options.parallel;
    const parallel = hook ? (id: number, n: number): number => {
      const f = this.instance.exports[`chunk${id}`] as (begin: number, end: number, thread: number) => void;
      hook((begin, end, thread = 0) => {
        const t = artifact.threads, need = t && thread > 0 ? Math.ceil((t.scratch + thread * t.scratchStride) / 65536) : 0;
        if (need > this.memory.buffer.byteLength / 65536) this.memory.grow(need - this.memory.buffer.byteLength / 65536);
        f(begin, end, thread);
      }, n);
      return 1;
    } : WASM_IMPORTS.kiln.parallel;
    this.instance = new WebAssembly.Instance(mod, { ...WASM_IMPORTS, kiln: { parallel } });
    this.memory = this.instance.exports['memory'] as WebAssembly.Memory;
    this.runFn = this.instance.exports['run'] as () => void;
    this.sizes = new Map(program.buffers.map((b) => [b.name, { offset: artifact.layout.offsets[b.name]!, size: b.size, dtype: b.dtype }]));
  }

  /** A typed view of one buffer in linear memory (valid until the next run). */
  view(buffer: string): TypedArray {
    const b = this.sizes.get(buffer)!;
    const buf = this.memory.buffer;
    if (b.dtype === 'float32') return new Float32Array(buf, b.offset, b.size);
    if (b.dtype === 'int32') return new Int32Array(buf, b.offset, b.size);
    if (b.dtype === 'int8') return new Int8Array(buf, b.offset, b.size);
    return new Uint8Array(buf, b.offset, b.size);
  }

  /**
   * Arrays whose values memory already holds, by param name: the updated values this runner returned last
   * time (in-place updates leave them in memory), so passing them back skips the copy in.
   */
  private readonly resident = new Map<string, TypedArray>();

  /** Writes named inputs and params into memory (only what is given, and no param memory already holds). */
  write(kind: 'inputs' | 'params', values: Bindings): void {
    for (const { name, buffer } of this.program[kind]) {
      const v = get(values, name);
      if (!v || (kind === 'params' && this.resident.get(name) === v)) continue;
      const view = this.view(buffer);
      if (v.length !== view.length) throw new Error(`wasm: ${kind.slice(0, -1)} '${name}' needs ${view.length} elements, got ${v.length}`);
      view.set(v);
      if (kind === 'params') this.resident.delete(name);
    }
  }

  /** Runs once with the given inputs and params; returns copies of outputs and updated params. */
  run(inputs: Bindings, params: Bindings): { outputs: Map<string, TypedArray>; updates: Map<string, TypedArray> } {
    for (const { name } of this.program.inputs) if (!get(inputs, name)) throw new Error(`wasm: no value for input '${name}'`);
    for (const { name } of this.program.params) if (!get(params, name)) throw new Error(`wasm: no value for param '${name}'`);
    this.write('inputs', inputs);
    this.write('params', params);
    this.runFn();
    const updates = new Map<string, TypedArray>();
    for (const u of this.program.updates) {
      const value = this.view(u.buffer).slice();
      const param = this.program.params.find((p) => p.name === u.name)!;
      // a new value computed outside its param's buffer is copied there, so memory holds it for the next call
      if (param.buffer !== u.buffer) this.view(param.buffer).set(value);
      this.resident.set(u.name, value);
      updates.set(u.name, value);
    }
    return { outputs: new Map(this.program.outputs.map((o) => [o.name, this.view(o.buffer).slice()])), updates };
  }

  /** Calls the compiled function with whatever is in memory (for benchmarks and resident state). */
  runRaw(): void {
    this.runFn();
  }
}
