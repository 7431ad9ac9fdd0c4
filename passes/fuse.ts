// fuse: decides which values are materialized and groups the rest into loop nests and kernels.
//
// Every non-leaf node is either materialized (written to a buffer) or inlined into the nests that use it.
// A nest iterates an outer space O; "row" nests (softmax, layer norm, cross-entropy) also have an inner
// space I over the reduced axes A of a full shape F, with row reductions as stages. Contractions (matmul,
// conv, windows, reductions) whose value is needed at the nest's own index are computed in the nest
// (matmul epilogues, the optimizer update fused with its gradient's contraction). Nests run in order;
// independent nests at the same ALAP level form one kernel (horizontal fusion).
import { type Graph, type Node, topoSort } from '../ir/graph.js';
import { GroupOp, type Op, attrsOf, isReduceOp } from '../ir/ops.js';
import { type Shape, shapesEqual } from '../ir/types.js';
import { loopKey } from '../ir/scan.js';

/** Ops that need a loop of their own (they cannot be computed as one expression at an index). */
export const CONTRACTIONS = new Set<Op>(['matmul', 'qmatmul', 'conv', 'qconv', 'reduce_window', 'reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod', 'argmax', 'argmin']);

export function isContraction(n: Node): boolean {
  return CONTRACTIONS.has(n.op);
}

/**
 * Ops that are a kernel of their own, reading their materialized operands from memory: a scan loop
 * (codegen/loop/scan.ts), a scatter-add (codegen/loop/scatter.ts), whose writes go where its indices say, and an
 * all-reduce, whose buffer the runtime sums over the processes after the kernel (Kernel.allreduce).
 */
export const OWN_KERNEL = new Set<Op>(['scan', 'scatter_add', 'allreduce']);

/** Iteration structure of a nest: full shape F and the axes A reduced by its row stages (empty: plain nest). */
export interface NestKey {
  readonly full: Shape;
  readonly axes: readonly number[];
}

export interface NestPlan {
  readonly key: NestKey;
  /** Materialized values this nest writes, in topological order. */
  readonly roots: Node[];
  /**
   * Contractions computed inside the nest (row reductions, epilogue contractions, row caches) and costly elementwise
   * values cached per row (withRowCaches), topological order.
   */
  readonly stages: Node[];
  /** Every node the nest computes (stages, roots and inlined injective ops). */
  readonly nodes: Set<Node>;
}

export interface KernelPlan {
  readonly name: string;
  readonly nests: NestPlan[];
  readonly ops: string[];
}

export interface FusionPlan {
  readonly graph: Graph;
  readonly materialized: Set<Node>;
  readonly kernels: KernelPlan[];
}

function keyOf(k: NestKey): string {
  let s = keyText.get(k);
  if (s === undefined) keyText.set(k, s = `${k.full.join(',')}|${k.axes.join(',')}`);
  return s;
}
const keyText = new WeakMap<NestKey, string>();

/** Shape of a row reduction's output relative to F: dims in A dropped or kept as 1. */
function isReducedShape(s: Shape, key: NestKey): boolean {
  const kept = key.full.filter((_, i) => !key.axes.includes(i));
  const keepdims = key.full.map((d, i) => (key.axes.includes(i) ? 1 : d));
  return shapesEqual(s, kept) || shapesEqual(s, keepdims);
}

/**
 * A broadcast of a row reduction's value over its rows: element [outer, inner] reads the value at [outer]. A
 * broadcast aligns trailing axes, so a value without the reduced axes is read at the outer index only when the
 * reduced axes lead ([3] broadcast to [3, 3] is read at the inner index of a row over axis 1).
 */
function isRowBroadcast(x: Node, key: NestKey): boolean {
  if (x.op !== 'broadcast' || !key.axes.length || !shapesEqual(x.type.shape, key.full)) return false;
  const ss = x.src[0]!.type.shape, off = key.full.length - ss.length;
  if (!isReducedShape(ss, key)) return false;
  const outer = key.full.map((_, i) => i).filter((i) => !key.axes.includes(i));
  return ss.every((d, i) => d === 1 || (off === 0 ? !key.axes.includes(i) : outer[i] === i + off));
}

function stripMovement(n: Node): Node {
  let x = n;
  while (GroupOp.Movement.has(x.op) && x.op !== 'concat' && x.op !== 'gather' && x.op !== 'pad') x = x.src[0]!;
  return x;
}

/**
 * Scalar values computed without loops (e.g. the optimizer step count) are recomputed by every nest that
 * uses them instead of being read back, so they create no dependency between nests.
 */
export function isTiny(n: Node): boolean {
  let t = tinyMemo.get(n);
  if (t === undefined) {
    t = n.type.shape.every((d) => d === 1) && !isContraction(n) && !OWN_KERNEL.has(n.op) && n.src.every((s) => GroupOp.Leaf.has(s.op) || isTiny(s));
    tinyMemo.set(n, t);
  }
  return t;
}
const tinyMemo = new WeakMap<Node, boolean>();

/** Whether traversal stops at x: it is materialized and read back (not a recomputed tiny value). */
export function isStored(x: Node, mat: Set<Node>): boolean {
  return mat.has(x) && !isTiny(x);
}

/** Non-leaf, non-materialized nodes reachable from n (n included), not descending into materialized nodes. */
function cone(n: Node, mat: Set<Node>, stopAtContractions: boolean): Node[] {
  const out: Node[] = [];
  const seen = new Set<Node>();
  const stack = [n];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x) || GroupOp.Leaf.has(x.op)) continue;
    seen.add(x);
    if (x !== n && isStored(x, mat)) continue;
    out.push(x);
    if (stopAtContractions && x !== n && isContraction(x)) continue;
    for (const s of x.src) stack.push(s);
  }
  return out;
}

/**
 * Whether x reduces rows of key's structure: its operand is of the full shape, reduced over exactly key's axes
 * (sorted, as canonicalize leaves them). Fusion makes such a reduction a stage of a row nest; lowering gives it an
 * accumulator per row.
 */
export function isRowReduce(x: Node, key: NestKey): boolean {
  return key.axes.length > 0 && isReduceOp(x.op)
    && shapesEqual(x.src[0]!.type.shape, key.full) && shapesEqual(attrsOf(x, x.op).axes, key.axes);
}

/**
 * The nest structure a root asks for: a row nest if a row reduction sits at its top level, else its own shape.
 * A contraction root reads its operands inside its own loop, so it takes a row structure found among them only
 * when it is itself a reduction of those rows (a shape that merely matches, e.g. through unit axes, is no reason).
 */
function rootKey(root: Node, mat: Set<Node>): NestKey {
  for (const x of cone(root, mat, true)) {
    if (x === root || !isReduceOp(x.op)) continue;
    const full = x.src[0]!.type.shape, { axes } = attrsOf(x, x.op);
    const key = { full, axes };
    if (isContraction(root) ? isRowReduce(root, key) : shapesEqual(root.type.shape, full) || isReducedShape(root.type.shape, key)) return key;
  }
  return { full: root.type.shape, axes: [] };
}

/**
 * Plans the stages of one nest for its roots, or returns the node that must be materialized first
 * (a contraction that cannot be computed at the nest's index).
 */
function planNest(key: NestKey, roots: Node[], mat: Set<Node>, order: Map<Node, number>): NestPlan | Node {
  const stages = new Set<Node>();
  const nodes = new Set<Node>();
  const hasInner = key.axes.length > 0;
  // `aligned`: the value is read at the nest's own index (only elementwise ops, unit reshapes and row
  // broadcasts on the way); a contraction can be computed in the nest only where it is read aligned
  const visit = (n: Node, level: 'outer' | 'inner' | 'operand'): Node | undefined => {
    const stack: [Node, 'outer' | 'inner' | 'operand', boolean][] = [[n, level, true]];
    const seen = new Set<number>();
    while (stack.length) {
      const [x, lv, aligned] = stack.pop()!;
      // other roots of this nest are materialized too: they are read at the same index after being computed
      if (GroupOp.Leaf.has(x.op) || (isStored(x, mat) && x !== n)) continue;
      const tag = x.id * 6 + (lv === 'outer' ? 0 : lv === 'inner' ? 2 : 4) + (aligned ? 1 : 0);
      if (seen.has(tag)) continue;
      seen.add(tag);
      nodes.add(x);
      if (!isContraction(x)) {
        const keeps = aligned && (GroupOp.Elementwise.has(x.op) || isUnitReshape(x)
          || isRowBroadcast(x, key));
        for (const s of x.src) stack.push([s, lv, keeps]);
        continue;
      }
      if (lv === 'operand' || !aligned) return x; // computed elsewhere: inside another loop, or at other indices
      if (isRowReduce(x, key)) {
        stages.add(x);
        stack.push([x.src[0]!, 'inner', true]);
        continue;
      }
      const atOuter = hasInner ? isReducedShape(x.type.shape, key) : shapesEqual(x.type.shape, key.full);
      // row caches hold matmul/window values; a reduction of another row structure gets its own nest, and so does
      // a conv (its own nest runs the register-blocked conv kernel: measured 6x faster than a row of it on wasm)
      const atInner = hasInner && shapesEqual(x.type.shape, key.full) && (x.op === 'matmul' || x.op === 'reduce_window');
      if (atOuter || (lv === 'inner' && atInner)) {
        stages.add(x);
        // a max pooling of an int8 conv computes the conv's accumulators at its window's taps (poolsBeforeRequantize)
        const fused = pooledQconv(x, (y) => mat.has(y));
        if (fused) {
          nodes.add(fused);
          for (const s of fused.src) {
            if (!GroupOp.Leaf.has(s.op) && !mat.has(s) && cone(s, mat, false).some(isContraction)) return s;
            stack.push([s, 'operand', false]);
          }
          continue;
        }
        for (const s of x.src) {
          const core = stripMovement(s);
          // operands are read inside the contraction's own loop: they must not hide another contraction
          if (!GroupOp.Leaf.has(core.op) && !mat.has(core) && cone(core, mat, false).some(isContraction)) return core;
          stack.push([s, 'operand', false]);
        }
        continue;
      }
      return x;
    }
    return undefined;
  };
  for (const r of roots) {
    const lv = hasInner && shapesEqual(r.type.shape, key.full) ? 'inner' : 'outer';
    const need = visit(r, lv);
    if (need) return need;
  }
  const byOrder = (a: Node, b: Node) => order.get(a)! - order.get(b)!;
  return { key, roots: [...roots].sort(byOrder), stages: [...stages].sort(byOrder), nodes };
}

/**
 * The qconv whose accumulators max pooling x takes before requantizing them once (lower.ts), where that equals pooling
 * its requantized values bit for bit: requantize (ir/quant.ts) is non-decreasing in the accumulator for a multiplier
 * >= 0 and a shift <= 0 (a left shift wraps), per channel, which a pooling window keeps; and every window reads at
 * least one tap (a window of padding alone is the identity -128, not requantize of any accumulator). Windows that
 * do not overlap (stride >= window), so no conv output is computed twice. The seed CNN's first conv: a quarter of its
 * requantizes, and no int8 tensor between the conv and its pooling.
 */
export function pooledQconv(x: Node, stored: (n: Node) => boolean): Node | undefined {
  const q = x.src[0];
  if (x.op !== 'reduce_window' || attrsOf(x, 'reduce_window').kind !== 'max' || q?.op !== 'qconv' || stored(q)) return undefined;
  const [mult, shift] = [q.src[3]!, q.src[4]!];
  if (mult.op !== 'const' || shift.op !== 'const') return undefined;
  if (attrsOf(mult, 'const').value.some((v) => v < 0) || attrsOf(shift, 'const').value.some((v) => v > 0)) return undefined;
  // windows that overlap would compute the conv outputs they share once per window (2x2/1: 4 times each)
  const { window, strides } = attrsOf(x, 'reduce_window');
  if (window.some((w, d) => w > strides[d]!)) return undefined;
  return poolTapsEveryWindow(x) ? q : undefined;
}

/** Whether every window of a reduce_window reads at least one element of its operand (its padding is not a whole window). */
export function poolTapsEveryWindow(x: Node): boolean {
  const { window, strides, padding } = attrsOf(x, 'reduce_window'), xs = x.src[0]!.type.shape, os = x.type.shape;
  return window.every((w, d) => {
    const n = xs[d + 1]!;
    for (let o = 0; o < os[d + 1]!; o++) {
      const first = o * strides[d]! - padding[d]![0];
      if (first + w - 1 < 0 || first > n - 1) return false;
    }
    return true;
  });
}

/** A reshape that only adds or removes unit dimensions (it keeps every element's position in its row). */
function isUnitReshape(x: Node): boolean {
  const sq = (s: Shape) => s.filter((d) => d !== 1);
  return x.op === 'reshape' && shapesEqual(sq(x.src[0]!.type.shape), sq(x.type.shape));
}

/**
 * How root r reads each value its nest reads from memory: only elementwise at r's own index, or otherwise (a
 * value absent from the map is not read). One walk answers for every value, so grouping asks it once per root.
 */
export function readsOf(r: Node, mat: Set<Node>, key: NestKey): Map<Node, 'elementwise' | 'other'> {
  const how = new Map<Node, 'elementwise' | 'other'>();
  // a value reached both directly and through a movement reads its operands both ways: seen per (value, directness)
  const seen = [new Set<Node>(), new Set<Node>()];
  const walk = (x: Node, direct: boolean): void => {
    const done = seen[direct ? 1 : 0]!;
    if (done.has(x)) return;
    done.add(x);
    // a row reduction of the nest reads its operand at the row's own (outer, inner) index
    const ew = direct && (GroupOp.Elementwise.has(x.op) || isRowReduce(x, key) || isUnitReshape(x) || isRowBroadcast(x, key));
    for (const s of x.src) {
      if (mat.has(s)) how.set(s, ew && how.get(s) !== 'other' ? 'elementwise' : 'other');
      // a root q of the group is not walked through when asking about q; below q lies nothing that reaches q
      if (!isStored(s, mat) && !GroupOp.Leaf.has(s.op)) walk(s, ew);
    }
  };
  walk(r, true);
  return how;
}

/**
 * What grouping asks of a root, all from its cone. The cone stops at materialized values, so an entry holds until
 * a value inside the cone is materialized (fuse drops it then): rounds of materialization reuse the rest.
 */
export interface RootInfo {
  readonly cone: Set<Node>;
  /** The materialized values its nest reads (its cone's stored operands). */
  readonly front: Node[];
  readonly contractions: Set<Node>;
  readonly key: NestKey;
  /** readsOf by nest key text. */
  readonly reads: Map<string, Map<Node, 'elementwise' | 'other'>>;
}

export function rootInfo(m: Node, mat: Set<Node>): RootInfo {
  const cn = cone(m, mat, false);
  const front = new Set<Node>();
  for (const x of cn) for (const s of x.src) if (s !== m && isStored(s, mat)) front.add(s);
  return { cone: new Set(cn), front: [...front], contractions: new Set(cn.filter(isContraction)), key: rootKey(m, mat), reads: new Map() };
}

export interface Group {
  readonly key: NestKey;
  readonly roots: Node[];
}

/**
 * Groups of roots in the making, with the groups each depends on (by at least one step: a group steps to the groups
 * of the values its roots read) kept as bitsets. Grouping never closes a cycle, so adding root r to a group changes
 * what that group and the groups depending on it depend on, and nothing else.
 */
export class Groups {
  readonly list: Group[] = [];
  readonly groupOf = new Map<Node, Group>();
  private readonly index = new Map<Group, number>();
  private readonly below: Uint32Array[] = [];
  private readonly words: number;

  constructor(private readonly front: Map<Node, Node[]>) {
    this.words = (front.size >> 5) + 1;
  }

  /**
   * Whether adding root r to group gr would make nests depend on each other: r reads a value x outside gr whose
   * group depends on gr. Every value read is an earlier root, so it has its group.
   */
  closesCycle(r: Node, gr: Group): boolean {
    return this.front.get(r)!.some((x) => {
      const h = this.groupOf.get(x)!;
      return h !== gr && this.dependsOn(h, gr);
    });
  }

  /** Whether group h depends on group on by at least one step (not through h reading its own roots). */
  dependsOn(h: Group, on: Group): boolean {
    const i = this.index.get(on), j = this.index.get(h);
    return i !== undefined && j !== undefined && (this.below[j]![i >> 5]! >>> (i & 31) & 1) === 1;
  }

  add(r: Node, gr: Group): void {
    let i = this.index.get(gr);
    if (i === undefined) {
      this.index.set(gr, i = this.list.length);
      this.list.push(gr);
      this.below.push(new Uint32Array(this.words));
    }
    const more = new Uint32Array(this.words);
    for (const x of this.front.get(r)!) {
      const j = this.index.get(this.groupOf.get(x)!)!;
      if (j === i) continue; // a group reading its own roots
      more[j >> 5]! |= 1 << (j & 31);
      for (let w = 0; w < this.words; w++) more[w]! |= this.below[j]![w]!;
    }
    for (let h = 0; h < this.list.length; h++) {
      const b = this.below[h]!;
      if (h !== i && (b[i >> 5]! >>> (i & 31) & 1) === 0) continue;
      for (let w = 0; w < this.words; w++) b[w]! |= more[w]!;
    }
    gr.roots.push(r);
    this.groupOf.set(r, gr);
  }
}

/** Nests that depend on each other (a fault of grouping, undone by giving their roots nests of their own). */
class NestCycle extends Error {
  constructor(readonly nests: NestPlan[]) {
    super(`fuse: nests depend on each other (${nests.map((m) => m.roots.map((r) => `%${r.id} ${r.op}`).join(' ')).join(' | ')})`);
  }
}

/** Most ops one inlined value may expand to, counting a shared operand once per use (seed models stay under 250). */
export const MAX_INLINED_OPS = 256;

/**
 * Inlining recomputes a value at each use, so a chain of shared values (an unrolled LSTM's gradient) expands
 * exponentially: where a value's expansion passes MAX_INLINED_OPS, its largest inlined operands are
 * materialized instead (read back once computed).
 */
function boundInlining(topo: readonly Node[], mat: Set<Node>): void {
  const size = new Map<Node, number>();
  const use = (x: Node) => (GroupOp.Leaf.has(x.op) ? 0 : mat.has(x) || isContraction(x) ? 1 : size.get(x)!);
  for (const n of topo) {
    if (GroupOp.Leaf.has(n.op)) continue;
    let s = 1 + n.src.reduce((a, x) => a + use(x), 0);
    while (s > MAX_INLINED_OPS) {
      const big = n.src.filter((x) => use(x) > 1 && !isTiny(x)).sort((a, b) => use(b) - use(a))[0];
      if (!big) break;
      s -= use(big) - 1;
      mat.add(big);
    }
    size.set(n, s);
  }
}

/** Plans fusion for a graph: materialization to a fixed point, nests, then kernels by ALAP level. */
export function fuse(g: Graph): FusionPlan {
  const order = new Map<Node, number>();
  const topo = topoSort(g);
  topo.forEach((n, i) => order.set(n, i));
  const mat = new Set<Node>();
  for (const o of g.outputs) if (!GroupOp.Leaf.has(o.node.op)) mat.add(o.node);
  for (const u of g.updates) if (!GroupOp.Leaf.has(u.value.op)) mat.add(u.value);
  // a scan loop, a scatter-add or an all-reduce is a kernel of its own reading its operands from memory
  for (const n of topo) {
    if (!OWN_KERNEL.has(n.op)) continue;
    mat.add(n);
    for (const s of n.src) if (!GroupOp.Leaf.has(s.op)) mat.add(s);
  }
  boundInlining(topo, mat);
  // roots that could not be placed in the nest they were grouped into: each gets a plain nest of its own shape,
  // where any root can be computed (its contractions at the nest's index, operands hiding more materialized)
  const alone = new Set<Node>();
  const infos = new Map<Node, RootInfo>();
  for (let round = 0; round < 10_000; round++) {
    const nests: NestPlan[] = [];
    let retry: Node | undefined;
    // group roots by nest key, merging roots that share a computed contraction or use each other,
    // unless the root depends on the group through a value computed outside it (that would be a cycle)
    const front = new Map<Node, Node[]>();
    for (const m of mat) {
      let i = infos.get(m);
      if (!i) infos.set(m, i = rootInfo(m, mat));
      front.set(m, i.front);
    }
    const contractionsOf = (q: Node) => infos.get(q)!.contractions;
    const grouping = new Groups(front), groups = grouping.list, add = (r: Node, gr: Group) => grouping.add(r, gr);
    for (const r of [...mat].sort((a, b) => order.get(a)! - order.get(b)!)) {
      if (alone.has(r) || (OWN_KERNEL.has(r.op) && r.op !== 'scan')) {
        add(r, { key: { full: r.type.shape, axes: [] }, roots: [] });
        continue;
      }
      if (r.op === 'scan') {
        // the results of one loop (same operands and attributes but `output`) form one nest
        const key = `${r.src.map((s) => s.id).join(',')}|${loopKey(r.attrs)}`;
        const gr = groups.find((q) => q.roots[0]!.op === 'scan' && `${q.roots[0]!.src.map((s) => s.id).join(',')}|${loopKey(q.roots[0]!.attrs)}` === key);
        add(r, gr ?? { key: { full: r.type.shape, axes: [] }, roots: [] });
        continue;
      }
      const info = infos.get(r)!, key = info.key, rc = info.contractions;
      // a plain root of a row nest's outer shape may join that row nest
      const fits = (gk: NestKey) => keyOf(gk) === keyOf(key) || (key.axes.length === 0 && gk.axes.length > 0 && isReducedShape(r.type.shape, gk));
      const reads = (gk: NestKey) => {
        let m = info.reads.get(keyOf(gk));
        if (!m) info.reads.set(keyOf(gk), m = readsOf(r, mat, gk));
        return m;
      };
      const target = groups.find((gr) => fits(gr.key) && !gr.roots.some((q) => alone.has(q) || OWN_KERNEL.has(q.op))
        && gr.roots.every((q) => reads(gr.key).get(q) !== 'other')
        && gr.roots.some((q) => reads(gr.key).get(q) === 'elementwise' || [...contractionsOf(q)].some((c) => rc.has(c)))
        && !grouping.closesCycle(r, gr));
      add(r, target ?? { key, roots: [] });
    }
    for (const gr of groups) {
      const p = planNest(gr.key, gr.roots, mat, order);
      if ('key' in p) nests.push(p);
      else {
        retry = p;
        break;
      }
    }
    if (!retry) {
      // a contraction computed by two nests is computed once instead
      const owners = new Map<Node, number>();
      for (const n of nests) for (const s of n.stages) owners.set(s, (owners.get(s) ?? 0) + 1);
      retry = [...owners].find(([s, c]) => c > 1 && !mat.has(s))?.[0];
    }
    if (!retry) {
      try {
        return { graph: g, materialized: mat, kernels: formKernels(nests.map((n) => withRowCaches(n, mat, order)), mat) };
      } catch (err) {
        if (!(err instanceof NestCycle)) throw err;
        const roots = err.nests.flatMap((n) => n.roots);
        if (roots.every((r) => alone.has(r))) throw err;
        for (const r of roots) alone.add(r);
        continue;
      }
    }
    if (alone.has(retry)) throw new Error(`fuse: cannot place %${retry.id} ${retry.op} in any loop nest`);
    if (mat.has(retry)) alone.add(retry);
    else {
      mat.add(retry);
      for (const [m, i] of infos) if (m !== retry && i.cone.has(retry)) infos.delete(m);
    }
  }
  throw new Error('fuse: no fixed point of materialization after 10,000 rounds');
}

/**
 * Elementwise ops worth a row cache (computing them costs more than a store and a load: a function call or a
 * polynomial on CPUs without a vector form, a divide).
 */
export const COSTLY = new Set<Op>(['exp', 'log', 'log1p', 'tanh', 'erf', 'sin', 'cos', 'sqrt', 'rsqrt', 'recip', 'div', 'pow']);

/** The longest row a row cache of an elementwise value holds (a local array per row: 16 KiB of f32). */
export const MAX_CACHED_ROW = 4096;

/**
 * Recompute or cache: a row nest runs one loop over the row per row reduction, then one for its full-shape roots,
 * and each loop recomputes every value it inlines (softmax + cross-entropy + its gradient read exp(x - max) in 7
 * loops). A costly elementwise value of the full shape that two or more loops read is computed once per row into a
 * row cache instead (a stage: lowering stores it into a local row after the stages it reads and binds later loops
 * to it). The same operations in the same order: results stay bit for bit. Chosen from the latest value down, as a
 * cached value's own loop is then one more reader of the values below it.
 */
function withRowCaches(p: NestPlan, mat: Set<Node>, order: Map<Node, number>): NestPlan {
  const key = p.key, inner = key.axes.reduce((m, a) => m * key.full[a]!, 1);
  if (!key.axes.length || inner > MAX_CACHED_ROW) return p;
  const isFull = (x: Node) => shapesEqual(x.type.shape, key.full);
  const roots = new Set(p.roots);
  const cached: Node[] = [];
  // the values a loop reads at its row index, starting from `from`, not descending into cached values
  const reach = (from: readonly Node[]): Set<Node> => {
    const seen = new Set<Node>(), stack = [...from];
    while (stack.length) {
      const x = stack.pop()!;
      if (seen.has(x) || GroupOp.Leaf.has(x.op) || !isFull(x) || isContraction(x) || (isStored(x, mat) && !roots.has(x))) continue;
      seen.add(x);
      if (cached.includes(x) && !from.includes(x)) continue;
      if (GroupOp.Elementwise.has(x.op) || isUnitReshape(x)) for (const s of x.src) stack.push(s);
    }
    return seen;
  };
  const reductions = p.stages.filter((s) => isRowReduce(s, key)).map((s) => [s.src[0]!]);
  const fullRoots = p.roots.filter(isFull);
  // (not a tiny value: lowering computes it once, hoisted out of every loop, where no row cache is in scope)
  const candidates = [...p.nodes].filter((x) => COSTLY.has(x.op) && isFull(x) && !isContraction(x) && !isTiny(x)).sort((a, b) => order.get(b)! - order.get(a)!);
  for (const c of candidates) {
    const loops = [...reductions, ...(fullRoots.length ? [fullRoots] : []), ...cached.map((x) => x.src)];
    if (loops.filter((l) => reach(l).has(c)).length >= 2) cached.push(c);
  }
  if (!cached.length) return p;
  return { ...p, stages: [...p.stages, ...cached].sort((a, b) => order.get(a)! - order.get(b)!) };
}

/** Horizontal fusion: each nest gets its ALAP level; nests of one level form one kernel. */
function formKernels(nests: NestPlan[], mat: Set<Node>): KernelPlan[] {
  const writer = new Map<Node, NestPlan>();
  for (const n of nests) for (const r of n.roots) writer.set(r, n);
  const deps = new Map<NestPlan, Set<NestPlan>>();
  for (const n of nests) {
    const d = new Set<NestPlan>();
    for (const x of n.nodes) for (const s of x.src) {
      // a kernel of its own reads its operands from memory, tiny ones too (which other nests recompute)
      const w = isStored(s, mat) || (OWN_KERNEL.has(x.op) && mat.has(s)) ? writer.get(s) : undefined;
      if (w && w !== n) d.add(w);
    }
    deps.set(n, d);
  }
  // ASAP depth first, then push every nest as late as its consumers allow
  const depth = new Map<NestPlan, number>();
  const onStack = new Set<NestPlan>();
  const asap = (n: NestPlan): number => {
    if (depth.has(n)) return depth.get(n)!;
    if (onStack.has(n)) throw new NestCycle([...onStack]);
    onStack.add(n);
    const v = 1 + Math.max(-1, ...[...deps.get(n)!].map(asap));
    depth.set(n, v);
    onStack.delete(n);
    return v;
  };
  nests.forEach(asap);
  const last = Math.max(0, ...depth.values());
  const level = new Map<NestPlan, number>();
  for (const n of [...nests].sort((a, b) => depth.get(b)! - depth.get(a)!)) {
    const consumers = nests.filter((m) => deps.get(m)!.has(n));
    level.set(n, consumers.length ? Math.min(...consumers.map((m) => level.get(m)!)) - 1 : last);
  }
  const kernels: KernelPlan[] = [];
  for (let l = 0; l <= last; l++) {
    const all = nests.filter((n) => level.get(n) === l);
    // each scan loop (its statements in a serial time loop), scatter-add and all-reduce is a kernel of its own
    for (const n of all) {
      const op = n.roots[0]!.op;
      if (OWN_KERNEL.has(op)) kernels.push({ name: `k${kernels.length}_${op}`, nests: [n], ops: [op] });
    }
    const ns = all.filter((n) => !OWN_KERNEL.has(n.roots[0]!.op));
    if (!ns.length) continue;
    const ops = [...new Set(ns.flatMap((n) => [...n.nodes].map((x) => x.op)))];
    const main = ops.filter((o) => CONTRACTIONS.has(o as Op));
    kernels.push({ name: `k${kernels.length}_${(main.length ? main : ops).slice(0, 3).join('_')}`, nests: ns, ops });
  }
  return kernels;
}
