// Lowering: a fusion plan becomes a loop-IR program (one function per kernel, one loop nest per planned nest).
import { type Node, nodeName } from '../../ir/graph.js';
import { GroupOp, REDUCE_BINARY, REDUCE_KIND, type ReduceOp, attrsOf, isUnaryOp } from '../../ir/ops.js';
import { type Shape, identityOf, sizeOf, stridesOf } from '../../ir/types.js';
import { type FusionPlan, type NestPlan, OWN_KERNEL, isContraction, isRowReduce, isStored, isTiny, pooledQconv } from '../../passes/fuse.js';
import { type TreeSink, treeReduce } from './tree_reduce.js';
import { type ScanContext, lowerScan } from './scan.js';
import { lowerScatter } from './scatter.js';
import { loopEnv, rangeOf } from './range.js';
import { quantizeBounds } from '../../ir/quant.js';
import { type AxisKind, type Buffer, E, type Expr, type Kernel, type Program, S, type Scalar, type Stmt, exprId, scalarOf } from './ir.js';

function unitZero(idx: readonly Expr[], shape: Shape): Expr[] {
  return idx.map((e, d) => (shape[d] === 1 ? E.i32(0) : e));
}

/** Key of a multi-index (interned expressions: equal exactly when structurally equal), for memos and patterns. */
function idxKey(idx: readonly Expr[]): string {
  return idx.map(exprId).join(',');
}

/** Row-major linear index of a multi-index. */
export function linear(idx: readonly Expr[], shape: Shape): Expr {
  const st = stridesOf(shape);
  let acc: Expr = E.i32(0);
  idx.forEach((e, d) => { if (shape[d] !== 1) acc = E.add(acc, E.mul(e, E.i32(st[d]!))); });
  return acc;
}

const imin = (a: Expr, b: Expr) => E.binary('min', a, b);
const imax = (a: Expr, b: Expr) => E.binary('max', a, b);
const clampIdx = (e: Expr, n: number) => (e.k === 'const' ? E.i32(Math.max(0, Math.min(n - 1, e.v))) : imax(imin(e, E.i32(n - 1)), E.i32(0)));
const and = (a: Expr | undefined, b: Expr) => (a ? E.binary('and', a, b) : b);
/** x at most c (op 'gt') or at least c ('lt') by a select that keeps NaN: select(x > c, c, x). */
const keepNaN = (x: Expr, op: 'gt' | 'lt', c: Expr) => E.select(E.binary(op, x, c), c, x);
/** x at least c (op 'gt') or at most c ('lt') by a select that makes NaN c (the compare is false): select(x > c, x, c). */
const nanTo = (x: Expr, op: 'gt' | 'lt', c: Expr) => E.select(E.binary(op, x, c), x, c);
/** The value where a tap's condition holds, else the unchanged one; no select for a tap that always reads. */
const guarded = (c: Expr | undefined, then: Expr, otherwise: Expr) => (c ? E.select(c, then, otherwise) : then);

/** A block being emitted: its statements and the values already computed in it (visible to nested blocks). */
class Scope {
  readonly stmts: Stmt[] = [];
  readonly memo = new Map<string, Expr>();
  constructor(readonly parent?: Scope) {}
  lookup(key: string): Expr | undefined {
    return this.memo.get(key) ?? this.parent?.lookup(key);
  }
}

interface Binding {
  readonly pattern: string;
  readonly value: (idx: readonly Expr[]) => Expr;
}

/** Emits one nest. Values of the nest's own contractions and roots are bound to variables at fixed index patterns. */
class NestEmitter {
  private scope: Scope;
  /** The nest's outermost scope (before its loops), where loop-invariant scalars go. */
  private top: Scope | undefined;
  private readonly bound = new Map<Node, Binding>();
  private readonly roots: Set<Node>;
  private readonly outerVars: Expr[] = [];
  private readonly innerVars: Expr[] = [];
  private readonly outerDims: number[];
  private readonly innerDims: number[];

  constructor(private readonly plan: NestPlan, private readonly names: { next(prefix: string): string },
    private readonly bufOf: (n: Node) => string, private readonly constBuf: (n: Node) => string | undefined,
    private readonly isMaterialized: (n: Node) => boolean) {
    this.scope = new Scope();
    this.roots = new Set(plan.roots);
    const { full, axes } = plan.key;
    this.outerDims = full.map((_, i) => i).filter((i) => !axes.includes(i));
    this.innerDims = [...axes];
  }

  private fresh(prefix: string): string {
    return this.names.next(prefix);
  }

  private emit(s: Stmt): void {
    this.scope.stmts.push(s);
  }

  /** Runs body in a nested scope and returns its statements. */
  private nested(body: () => void): Stmt[] {
    const saved = this.scope;
    this.scope = new Scope(saved);
    try {
      body();
      return this.scope.stmts;
    } finally {
      this.scope = saved;
    }
  }

  /** Nested loops over extents; body receives the index variables. */
  private loops(extents: readonly number[], prefix: string, body: (vars: Expr[]) => void, kind: AxisKind = 'serial', keepUnit = false): void {
    // a serial loop of one iteration is not emitted (its index is 0), except a nest's outer loops: schedules
    // find the nest's dimensions by them and drop the unit ones after (cleanup.ts)
    const names = extents.map((n) => (n === 1 && kind === 'serial' && !keepUnit ? undefined : this.fresh(prefix)));
    // the index of a unit loop is 0 either way (its variable unused), so index arithmetic folds as without it
    const vars = names.map((n, d) => (n === undefined || (keepUnit && extents[d] === 1) ? E.i32(0) : E.v(n)));
    let stmts = this.nested(() => body(vars));
    for (let d = extents.length - 1; d >= 0; d--) if (names[d] !== undefined) stmts = [S.for(names[d]!, extents[d]!, stmts, kind)];
    for (const s of stmts) this.emit(s);
  }

  /** What treeReduce needs to emit into the current scope. */
  private treeSink(): TreeSink {
    return { fresh: (p) => this.fresh(p), emit: (st) => this.emit(st), nested: (f) => this.nested(f) };
  }

  /** Value `e` in a fresh local scalar (so later uses share it). */
  private let(e: Expr, prefix = 't'): Expr {
    if (e.k === 'const' || e.k === 'var') return e;
    const name = this.fresh(prefix);
    this.emit(S.decl(name, e.t, e));
    return E.v(name, e.t);
  }

  private fullIndex(outer: readonly Expr[], inner: readonly Expr[]): Expr[] {
    const idx: Expr[] = new Array(this.plan.key.full.length);
    this.outerDims.forEach((d, i) => { idx[d] = outer[i]!; });
    this.innerDims.forEach((d, i) => { idx[d] = inner[i]!; });
    return idx;
  }

  /** Index of a value of reduced shape (keepdims or not) at the current outer position. */
  private outerIndex(shape: Shape): Expr[] {
    const full = this.plan.key.full;
    if (shape.length === full.length) return full.map((_, d) => (this.innerDims.includes(d) ? E.i32(0) : this.outerVars[this.outerDims.indexOf(d)]!));
    return [...this.outerVars];
  }

  private bind(n: Node, idx: readonly Expr[], value: (idx: readonly Expr[]) => Expr): void {
    this.bound.set(n, { pattern: idxKey(unitZero(idx, n.type.shape)), value });
  }

  /** Scalar expression of node n at multi-index idx, inlining everything not materialized. */
  exprAt(n: Node, rawIdx: readonly Expr[]): Expr {
    // scalars computed from leaves alone (e.g. the optimizer's bias correction) are hoisted out of every loop
    if (this.top && this.scope !== this.top && isTiny(n)) {
      const saved = this.scope;
      this.scope = this.top;
      try {
        return this.exprAt(n, rawIdx);
      } finally {
        this.scope = saved;
      }
    }
    // the index along a unit dimension is always 0, whatever expression reached it
    const idx = unitZero(rawIdx, n.type.shape);
    const b = this.bound.get(n);
    const key = idxKey(idx);
    if (b && b.pattern === key) return b.value(idx);
    const memoKey = `${n.id}@${key}`;
    const hit = this.scope.lookup(memoKey);
    if (hit) return hit;
    const t = scalarOf(n.type.dtype);
    let e: Expr;
    if (n.op === 'input' || n.op === 'param' || (this.isMaterialized(n) && !this.roots.has(n))) {
      e = this.let(E.load(this.bufOf(n), linear(idx, n.type.shape), t), 'v');
    } else if (n.op === 'const') {
      const cb = this.constBuf(n);
      e = cb ? this.let(E.load(cb, linear(idx, n.type.shape), t), 'v') : E.c(t, attrsOf(n, 'const').value[0]!);
    } else if (n.op === 'iota') {
      e = idx[attrsOf(n, 'iota').axis]!;
    } else if (isContraction(n)) {
      throw new Error(`lower: %${n.id} ${n.op} is needed at [${key}] but is neither materialized nor bound there`);
    } else {
      e = this.let(this.injective(n, idx, t));
    }
    this.scope.memo.set(memoKey, e);
    return e;
  }

  private injective(n: Node, idx: readonly Expr[], t: Scalar): Expr {
    const src = n.src;
    const at = (i: number, ix: readonly Expr[] = idx) => this.exprAt(src[i]!, ix);
    if (isUnaryOp(n.op)) return E.unary(n.op, at(0));
    switch (n.op) {
      case 'cast':
        return E.cast(t, at(0));
      case 'quantize': {
        const { scale, zeroPoint } = attrsOf(n, n.op), ends = quantizeBounds(scale, zeroPoint);
        if (ends) {
          // ir/quant.ts quantizeBounds: x clamped to [a, b] as a float, its quotient rounded is already within the
          // saturation bounds, so no clamp after it (seed MLP b256, 1 thread, AVX-512: 17 -> 9 vector instructions
          // per 16 values). NaN quantizes to the zero point, i.e. to the quotient 0 (as the cast of NaN gives), but
          // the llvm renderer converts without guards only a float it sees is not NaN (render.ts clampRange), so NaN
          // is made 0 first: at an end that is 0 (zero point -128, of ReLU outputs and non-negative inputs; or 127)
          // by the select there (its compare is false on NaN), else by a select of its own.
          const [a, b] = ends.map((v) => E.f32(v)) as [Expr, Expr], x = this.let(at(0));
          let v: Expr;
          if (ends[0] === 0) v = nanTo(keepNaN(x, 'gt', b), 'gt', a);
          else if (ends[1] === 0) v = nanTo(keepNaN(x, 'lt', a), 'lt', b);
          else v = keepNaN(keepNaN(E.select(E.binary('eq', x, x), x, E.f32(0)), 'gt', b), 'lt', a);
          return E.binary('add', E.cast('i32', E.unary('round', E.binary('div', v, E.f32(scale)))), E.i32(zeroPoint));
        }
        // ir/quant.ts quantizeValue: round(x / scale) half to even in f32, + zero point, saturated; NaN gives the zero point
        // (the clamps as compares and selects, not min/max: NaN, which min and max propagate at a cost, is the outer select's).
        // x first within ±1024 scale, NaN kept (a quotient past ±1024 saturates as x's does): round(x / scale) as one
        // expression of a bounded x, which the llvm renderer divides by two FMAs, exactly (render.ts divByConstant)
        const B = E.f32(Math.fround(1024 * Math.fround(scale))), nB = E.f32(-Math.fround(1024 * Math.fround(scale)));
        const x = this.let(at(0)), x1 = E.select(E.binary('gt', x, B), B, x), xc = E.select(E.binary('lt', x1, nB), nB, x1);
        const q = this.let(E.unary('round', E.binary('div', xc, E.f32(scale))));
        const r = E.binary('add', q, E.f32(zeroPoint)), lo = E.select(E.binary('gt', r, E.f32(-128)), r, E.f32(-128));
        const c = E.select(E.binary('lt', lo, E.f32(127)), lo, E.f32(127));
        return E.select(E.binary('eq', q, q), E.cast('i32', c), E.i32(zeroPoint));
      }
      case 'dequantize': {
        const { scale, zeroPoint } = attrsOf(n, n.op);
        return E.binary('mul', E.cast('f32', E.binary('sub', at(0), E.i32(zeroPoint))), E.f32(scale));
      }
      case 'add': case 'sub': case 'mul': case 'div': case 'pow': case 'max': case 'min':
      case 'eq': case 'ne': case 'lt': case 'le': case 'gt': case 'ge': case 'and': case 'or':
        return E.binary(n.op, at(0), at(1));
      case 'select':
        return E.select(at(0), at(1), at(2));
      case 'reshape': {
        const ss = src[0]!.type.shape, os = n.type.shape;
        const sq = (s: Shape) => s.filter((d) => d !== 1);
        if (sq(ss).length === sq(os).length && sq(ss).every((d, i) => d === sq(os)[i])) {
          // only unit dimensions added or removed: map the non-unit indices across
          const nonUnit = os.flatMap((d, i) => (d !== 1 ? [idx[i]!] : []));
          let j = 0;
          return at(0, ss.map((d) => (d === 1 ? E.i32(0) : nonUnit[j++]!)));
        }
        const lin = linear(idx, os), st = stridesOf(ss);
        return at(0, ss.map((d, i) => E.mod(E.idiv(lin, st[i]!), d)));
      }
      case 'transpose': {
        const { perm } = attrsOf(n, 'transpose');
        const sidx: Expr[] = new Array(perm.length);
        perm.forEach((p, i) => { sidx[p] = idx[i]!; });
        return at(0, sidx);
      }
      case 'broadcast': {
        const ss = src[0]!.type.shape, off = n.type.shape.length - ss.length;
        return at(0, ss.map((d, i) => (d === 1 ? E.i32(0) : idx[i + off]!)));
      }
      case 'slice': {
        const { start, step } = attrsOf(n, 'slice');
        return at(0, idx.map((e, i) => E.add(E.mul(e, E.i32(step[i]!)), E.i32(start[i]!))));
      }
      case 'pad': {
        const { padding: p, value } = attrsOf(n, 'pad'), ss = src[0]!.type.shape;
        let inb: Expr | undefined;
        const sidx = idx.map((e, i) => {
          const j = E.add(e, E.i32(-p[i]![0]));
          if (p[i]![0] > 0) inb = and(inb, E.binary('ge', j, E.i32(0)));
          if (p[i]![1] > 0) inb = and(inb, E.binary('lt', j, E.i32(ss[i]!)));
          return p[i]![0] > 0 || p[i]![1] > 0 ? clampIdx(j, ss[i]!) : j;
        });
        if (ss.some((d) => d === 0)) return E.c(t, value);
        const v = at(0, sidx);
        return inb ? E.select(inb, v, E.c(t, value)) : v;
      }
      case 'concat': {
        const { axis } = attrsOf(n, 'concat');
        let off = 0;
        const parts = src.map((s, i) => {
          const len = s.type.shape[axis]!;
          const part = { i, off, len };
          off += len;
          return part;
        }).filter((p) => p.len > 0);
        let e: Expr | undefined;
        for (let j = parts.length - 1; j >= 0; j--) {
          const { i, off: o, len } = parts[j]!;
          const local = clampIdx(E.add(idx[axis]!, E.i32(-o)), len);
          const v = at(i, idx.map((x, d) => (d === axis ? local : x)));
          e = e === undefined ? v : E.select(E.binary('lt', idx[axis]!, E.i32(o + len)), v, e);
        }
        return e!;
      }
      case 'gather': {
        const { axis } = attrsOf(n, 'gather'), ir = src[1]!.type.shape.length, dim = src[0]!.type.shape[axis]!;
        const g = clampIdx(this.exprAt(src[1]!, idx.slice(axis, axis + ir)), dim);
        return at(0, [...idx.slice(0, axis), g, ...idx.slice(axis + ir)]);
      }
      case 'random_uniform': {
        // with a first row (a rank's share of a batch), element i of the draw is element first * rowSize + i
        const i = linear(idx, n.type.shape), rowSize = n.type.shape.slice(1).reduce((a, b) => a * b, 1);
        return E.philox(attrsOf(n, 'random_uniform').seed, this.exprAt(src[0]!, []), src[1] ? E.add(E.mul(this.exprAt(src[1], []), E.i32(rowSize)), i) : i);
      }
      case 'allreduce':
        return at(0); // a copy: the runtime sums the copy over the processes after the kernel (Kernel.allreduce)
      default:
        throw new Error(`lower: ${n.op} is not an injective op`);
    }
  }

  /** Emits the loops of a contraction at index idx into the current scope; returns its value. */
  contraction(n: Node, idx: readonly Expr[]): Expr {
    const t = scalarOf(n.type.dtype);
    const acc = this.fresh('acc');
    const accV = E.v(acc, t);
    const x = n.src[0]!;
    switch (n.op) {
      case 'reduce_sum': case 'reduce_prod': case 'reduce_max': case 'reduce_min': {
        // reduced axes in increasing order: the interpreter's row-major summation order
        const { axes: raw, keepdims: keep, tree } = attrsOf(n, n.op), kind = REDUCE_KIND[n.op];
        const axes = [...raw].sort((a, b) => a - b), xs = x.type.shape;
        const kept = xs.map((_, d) => d).filter((d) => !axes.includes(d));
        if (tree !== undefined && tree > 1) {
          const at = (ks: readonly Expr[]) => this.exprAt(x, xs.map((_, d) => (axes.includes(d) ? ks[axes.indexOf(d)]! : idx[keep ? d : kept.indexOf(d)]!)));
          return treeReduce(this.treeSink(), t, REDUCE_BINARY[kind], identityOf(kind, n.type.dtype), axes.map((d) => xs[d]!), tree, acc, at);
        }
        this.emit(S.decl(acc, t, E.c(t, identityOf(kind, n.type.dtype))));
        this.loops(axes.map((d) => xs[d]!), 'k', (ks) => {
          const full = xs.map((_, d) => (axes.includes(d) ? ks[axes.indexOf(d)]! : idx[keep ? d : kept.indexOf(d)]!));
          const v = this.exprAt(x, full);
          this.emit(S.assign(acc, E.binary(REDUCE_BINARY[kind], accV, v)));
        });
        return accV;
      }
      case 'argmax': case 'argmin': {
        const { axis, keepdims: keep } = attrsOf(n, n.op), xs = x.type.shape;
        const kept = xs.map((_, d) => d).filter((d) => d !== axis);
        const at = (k: Expr) => xs.map((_, d) => (d === axis ? k : idx[keep ? d : kept.indexOf(d)]!));
        const xt = scalarOf(x.type.dtype);
        const best = this.fresh('best');
        this.emit(S.decl(best, xt, this.exprAt(x, at(E.i32(0)))));
        this.emit(S.decl(acc, 'i32', E.i32(0)));
        this.loops([xs[axis]!], 'k', ([k]) => {
          const v = this.exprAt(x, at(k!));
          const bv = E.v(best, xt);
          const better = E.binary(n.op === 'argmax' ? 'gt' : 'lt', v, bv);
          const cond = xt === 'f32' ? E.binary('and', E.binary('eq', bv, bv), E.binary('or', better, E.binary('ne', v, v))) : better;
          const c = this.let(cond, 'c');
          this.emit(S.assign(best, E.select(c, v, bv)));
          this.emit(S.assign(acc, E.select(c, k!, E.v(acc))));
        });
        return E.v(acc);
      }
      case 'matmul': {
        const [a, b] = n.src as [Node, Node];
        const r = a.type.shape.length, batch = idx.slice(0, r - 2), tree = attrsOf(n, 'matmul').tree ?? 1;
        if (tree > 1) {
          const term = ([k]: readonly Expr[]) => E.binary('mul', this.exprAt(a, [...batch, idx[r - 2]!, k!]), this.exprAt(b, [...batch, k!, idx[r - 1]!]));
          return treeReduce(this.treeSink(), t, 'add', 0, [a.type.shape[r - 1]!], tree, acc, term);
        }
        this.emit(S.decl(acc, t, E.c(t, 0)));
        this.loops([a.type.shape[r - 1]!], 'k', ([k]) => {
          const av = this.exprAt(a, [...batch, idx[r - 2]!, k!]), bv = this.exprAt(b, [...batch, k!, idx[r - 1]!]);
          this.emit(S.assign(acc, E.binary('add', accV, E.binary('mul', av, bv))));
        });
        return accV;
      }
      case 'qmatmul': {
        // ir/quant.ts: int32 sum of (x - xZero)·w from the bias, then MultiplyByQuantizedMultiplier + outZero, clamped
        const [xq, w, bias, mult, shift] = n.src as [Node, Node, Node, Node, Node];
        const { xZero, outZero, lo, hi } = attrsOf(n, n.op), j = idx[1]!;
        this.emit(S.decl(acc, 'i32', this.exprAt(bias, [j])));
        this.loops([xq.type.shape[1]!], 'k', ([k]) => {
          const xv = this.exprAt(xq, [idx[0]!, k!]), wv = this.exprAt(w, [k!, j]);
          this.emit(S.assign(acc, E.binary('add', accV, E.binary('mul', E.binary('sub', xv, E.i32(xZero)), wv))));
        });
        return this.requantize(accV, this.exprAt(mult, [j]), this.exprAt(shift, [j]), outZero, lo, hi);
      }
      case 'qconv': {
        // the window of conv, the accumulation and requantization of qmatmul
        const [, , , mult, shift] = n.src as [Node, Node, Node, Node, Node];
        const { outZero, lo, hi } = attrsOf(n, n.op), co = idx[idx.length - 1]!;
        return this.requantize(this.qconvSum(n, idx, acc), this.exprAt(mult, [co]), this.exprAt(shift, [co]), outZero, lo, hi);
      }
      case 'reduce_window': {
        const q = pooledQconv(n, this.isMaterialized);
        if (!q) return this.windowOrConv(n, idx, acc);
        // fuse.ts pooledQconv: the max of the conv's accumulators at the window's taps, requantized once
        const [, , , mult, shift] = q.src as [Node, Node, Node, Node, Node];
        const { outZero, lo, hi } = attrsOf(q, 'qconv'), co = idx[idx.length - 1]!;
        this.emit(S.decl(acc, 'i32', E.i32(-2147483648)));
        this.loops(windowExtents(n), 'k', (ks) => {
          const [cond, at] = this.windowTap(n, idx, ks);
          const sum = this.qconvSum(q, at, this.fresh('acc'));
          this.emit(S.assign(acc, guarded(cond, E.binary('max', accV, sum), accV)));
        });
        return this.requantize(accV, this.exprAt(mult, [co]), this.exprAt(shift, [co]), outZero, lo, hi);
      }
      case 'conv':
        return this.windowOrConv(n, idx, acc);
      default:
        throw new Error(`lower: ${n.op} is not a contraction`);
    }
  }

  /** A qconv's int32 accumulator at idx (ir/quant.ts: the bias, then the sum of (x - xZero)·k over its window) in acc. */
  private qconvSum(n: Node, idx: readonly Expr[], acc: string): Expr {
    const [x, k, bias] = n.src as [Node, Node, Node];
    const { xZero } = attrsOf(n, 'qconv'), co = idx[idx.length - 1]!, accV = E.v(acc, 'i32');
    this.emit(S.decl(acc, 'i32', this.exprAt(bias, [co])));
    this.loops(windowExtents(n), 'k', (ks) => {
      const [cond, at] = this.windowTap(n, idx, ks);
      const term = E.binary('mul', E.binary('sub', this.exprAt(x, at), E.i32(xZero)), this.exprAt(k, [...ks, co]));
      this.emit(S.assign(acc, guarded(cond, E.binary('add', accV, term), accV)));
    });
    return accV;
  }

  /** A float conv or a pooling window at idx, accumulated in acc. */
  private windowOrConv(n: Node, idx: readonly Expr[], acc: string): Expr {
    const t = scalarOf(n.type.dtype), accV = E.v(acc, t), x = n.src[0]!;
    switch (n.op) {
      case 'conv': case 'reduce_window': {
        const isConv = n.op === 'conv', k = n.src[1];
        const isMax = n.op === 'reduce_window' && attrsOf(n, n.op).kind === 'max';
        const tree = isConv ? attrsOf(n, 'conv').tree ?? 1 : 1;
        if (tree > 1) {
          // a declared tree: each partial skips the taps outside the input, as the serial sum does
          const step = (p: Expr, ks: readonly Expr[]) => {
            const [cond, at] = this.windowTap(n, idx, ks);
            return guarded(cond, E.binary('add', p, E.binary('mul', this.exprAt(x, at), this.exprAt(k!, [...ks, idx[idx.length - 1]!]))), p);
          };
          return treeReduce(this.treeSink(), t, 'add', 0, windowExtents(n), tree, acc, () => E.c(t, 0), step);
        }
        this.emit(S.decl(acc, t, E.c(t, identityOf(isMax ? 'max' : 'sum', n.type.dtype))));
        this.loops(windowExtents(n), 'k', (ks) => {
          const [cond, at] = this.windowTap(n, idx, ks);
          const xv = this.exprAt(x, at);
          let next: Expr;
          if (isConv) next = E.binary('add', accV, E.binary('mul', xv, this.exprAt(k!, [...ks, idx[idx.length - 1]!])));
          else next = isMax ? E.binary('max', accV, xv) : E.binary('add', accV, xv);
          this.emit(S.assign(acc, guarded(cond, next, accV)));
        });
        return accV;
      }
      default:
        throw new Error(`lower: ${n.op} is not a window`);
    }
  }

  /** ir/quant.ts: MultiplyByQuantizedMultiplier(acc, mult, shift) + outZero, clamped to [lo, hi]. */
  private requantize(acc: Expr, mult: Expr, shift: Expr, outZero: number, lo: number, hi: number): Expr {
    const s = this.let(shift, 's');
    const clamp = (v: Expr, a: number, b: number) => E.binary('min', E.binary('max', v, E.i32(a)), E.i32(b));
    const high = E.binary('qmulhi', E.binary('shl', acc, clamp(s, 0, 31)), mult);
    const r = E.binary('qshr', this.let(high, 'h'), clamp(E.binary('sub', E.i32(0), s), 0, 31));
    return this.let(clamp(E.binary('add', r, E.i32(outZero)), lo, hi), 'q');
  }

  /**
   * One tap of a conv or pooling window: whether the output at idx reads the input at window position ks (the
   * last of ks is the input channel of a conv), and the input index it reads (clamped in bounds when not). A bound
   * that ranges prove for every output position and tap (range.ts: the output index over its shape, the tap over
   * the window) is left out, with its clamp; undefined when every tap reads the input (a convolution without
   * padding), so such a nest carries no condition (and a GPU schedule stages no tile of them).
   */
  private windowTap(n: Node, idx: readonly Expr[], ks: readonly Expr[]): [Expr | undefined, Expr[]] {
    const isConv = n.op === 'conv' || n.op === 'qconv', xs = n.src[0]!.type.shape, nsp = xs.length - 2;
    const { strides, padding: pad } = attrsOf(n, ['conv', 'reduce_window', 'qconv']);
    const conv = isConv ? attrsOf(n, ['conv', 'qconv']) : undefined;
    const dil = conv?.dilation ?? xs.map(() => 1);
    const ldil = conv?.lhsDilation ?? xs.map(() => 1);
    const window = windowExtents(n);
    let inb: Expr | undefined;
    const coords = strides.map((_, d) => {
      const tap = (o: Expr, k: Expr) => E.add(E.add(E.mul(o, E.i32(strides[d]!)), E.mul(k, E.i32(dil[d]!))), E.i32(-pad[d]![0]));
      // the same arithmetic over an output coordinate and a tap standing for every value they take
      const o = E.v('%o'), k = E.v('%k'), ext = new Map([['%o', n.type.shape[d + 1]!], ['%k', window[d]!]]);
      const pv = this.let(tap(idx[d + 1]!, ks[d]!), 'p');
      const pr = rangeOf(tap(o, k), loopEnv(ext));
      if (!(pr && pr.lo >= 0)) inb = and(inb, E.binary('ge', pv, E.i32(0)));
      let q = pv, qr = pr;
      if (ldil[d]! > 1) {
        inb = and(inb, E.binary('eq', E.mod(pv, ldil[d]!), E.i32(0)));
        q = E.idiv(pv, ldil[d]!);
        qr = rangeOf(E.idiv(tap(o, k), ldil[d]!), loopEnv(ext));
      }
      const [qlo, qhi] = qr ? [qr.lo, qr.hi] : [-Infinity, Infinity];
      if (qhi >= xs[d + 1]!) inb = and(inb, E.binary('lt', q, E.i32(xs[d + 1]!)));
      return qlo >= 0 && qhi < xs[d + 1]! ? q : clampIdx(q, xs[d + 1]!);
    });
    const cin = isConv ? n.src[1]!.type.shape[nsp]! : 1, coutG = conv ? n.src[1]!.type.shape[nsp + 1]! / conv.groups : 1;
    const chan = isConv ? E.add(E.mul(E.idiv(idx[nsp + 1]!, coutG), E.i32(cin)), ks[nsp]!) : idx[nsp + 1]!;
    return [inb && this.let(inb, 'c'), [idx[0]!, ...coords, chan]];
  }

  /**
   * The whole nest: outer loops (one per dimension, unit extents included, so schedules can tile them), stages,
   * then stores of the roots. A contraction of the nest's full shape is computed at each element
   * (`acc = 0; for k { acc += ... }`) or, in a nest with inner axes, into a row cache; schedules reorder them.
   */
  lower(): Stmt[] {
    const { full } = this.plan.key;
    const outerExt = this.outerDims.map((d) => full[d]!), innerExt = this.innerDims.map((d) => full[d]!);
    const hasInner = innerExt.length > 0;
    const isF = (s: Shape) => hasInner && s.length === full.length && s.every((d, i) => d === full[i]);
    const body = () => {
      for (const st of this.plan.stages) {
        const rowReduce = isRowReduce(st, { full, axes: this.innerDims });
        if (rowReduce) {
          const acc = this.fresh('acc'), t = scalarOf(st.type.dtype);
          const kind = REDUCE_KIND[st.op as ReduceOp], tree = attrsOf(st, st.op as ReduceOp).tree ?? 1;
          const op = REDUCE_BINARY[kind];
          const x = (rs: readonly Expr[]) => {
            this.innerVars.splice(0, this.innerVars.length, ...rs);
            return this.exprAt(st.src[0]!, this.fullIndex(this.outerVars, rs));
          };
          if (tree > 1) treeReduce(this.treeSink(), t, op, identityOf(kind, st.type.dtype), innerExt, tree, acc, x);
          else {
            this.emit(S.decl(acc, t, E.c(t, identityOf(kind, st.type.dtype))));
            this.loops(innerExt, 'r', (rs) => this.emit(S.assign(acc, E.binary(op, E.v(acc, t), x(rs)))));
          }
          this.bind(st, this.outerIndex(st.type.shape), () => E.v(acc, t));
        } else if (isF(st.type.shape)) {
          // a full-shape contraction (e.g. the matmul under a softmax) or a costly value several row loops read
          // (fuse.ts withRowCaches): cache the row in a local array
          const local = this.fresh('row'), t = scalarOf(st.type.dtype), n = sizeOf(innerExt);
          this.emit(S.local(local, t, n));
          this.loops(innerExt, 'r', (rs) => {
            this.innerVars.splice(0, this.innerVars.length, ...rs);
            const idx = this.fullIndex(this.outerVars, rs);
            this.emit(S.store(local, linear(rs, innerExt), isContraction(st) ? this.contraction(st, idx) : this.exprAt(st, idx)));
          });
          this.bindRow(st, local, innerExt, t);
        } else {
          const idx = this.outerIndex(st.type.shape);
          const v = this.contraction(st, idx);
          this.bind(st, idx, () => v);
        }
      }
      const fRoots = this.plan.roots.filter((r) => isF(r.type.shape));
      const oRoots = this.plan.roots.filter((r) => !isF(r.type.shape));
      if (fRoots.length) {
        // a root that is also a row reduction (a stage) keeps its stage binding after the row, for outer roots
        const stageBindings = fRoots.map((r) => [r, this.bound.get(r)] as const);
        this.loops(innerExt, 'r', (rs) => {
          this.innerVars.splice(0, this.innerVars.length, ...rs);
          const idx = this.fullIndex(this.outerVars, rs);
          for (const r of fRoots) {
            const v = this.let(this.exprAt(r, idx), 'y');
            this.emit(S.store(this.bufOf(r), linear(idx, r.type.shape), v));
            this.bind(r, idx, () => v);
          }
        });
        for (const [r, b] of stageBindings) {
          if (b) this.bound.set(r, b);
          else this.bound.delete(r);
        }
      }
      for (const r of oRoots) {
        const idx = hasInner ? this.outerIndex(r.type.shape) : this.outerVars;
        const v = this.let(this.exprAt(r, idx), 'y');
        this.emit(S.store(this.bufOf(r), linear(idx, r.type.shape), v));
        this.bind(r, idx, () => v);
      }
    };
    return this.nested(() => {
      this.top = this.scope;
      if (outerExt.length === 0) { body(); return; }
      this.loops(outerExt, 'o', (os) => {
        this.outerVars.splice(0, this.outerVars.length, ...os);
        body();
      }, 'serial', true);
    });
  }

  /** Binds a cached row: any later inner loop reads it at its own inner index. */
  private bindRow(n: Node, local: string, innerExt: number[], t: Scalar, base: Expr = E.i32(0)): void {
    const self = this;
    this.bound.set(n, {
      get pattern() { return idxKey(unitZero(self.fullIndex(self.outerVars, self.innerVars), n.type.shape)); },
      value: () => E.load(local, E.add(base, linear(self.innerVars, innerExt)), t),
    });
  }
}

/** Loop extents over a conv's window and input channels, or a pooling window. */
function windowExtents(n: Node): readonly number[] {
  if (n.op !== 'conv' && n.op !== 'qconv') return attrsOf(n, 'reduce_window').window;
  const ks = n.src[1]!.type.shape;
  return ks.slice(0, ks.length - 1);
}

export interface LowerOptions {
  /** Program name (entry point). */
  name: string;
}

function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Lowers a fusion plan to a loop-IR program. Update values are written in place into their param when safe. */
export function lower(plan: FusionPlan, options: LowerOptions): Program {
  const g = plan.graph;
  const buffers: Buffer[] = [];
  const bufName = new Map<Node, string>();
  const used = new Set<string>();
  const unique = (base: string) => {
    let name = base, i = 1;
    while (used.has(name)) name = `${base}_${i++}`;
    used.add(name);
    return name;
  };
  const add = (n: Node, base: string, kind: Buffer['kind'], data?: number[]): string => {
    const name = unique(base);
    buffers.push({ name, dtype: n.type.dtype, size: sizeOf(n.type.shape), kind, ...(data ? { data } : {}) });
    bufName.set(n, name);
    return name;
  };
  for (const n of g.inputs) add(n, `in_${sanitize(nodeName(n))}`, 'input');
  for (const n of g.params) add(n, `p_${sanitize(nodeName(n))}`, 'param');
  const outputsOf = new Map<Node, string>();
  for (const o of g.outputs) if (!outputsOf.has(o.node)) outputsOf.set(o.node, o.name);
  // in-place updates: the nest writing the new value may write the param's buffer when nothing reads the old value later
  const inPlace = inPlaceUpdates(plan);
  for (const [value, param] of inPlace) bufName.set(value, bufName.get(param)!);
  for (const n of [...plan.materialized].sort((a, b) => a.id - b.id)) {
    if (bufName.has(n)) continue;
    const out = outputsOf.get(n);
    add(n, out !== undefined ? `out_${sanitize(out)}` : `tmp_${n.id}`, out !== undefined ? 'output' : 'temp');
  }
  const constBuf = (n: Node): string | undefined => {
    const v = attrsOf(n, 'const').value;
    if (v.length === 1) return undefined;
    return bufName.get(n) ?? add(n, `cst_${n.id}`, 'const', [...v]);
  };
  let counter = 0;
  const names = { next: (prefix: string) => `${prefix}${counter++}` };
  let loops = 0;
  const scanContext = (): ScanContext => ({
    bufOf: (n) => (n.op === 'const' ? constBuf(n) : bufName.get(n)),
    addBuffer: (base, dtype, size, kind, data) => {
      const name = unique(base);
      buffers.push({ name, dtype, size, kind, ...(data ? { data: [...data] } : {}) });
      return name;
    },
    id: loops++,
  });
  const outputBuf = new Map<Node, string>();
  const kernels: Kernel[] = plan.kernels.map((k) => {
    counter = 0;
    // a scan loop's kernel (fuse gives it alone) carries how to schedule its body for a target (scheduleScan)
    if (k.nests[0]?.roots[0]?.op === 'scan') return lowerScan(k, scanContext());
    // a scatter-add's kernel (codegen/loop/scatter.ts) writes where its indices say
    const root = k.nests[0]?.roots[0];
    if (root?.op === 'scatter_add') return lowerScatter(k, bufName.get(root)!, (n) => (n.op === 'const' ? constBuf(n) : bufName.get(n)));
    const body = k.nests.flatMap((nest) => new NestEmitter(nest, names, (n) => {
      const b = bufName.get(n);
      if (!b) throw new Error(`lower: %${n.id} ${n.op} has no buffer`);
      return b;
    }, constBuf, (n) => isStored(n, plan.materialized)).lower());
    return { name: k.name, ops: k.ops, body, ...(k.ops[0] === 'allreduce' ? { allreduce: true } : {}) };
  });
  // outputs that are leaves (an input, a param, a constant) are copied into output buffers by a first kernel,
  // before any in-place update can change a param; so are the new values of params that are leaves other than the
  // param itself (another param, which may be updated too, or a read-only input or constant)
  const copies: Stmt[] = [];
  const copyLeaf = (n: Node, base: string, kind: Buffer['kind']): string => {
    const size = sizeOf(n.type.shape), t = scalarOf(n.type.dtype);
    const src = n.op === 'const' ? constBuf(n) : bufName.get(n);
    const out = unique(base);
    buffers.push({ name: out, dtype: n.type.dtype, size, kind });
    if (size === 0) return out;
    const i = E.v('i0');
    const st = stridesOf(n.type.shape);
    const value = src ? E.load(src, i, t)
      : n.op === 'iota' ? E.mod(E.idiv(i, st[attrsOf(n, 'iota').axis]!), n.type.shape[attrsOf(n, 'iota').axis]!)
        : E.c(t, attrsOf(n, 'const').value[0]!);
    copies.push(S.for('i0', size, [S.store(out, i, value)]));
    return out;
  };
  for (const o of g.outputs) {
    if (GroupOp.Leaf.has(o.node.op) && !outputBuf.has(o.node)) outputBuf.set(o.node, copyLeaf(o.node, `out_${sanitize(o.name)}`, 'output'));
  }
  const updateBuf = g.updates.map((u) => {
    if (!GroupOp.Leaf.has(u.value.op) || u.value === u.param) return bufName.get(u.value)!;
    let b = outputBuf.get(u.value);
    if (b === undefined) outputBuf.set(u.value, b = copyLeaf(u.value, `new_${sanitize(nodeName(u.param))}`, 'temp'));
    return b;
  });
  if (copies.length) kernels.unshift({ name: 'k_copy', ops: ['copy'], body: copies });
  const outBuffer = (n: Node) => outputBuf.get(n) ?? bufName.get(n)!;
  return {
    name: options.name,
    buffers,
    kernels,
    inputs: g.inputs.map((n) => ({ name: nodeName(n), buffer: bufName.get(n)! })),
    params: g.params.map((n) => ({ name: nodeName(n), buffer: bufName.get(n)! })),
    outputs: g.outputs.map((o) => ({ name: o.name, buffer: outBuffer(o.node) })),
    updates: g.updates.map((u, i) => ({ name: nodeName(u.param), buffer: updateBuf[i]! })),
  };
}

/**
 * Update values that can be stored straight into their param: computed by a plain nest of the param's shape
 * whose every read of the param is at exactly the element it writes (through elementwise ops and reshapes,
 * which keep the row-major position), read by no other nest in the same or a later kernel. A read anywhere
 * else (a transpose, slice, gather, reduction or contraction of the param) would see elements the nest has
 * already overwritten, and on a GPU race with their writers: such values get a buffer of their own, copied
 * over the param after the call.
 */
function inPlaceUpdates(plan: FusionPlan): Map<Node, Node> {
  const out = new Map<Node, Node>();
  const kernelOf = new Map<NestPlan, number>();
  plan.kernels.forEach((k, i) => k.nests.forEach((n) => kernelOf.set(n, i)));
  const nests = plan.kernels.flatMap((k) => k.nests);
  for (const u of plan.graph.updates) {
    if (!plan.materialized.has(u.value) || GroupOp.Leaf.has(u.value.op)) continue;
    if (plan.graph.outputs.some((o) => o.node === u.value)) continue;
    const writer = nests.find((n) => n.roots.includes(u.value));
    if (!writer || OWN_KERNEL.has(u.value.op) || writer.key.axes.length || writer.key.full.join() !== u.param.type.shape.join()) continue;
    const readsParam = (n: NestPlan) => [...n.nodes].some((x) => x.src.includes(u.param));
    // roots are computed and stored one after the other at each element: a root stored before the update
    // value may read the param's element too, one stored after it may not read the param at all
    const at = writer.roots.indexOf(u.value);
    const safeInWriter = writer.roots.every((r, i) => {
      const how = paramReads(r, u.param, plan.materialized);
      return how === 'none' || (how === 'aligned' && i <= at);
    });
    const laterReaders = nests.filter((n) => n !== writer && kernelOf.get(n)! >= kernelOf.get(writer)! && readsParam(n));
    const otherRoots = plan.graph.updates.filter((v) => v.value === u.value).length > 1;
    if (safeInWriter && !laterReaders.length && !otherRoots) out.set(u.value, u.param);
  }
  return out;
}

/**
 * How root r reads param p through the values it computes: not at all, only at r's own row-major position
 * (elementwise ops of r's shape and reshapes keep it), or elsewhere.
 */
function paramReads(r: Node, p: Node, mat: Set<Node>): 'none' | 'aligned' | 'other' {
  let how: 'none' | 'aligned' | 'other' = 'none';
  const seen = new Set<string>();
  const stack: [Node, boolean][] = [[r, sizeOf(r.type.shape) === sizeOf(p.type.shape)]];
  while (stack.length) {
    const [x, aligned] = stack.pop()!;
    if (x === p) {
      if (!aligned) return 'other';
      how = 'aligned';
      continue;
    }
    if (GroupOp.Leaf.has(x.op) || (x !== r && isStored(x, mat)) || seen.has(`${x.id}|${aligned}`)) continue;
    seen.add(`${x.id}|${aligned}`);
    const keeps = aligned && (GroupOp.Elementwise.has(x.op) || x.op === 'reshape');
    for (const s of x.src) stack.push([s, keeps]);
  }
  return how;
}
