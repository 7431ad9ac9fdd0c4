// memplan: liveness-based placement of temporaries and outputs in one aligned arena.
import { DTYPES, type DType, sizeOf } from '../../ir/types.js';
import type { Buffer, Program, Stmt } from './ir.js';
import { forEachExpr, stmtExprs, walkStmts } from './visit.js';

export const ALIGN = 64;

export interface MemoryPlan {
  /** Byte offset in the arena of every temp and output buffer. */
  readonly offsets: ReadonlyMap<string, number>;
  readonly arenaBytes: number;
  /** Bytes the same buffers would take without reuse. */
  readonly unsharedBytes: number;
}

export function bytesOf(b: Buffer): number {
  return b.size * DTYPES[b.dtype].bytes;
}

/** Buffers each statement list loads and stores. */
export function accesses(stmts: readonly Stmt[], loads = new Set<string>(), stores = new Set<string>()): { loads: Set<string>; stores: Set<string> } {
  walkStmts(stmts, (s) => {
    if (s.k === 'store') stores.add(s.buf);
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load') loads.add(x.buf); });
  });
  return { loads, stores };
}

/**
 * Places temps and outputs: a buffer is live from the first kernel that stores it to the last that loads it
 * (outputs to the end); buffers whose lifetimes do not overlap share bytes. Greedy by size, first fit.
 */
export function planMemory(p: Program): MemoryPlan {
  const placed = p.buffers.filter((b) => b.kind === 'temp' || b.kind === 'output');
  const first = new Map<string, number>(), last = new Map<string, number>();
  p.kernels.forEach((k, i) => {
    const { loads, stores } = accesses(k.body);
    for (const b of stores) if (!first.has(b)) first.set(b, i);
    for (const b of [...loads, ...stores]) last.set(b, i);
  });
  const end = p.kernels.length;
  // outputs and new param values are read by the caller after the last kernel
  const keep = new Set(p.updates.map((u) => u.buffer));
  const live = (b: Buffer): [number, number] => [first.get(b.name) ?? 0, b.kind === 'output' || keep.has(b.name) ? end : last.get(b.name) ?? 0];
  const order = [...placed].sort((a, b) => bytesOf(b) - bytesOf(a) || a.name.localeCompare(b.name));
  const spots: { name: string; off: number; bytes: number; live: [number, number] }[] = [];
  const offsets = new Map<string, number>();
  let arena = 0;
  for (const b of order) {
    const bytes = Math.max(ALIGN, Math.ceil(bytesOf(b) / ALIGN) * ALIGN);
    const lv = live(b);
    const clashes = spots.filter((s) => s.live[0] <= lv[1] && lv[0] <= s.live[1]).sort((x, y) => x.off - y.off);
    let off = 0;
    for (const c of clashes) {
      if (off + bytes <= c.off) break;
      off = Math.max(off, c.off + c.bytes);
    }
    spots.push({ name: b.name, off, bytes, live: lv });
    offsets.set(b.name, off);
    arena = Math.max(arena, off + bytes);
  }
  return { offsets, arenaBytes: arena, unsharedBytes: placed.reduce((n, b) => n + bytesOf(b), 0) };
}

/** Bytes an op-by-op executor would allocate: every non-leaf value of the graph (for comparison). */
export function intermediateBytes(values: readonly { dtype: DType; shape: readonly number[] }[]): number {
  return values.reduce((n, v) => n + sizeOf(v.shape) * DTYPES[v.dtype].bytes, 0);
}
