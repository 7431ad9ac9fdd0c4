// One linear memory for all entry points of a compiled model, shared by the wasm and LLVM targets.
import { DTYPES } from '../../ir/types.js';
import type { Buffer, Program, Scalar, Stmt } from './ir.js';
import { type MemoryPlan, bytesOf } from './memplan.js';
import { walkStmts } from './visit.js';

export const ALIGN = 64;
export const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** One entry point (predict, trainStep) of a module: its program and memory plan. */
export interface Entry {
  readonly name: string;
  readonly program: Program;
  readonly memory: MemoryPlan;
}

/** Initial bytes of a region of memory (constants; embedded weights). */
export interface Segment {
  readonly offset: number;
  readonly data: Uint8Array;
}

export interface Layout {
  readonly memoryBytes: number;
  readonly arenaOffset: number;
  readonly arenaBytes: number;
  /** start of the scratch region for local arrays (every kernel reuses it) */
  readonly scratchBase: number;
  readonly scratchBytes: number;
  /** entry name -> buffer name -> byte offset */
  readonly offsets: Record<string, Record<string, number>>;
  /** constants, and with `embed` the params' initial values */
  readonly segments: Segment[];
  /** param name -> byte offset (params are shared by every entry) */
  readonly params: Map<string, number>;
}

/** Packs buffer values as little-endian bytes of the buffer's dtype (one value = splat). */
export function packBuffer(b: Buffer, values: readonly number[] | ArrayLike<number>): Uint8Array {
  const n = b.size;
  const splat = values.length === 1 && n > 1;
  if (b.dtype === 'bool') return Uint8Array.from({ length: n }, (_, i) => (values[splat ? 0 : i] ? 1 : 0));
  const arr = b.dtype === 'float32' ? new Float32Array(n) : b.dtype === 'int8' ? new Int8Array(n) : new Int32Array(n);
  if (splat) arr.fill(values[0]!);
  else arr.set(values as ArrayLike<number>);
  return new Uint8Array(arr.buffer);
}

/** Bytes of one element of a loop-IR scalar type (the dtype it stands for). */
const SCALAR_BYTES = new Map<Scalar, number>(Object.values(DTYPES).flatMap((d) => (d.scalar ? [[d.scalar, d.bytes] as const] : [])));

/** Bytes of local arrays one kernel declares (each at its own scratch offset). */
export function localBytes(stmts: readonly Stmt[]): number {
  let n = 0;
  walkStmts(stmts, (s) => { if (s.k === 'local') n += align(s.size * SCALAR_BYTES.get(s.t)!); });
  return n;
}

/**
 * Memory: the arena at 64 (every entry's temps and outputs at their planned offsets; entries never run at
 * once, so they share it), scratch for local arrays, then each entry's constants, caches (zeroed by kiln_init) and inputs, and the params,
 * shared by name across entries; all 64-byte aligned.
 */
export function layoutModule(entries: readonly Entry[], embed?: ReadonlyMap<string, ArrayLike<number>>): Layout {
  const arenaOffset = ALIGN;
  const arenaBytes = Math.max(0, ...entries.map((e) => e.memory.arenaBytes));
  const scratchBase = align(arenaOffset + arenaBytes);
  const scratchNeed = Math.max(0, ...entries.flatMap((e) => e.program.kernels.map((k) => localBytes(k.body))));
  let top = align(scratchBase + scratchNeed);
  const segments: Segment[] = [];
  const params = new Map<string, number>();
  const sizes = new Map<string, number>();
  const offsets: Record<string, Record<string, number>> = {};
  for (const e of entries) {
    const o: Record<string, number> = {};
    for (const [b, off] of e.memory.offsets) o[b] = arenaOffset + off;
    for (const b of e.program.buffers) {
      if (b.kind === 'param') {
        const name = e.program.params.find((x) => x.buffer === b.name)!.name;
        if (!params.has(name)) {
          params.set(name, top);
          sizes.set(name, bytesOf(b));
          const init = embed?.get(name);
          if (init) segments.push({ offset: top, data: packBuffer(b, init) });
          top = align(top + Math.max(1, bytesOf(b)));
        } else if (sizes.get(name) !== bytesOf(b)) {
          throw new Error(`layout: param '${name}' has different sizes in different entries`);
        }
        o[b.name] = params.get(name)!;
      } else if ((b.kind === 'const' || b.kind === 'input' || b.kind === 'cache') && o[b.name] === undefined) { // an input the plan put in the arena stays there
        o[b.name] = top;
        if (b.kind === 'const') segments.push({ offset: top, data: packBuffer(b, b.data ?? [0]) });
        top = align(top + Math.max(1, bytesOf(b)));
      }
    }
    for (const b of e.program.buffers) if (o[b.name] === undefined) throw new Error(`layout: buffer ${b.name} was not placed`);
    offsets[e.name] = o;
  }
  return { memoryBytes: top, arenaOffset, arenaBytes, scratchBase, scratchBytes: scratchNeed, offsets, segments, params };
}
