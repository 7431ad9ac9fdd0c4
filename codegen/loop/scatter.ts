// Lowering and scheduling of a scatter-add (ir/ops.ts): zero the output, then add each source slice where its index says.
//
// The kernel is `out = 0; for o { for j { r = clamp(idx[j]); for i { out[o, r, i] += src[o, j, i] } } }`: every
// output element sums its source rows in increasing j, the interpreter's order, on every target. The j loop is never
// parallel or vector lanes (two rows may add into one element), so the kernel is scheduled here and not by the
// recipes (whose independence analysis trusts a non-affine store index to be one element per iteration): on CPUs the
// i loops become vector lanes; on a GPU each thread owns one (o, i) column and runs the j loop itself.
import { type Node } from '../../ir/graph.js';
import { attrsOf } from '../../ir/ops.js';
import { sizeOf, stridesOf } from '../../ir/types.js';
import type { KernelPlan } from '../../passes/fuse.js';
import { E, type Expr, type Kernel, type Program, S, type Stmt, scalarOf } from './ir.js';
import type { TargetCaps } from './schedule.js';
import { Schedule, type Trace } from './schedules/primitive.js';
import { vectorizeLanes } from './schedules/vectorize.js';

/** The buffer holding a node's value, or undefined for a leaf without one (a splat constant, an iota). */
export type BufferOf = (n: Node) => string | undefined;

/** Element `lin` (row-major) of operand n: a load, a splat constant's value, or an iota's index. */
function valueAt(n: Node, lin: Expr, bufOf: BufferOf): Expr {
  const t = scalarOf(n.type.dtype), b = bufOf(n);
  if (b !== undefined) return E.load(b, lin, t);
  if (n.op === 'iota') {
    const a = attrsOf(n, 'iota').axis;
    return E.mod(E.idiv(lin, stridesOf(n.type.shape)[a]!), n.type.shape[a]!);
  }
  return E.c(t, attrsOf(n, 'const').value[0]!);
}

/** The pieces of a scatter-add's loops: outer slabs P, index positions M, output rows D, slice length Q. */
function extents(n: Node): { P: number; M: number; D: number; Q: number } {
  const { axis, size } = attrsOf(n, 'scatter_add');
  const ss = n.src[0]!.type.shape, ir = n.src[1]!.type.shape.length;
  return { P: sizeOf(ss.slice(0, axis)), M: sizeOf(n.src[1]!.type.shape), D: size, Q: sizeOf(ss.slice(axis + ir)) };
}

/** `for v < extent { body(v) }`, or body(0) alone for one iteration, or nothing for none. */
function loop(v: string, extent: number, body: (i: Expr) => Stmt[]): Stmt[] {
  return extent === 0 ? [] : extent === 1 ? body(E.i32(0)) : [S.for(v, extent, body(E.v(v)))];
}

/** The statements adding source row j of slab o into the output (at its clamped index), element i of the row. */
function addRow(n: Node, out: string, bufOf: BufferOf, o: Expr, j: Expr, rowLoop: (body: (i: Expr) => Stmt[]) => Stmt[]): Stmt[] {
  const { M, D, Q } = extents(n), t = scalarOf(n.type.dtype);
  const r = E.binary('max', E.binary('min', valueAt(n.src[1]!, j, bufOf), E.i32(D - 1)), E.i32(0));
  return [S.decl('r', 'i32', r), ...rowLoop((i) => {
    const at = E.add(E.mul(E.add(E.mul(o, E.i32(D)), E.v('r')), E.i32(Q)), i);
    const v = E.binary('add', E.load(out, at, t), valueAt(n.src[0]!, E.add(E.mul(E.add(E.mul(o, E.i32(M)), j), E.i32(Q)), i), bufOf));
    return [S.store(out, at, v)];
  })];
}

/** The kernel of fusion kernel k, whose one nest's root is a scatter-add written to buffer `out`. */
export function lowerScatter(k: KernelPlan, out: string, bufOf: BufferOf): Kernel {
  const n = k.nests[0]!.roots[0]!, { P, M, Q } = extents(n), t = scalarOf(n.type.dtype);
  const body = [
    ...loop('z', sizeOf(n.type.shape), (z) => [S.store(out, z, E.c(t, 0))]),
    ...(Q === 0 ? [] : loop('o', P, (o) => loop('j', M, (j) => addRow(n, out, bufOf, o, j, (row) => loop('i', Q, row))))),
  ];
  return { name: k.name, ops: k.ops, body, [NODE]: { node: n, out, bufOf } } as ScatterKernel;
}

/** What the kernel was lowered from, under a symbol key (passes that copy a kernel with a spread keep it). */
const NODE = Symbol('scatterNode');
type ScatterKernel = Kernel & { readonly [NODE]?: { node: Node; out: string; bufOf: BufferOf } };

/** The largest divisor of n up to max (threads per block that tile n exactly). */
function divisorUpTo(n: number, max: number): number {
  for (let d = Math.min(n, max); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** `for b (block) { for th (thread) { body(b * T + th) } }` over n elements, T threads a block. */
function grid(name: string, n: number, body: (e: Expr) => Stmt[]): Stmt[] {
  if (n === 0) return [];
  const T = divisorUpTo(n, 256), b = `${name}_b`, th = `${name}_t`;
  return [S.for(b, n / T, [S.for(th, T, body(E.add(E.mul(E.v(b), E.i32(T)), E.v(th))), 'thread')], 'block')];
}

/**
 * The schedule of a scatter-add's kernel: on a GPU one launch zeroing the output and one where each thread owns an
 * (o, i) column and adds its rows in order; on CPUs the lowered loops with the zeroing and the row loops as vector
 * lanes where the target has them.
 */
export function scheduleScatter(p: Program, k: number, caps: TargetCaps, trace?: Trace): Program {
  const kernel = p.kernels[k]! as ScatterKernel, lowered = kernel[NODE];
  if (!lowered) throw new Error(`schedule: kernel ${kernel.name} was not lowered from a scatter_add`);
  const { node: n, out, bufOf } = lowered, { P, M, Q } = extents(n), t = scalarOf(n.type.dtype);
  if (caps.gpu) {
    const body = [
      ...grid('z', sizeOf(n.type.shape), (z) => [S.store(out, z, E.c(t, 0))]),
      ...(M === 0 ? [] : grid('c', P * Q, (c) => [S.decl('co', 'i32', E.idiv(c, Q)), S.decl('ci', 'i32', E.mod(c, Q)),
        ...loop('j', M, (j) => addRow(n, out, bufOf, E.v('co'), j, (row) => row(E.v('ci'))))])),
    ];
    return { ...p, kernels: p.kernels.map((x, i) => (i === k ? { ...x, body } : x)) };
  }
  const s = new Schedule(p, k, trace, 'scatter');
  const lanes: string[] = [];
  const visit = (ss: readonly Stmt[]): void => ss.forEach((x) => {
    if (x.k !== 'for') return;
    if ((x.v === 'z' || x.v === 'i') && caps.vectorWidth > 1 && x.extent >= Math.min(caps.vectorWidth, 4)) lanes.push(x.v);
    visit(x.body);
  });
  visit(s.body);
  if (lanes.length) vectorizeLanes(s, lanes, caps);
  return s.program;
}
