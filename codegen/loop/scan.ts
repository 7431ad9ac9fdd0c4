// Lowering of a scan loop (ir/scan.ts): its body's kernels, fused and lowered as any graph, inside one serial time loop.
//
// The body is canonicalized, fused and lowered to a program of its own; its kernels' statements, names prefixed so
// they stay unique, become the body of `for t` in one kernel of the outer program. Buffers map as follows: a carry
// is a buffer of the loop (copied from its initial value before the loop, from the body's new carry at the end of
// each step), a sequence is its operand's buffer read at offset t * step, a const its operand's buffer; the body's
// temporaries and constants become the outer program's. The sequences' projections (x @ W of every step) are
// computed before the loop by the graph around it, so the loop holds only the recurrent part.
import { type Graph, type Node, topoSort } from '../../ir/graph.js';
import { GroupOp, attrsOf } from '../../ir/ops.js';
import { scanInfo } from '../../ir/scan.js';
import { type DType, sizeOf, stridesOf } from '../../ir/types.js';
import { canonicalize } from '../../passes/canonicalize.js';
import { dce } from '../../passes/dce.js';
import { type KernelPlan, fuse } from '../../passes/fuse.js';
import { type Buffer, E, type Expr, type Kernel, type Program, S, type Stmt, scalarOf } from './ir.js';
import { schedule } from './schedules/index.js';
import { simplify } from './simplify.js';
import { lower } from './lower.js';
import { canVectorize } from './vectorize.js';
import type { TargetCaps } from './schedule.js';
import { ExprMutator, exprVars, forEachExpr, stmtExprs, walkStmts } from './visit.js';

/** What the outer lowering gives the scan's lowering. */
export interface ScanContext {
  /** The buffer holding a node's value, or undefined for a leaf without one (a splat constant, an iota). */
  readonly bufOf: (n: Node) => string | undefined;
  /** Adds a buffer to the outer program (its name made unique from base) and returns its name. */
  readonly addBuffer: (base: string, dtype: DType, size: number, kind: Buffer['kind'], data?: readonly number[]) => string;
  /** A number unique to this loop in the program, for names. */
  readonly id: number;
}

/** Where a body buffer lives in the outer program: a buffer, read and written at an offset. */
interface Place {
  readonly buf: string;
  readonly offset: Expr;
}

/** Renames a body kernel's variables and local arrays (prefix) and moves its buffers to their places. */
class Relocate extends ExprMutator {
  constructor(private readonly places: ReadonlyMap<string, Place>, private readonly prefix: string) {
    super();
  }

  private at(buf: string, idx: Expr): [string, Expr] {
    const p = this.places.get(buf);
    return p ? [p.buf, E.add(idx, p.offset)] : [this.prefix + buf, idx];
  }

  protected override rewrite(e: Expr): Expr {
    if (e.k === 'var') return E.v(this.prefix + e.name, e.t);
    if (e.k === 'load') {
      const [buf, idx] = this.at(e.buf, e.idx);
      return E.load(buf, idx, e.t);
    }
    return e;
  }

  override stmt(s: Stmt): Stmt | readonly Stmt[] {
    switch (s.k) {
      case 'for': return { ...s, v: this.prefix + s.v, body: this.stmts(s.body) };
      case 'if': return { ...s, cond: this.expr(s.cond), body: this.stmts(s.body) };
      case 'decl': return { ...s, name: this.prefix + s.name, init: this.expr(s.init) };
      case 'assign': return { ...s, name: this.prefix + s.name, value: this.expr(s.value) };
      case 'local': return { ...s, name: this.prefix + s.name };
      case 'warpTree': return { ...s, local: this.prefix + s.local };
      case 'arrive': {
        const [counter, idx] = this.at(s.counter, this.expr(s.idx));
        return { ...s, counter, idx, local: this.prefix + s.local };
      }
      case 'store': {
        const [buf, idx] = this.at(s.buf, this.expr(s.idx));
        return { ...s, buf, idx, value: this.expr(s.value) };
      }
    }
  }
}

/** Copies `size` elements between places: `for v { dst[off + v] = src[off + v] }`. */
function copy(v: string, size: number, t: ReturnType<typeof scalarOf>, dst: Place, src: Place): Stmt {
  const i = E.v(v);
  return S.for(v, size, [S.store(dst.buf, E.add(i, dst.offset), E.load(src.buf, E.add(i, src.offset), t))]);
}

/**
 * The statements of a step that compute the same at every step, so they can run once before the loop (a schedule's
 * packed panel of a weight: 64K copies per step otherwise): loop nests that read no variable from outside themselves
 * (not the time) and no buffer the step writes, and write buffers no other statement of the step writes.
 */
export function invariant(step: readonly Stmt[]): Set<Stmt> {
  const writes = step.map((s) => {
    const out = new Set<string>();
    walkStmts([s], (x) => { if (x.k === 'store') out.add(x.buf); });
    return out;
  });
  const written = new Map<string, number>();
  for (const w of writes) for (const b of w) written.set(b, (written.get(b) ?? 0) + 1);
  // a step's local arrays (a small packed panel is a register array): declared in the step, so a nest that reads or
  // writes one declared outside itself stays in the loop, or it would use the array before its declaration
  const locals = new Set<string>();
  walkStmts(step, (x) => { if (x.k === 'local') locals.add(x.name); });
  const moved = new Set<Stmt>();
  step.forEach((s, i) => {
    if (s.k !== 'for') return;
    const bound = new Set<string>(), used = new Set<string>();
    let reads = true;
    walkStmts([s], (x) => {
      if (x.k === 'for') bound.add(x.v);
      else if (x.k === 'decl' || x.k === 'local') bound.add(x.name);
      else if (x.k === 'assign') used.add(x.name);
      else if (x.k === 'store' && locals.has(x.buf)) used.add(x.buf);
      for (const e of stmtExprs(x)) {
        for (const v of exprVars(e)) used.add(v);
        forEachExpr(e, (l) => {
          if (l.k === 'load' && written.has(l.buf)) reads = false;
          if (l.k === 'load' && locals.has(l.buf)) used.add(l.buf);
        });
      }
    });
    if (reads && [...used].every((v) => bound.has(v)) && [...writes[i]!].every((b) => written.get(b) === 1)) moved.add(s);
  });
  return moved;
}

/**
 * The body program of a scan loop (the graph passes, fusion and lowering, as the outer graph had). The pieces of its
 * pads (the gradient of a slice: the LSTM's four gates in the backward step) are stored: fused into the sum of the
 * pads, every element would compute every piece and select one, in a loop that does not vectorize (clamped indices).
 */
export function bodyProgram(body: Graph): Program {
  const g = dce(canonicalize(body));
  const outs = new Set(g.outputs.map((o) => o.node));
  const pieces = new Set(topoSort(g).filter((n) => n.op === 'pad').map((n) => n.src[0]!).filter((x) => !GroupOp.Leaf.has(x.op) && !outs.has(x)));
  const stored = [...pieces].map((node, i) => ({ name: `piece${i}`, node }));
  return lower(fuse({ ...g, outputs: [...g.outputs, ...stored] }), { name: 'body' });
}

/** How a scan kernel's body is scheduled for a target: its statements again, with buffers the schedule added. */
type ScanSchedule = (caps: TargetCaps) => { body: Stmt[]; buffers: Buffer[] };
/** The kernel's ScanSchedule, under a symbol key: passes that copy a kernel with a spread (simplify) keep it. */
const SCHEDULE = Symbol('scanSchedule');
type ScanKernel = Kernel & { readonly [SCHEDULE]?: ScanSchedule };

/** The kernel running the scan loop of fusion kernel `k` (its one nest's roots: the loop's scan nodes). */
export function lowerScan(k: KernelPlan, ctx: ScanContext): Kernel {
  const roots = k.nests[0]!.roots;
  const first = roots[0]!, src = first.src;
  const info = scanInfo(first.attrs, src.map((s) => s.type));
  const { body, nc, ns, ny, length: T, reverse } = info;
  const p = `s${ctx.id}_`;
  const zero = E.i32(0);
  const pre: Stmt[] = [], saves: Stmt[] = [], yCopies: Stmt[] = [], carryCopies: Stmt[] = [], post: Stmt[] = [];
  let copies = 0;
  const copyVar = () => `${p}cp${copies++}`;

  // operands without a buffer (splat constants, iotas) are filled into one before the loop
  const operand = (n: Node): string => {
    const b = ctx.bufOf(n);
    if (b !== undefined) return b;
    const size = sizeOf(n.type.shape), t = scalarOf(n.type.dtype);
    const buf = ctx.addBuffer(`${p}op${n.id}`, n.type.dtype, size, 'temp');
    const v = copyVar(), i = E.v(v);
    const value = n.op === 'iota'
      ? E.mod(E.idiv(i, stridesOf(n.type.shape)[attrsOf(n, 'iota').axis]!), n.type.shape[attrsOf(n, 'iota').axis]!)
      : E.c(t, attrsOf(n, 'const').value[0]!);
    pre.push(S.for(v, size, [S.store(buf, i, value)]));
    return buf;
  };

  const prog = bodyProgram(body);
  const tv = E.v(`${p}t`);
  const time = reverse ? E.add(E.i32(T - 1), E.mul(tv, E.i32(-1))) : tv;
  const places = new Map<string, Place>();
  const carries: Place[] = [];
  prog.inputs.forEach((x, i) => {
    const n = src[i]!, size = sizeOf(body.inputs[i]!.type.shape);
    if (i < nc) {
      const c = { buf: ctx.addBuffer(`${p}carry${i}`, n.type.dtype, size, 'temp'), offset: zero };
      carries.push(c);
      places.set(x.buffer, c);
      if (size) pre.push(copy(copyVar(), size, scalarOf(n.type.dtype), c, { buf: operand(n), offset: zero }));
    } else places.set(x.buffer, { buf: operand(n), offset: i < nc + ns ? E.mul(time, E.i32(size)) : zero });
  });
  const bound = new Set(prog.inputs.map((x) => x.buffer));
  for (const b of prog.buffers) {
    if (bound.has(b.name)) continue;
    const kind = b.kind === 'const' ? 'const' : 'temp';
    places.set(b.name, { buf: ctx.addBuffer(`${p}${b.name}`, b.dtype, b.size, kind, b.data), offset: zero });
  }
  const outPlace = (j: number) => places.get(prog.outputs[j]!.buffer)!;

  // each step: the saved carries asked for, the body's kernels, the stacked outputs asked for, the new carries
  const results = new Map<number, string>(roots.map((r) => [Number(r.attrs['output']), ctx.bufOf(r)!]));
  for (let i = 0; i < nc; i++) {
    const out = results.get(nc + ny + i), size = sizeOf(src[i]!.type.shape);
    if (out !== undefined && size) saves.push(copy(copyVar(), size, scalarOf(src[i]!.type.dtype), { buf: out, offset: E.mul(time, E.i32(size)) }, carries[i]!));
  }
  for (let j = 0; j < ny; j++) {
    const out = results.get(nc + j), o = body.outputs[nc + j]!.node, size = sizeOf(o.type.shape);
    if (out !== undefined && size) yCopies.push(copy(copyVar(), size, scalarOf(o.type.dtype), { buf: out, offset: E.mul(time, E.i32(size)) }, outPlace(nc + j)));
  }
  for (let i = 0; i < nc; i++) {
    const size = sizeOf(src[i]!.type.shape), from = outPlace(i);
    if (size && from.buf !== carries[i]!.buf) carryCopies.push(copy(copyVar(), size, scalarOf(src[i]!.type.dtype), carries[i]!, from));
    const out = results.get(i);
    if (out !== undefined && size) post.push(copy(copyVar(), size, scalarOf(src[i]!.type.dtype), { buf: out, offset: zero }, carries[i]!));
  }
  const statements = (kernels: readonly Kernel[], caps?: TargetCaps): Stmt[] => {
    // the copies (saved carries and outputs, the next carries: an LSTM's weight-gradient accumulator is 64K
    // elements a step) as vector loops where the target has them
    const vec = (ss: readonly Stmt[]) => ss.map((x) => (caps && x.k === 'for' && canVectorize(x, caps) ? { ...x, kind: 'vector' as const } : x));
    const step = [...vec(saves), ...kernels.flatMap((kb, j) => new Relocate(places, `${p}k${j}_`).stmts(kb.body)), ...vec(yCopies), ...vec(carryCopies)];
    const moved = invariant(step);
    return [...vec(pre), ...step.filter((s) => moved.has(s)), S.for(`${p}t`, T, step.filter((s) => !moved.has(s))), ...vec(post)];
  };
  const again: ScanSchedule = (caps) => {
    // the body's kernels scheduled as a program of their own (on one thread: a loop's parallel iterations would be
    // handed to the pool at every step); buffers the schedule adds (packed panels) become the outer program's
    const scheduled = schedule(simplify(prog), { ...caps, threads: 1 });
    const buffers: Buffer[] = [];
    for (const b of scheduled.buffers) {
      if (places.has(b.name) || bound.has(b.name)) continue;
      const name = `${p}${b.name}`;
      buffers.push({ ...b, name, kind: b.kind === 'const' ? 'const' : 'temp' });
      places.set(b.name, { buf: name, offset: zero });
    }
    return { body: statements(scheduled.kernels, caps), buffers };
  };
  return { name: k.name, ops: k.ops, body: statements(prog.kernels), [SCHEDULE]: again } as ScanKernel;
}

/**
 * The schedule of a scan loop's kernel: on CPUs the body's kernels scheduled as the target's recipes do for any
 * kernel, inside the serial time loop; on a GPU the loop as lowered, run by one block of one thread (a launch cannot
 * wait for the previous step's other blocks, so the steps stay in one block).
 */
export function scheduleScan(p: Program, k: number, caps: TargetCaps): Program {
  const kernel = p.kernels[k]! as ScanKernel;
  let body: readonly Stmt[] = kernel.body, buffers = p.buffers;
  const again = kernel[SCHEDULE];
  if (caps.gpu) body = [S.for(`${kernel.name}_block`, 1, [S.for(`${kernel.name}_thread`, 1, [...kernel.body], 'thread')], 'block')];
  else if (again) {
    const s = again(caps);
    body = s.body;
    buffers = [...buffers, ...s.buffers];
  }
  return { ...p, buffers, kernels: p.kernels.map((x, i) => (i === k ? { ...x, body } : x)) };
}
