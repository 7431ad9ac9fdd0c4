// float4 copies: a 4-lane unrolled loop that copies 4 consecutive floats (a shared tile's fill, gpu_matmul.ts) is
// rendered as one 16-byte load and store where both addresses are proved 16-byte aligned; anything else stays scalar.
import { E, type Expr, type Stmt } from '../loop/ir.js';
import { operands } from '../loop/analysis.js';
import { substExpr } from '../loop/schedules/loops.js';

type Decl = Extract<Stmt, { k: 'decl' }>;

/** One loop's 4 lanes as a vector copy: indices and guard at lane 0, with the body's decls they read. */
export interface Float4Copy {
  /** the body's decls the indices and guard read (in order), lane 0 substituted */
  readonly decls: readonly Decl[];
  readonly dst: string;
  readonly dstIdx: Expr;
  readonly src: string;
  readonly srcIdx: Expr;
  /** where it is false (the same for every lane) the lanes store `zero` instead (a padded step's zeros) */
  readonly guard?: Expr;
  readonly zero?: Extract<Expr, { k: 'const' }>;
}

/** An index as lane coefficient and residue mod 4 of the rest (undefined: unknown), or undefined if not affine in the lane. */
type LaneForm = { c: number; r: number | undefined };

const mod4 = (x: number) => ((x % 4) + 4) % 4;

/**
 * Whether `aligned(buf)` holds for both arrays and loop l (extent 4, kind unroll) is `decls; store dst[i] =
 * src[j]` (or `c ? src[j] : const`, c not reading the lane) with i and j each `4n + lane`: then lane 0's indices
 * are multiples of 4 and the four lanes copy the 16 bytes from there, as one float4.
 */
export function float4Copy(l: Extract<Stmt, { k: 'for' }>, aligned: (buf: string) => boolean): Float4Copy | undefined {
  if (l.kind !== 'unroll' || l.extent !== 4) return undefined;
  const body = l.body, store = body[body.length - 1];
  if (store?.k !== 'store' || store.value.t !== 'f32' || !body.slice(0, -1).every((s) => s.k === 'decl')) return undefined;
  const decls = new Map((body.slice(0, -1) as Decl[]).map((d) => [d.name, d]));
  const lane = l.v;
  const uses = (e: Expr): boolean => (e.k === 'var' ? e.name === lane || (decls.has(e.name) && uses(decls.get(e.name)!.init)) : operands(e).some(uses));
  const form = (e: Expr): LaneForm | undefined => {
    if (!uses(e)) {
      if (e.k === 'const') return { c: 0, r: mod4(e.v) };
      if (e.k === 'var' && decls.has(e.name)) return form(decls.get(e.name)!.init);
      if (e.k !== 'binary' || e.t !== 'i32' || !['add', 'sub', 'mul'].includes(e.op)) return { c: 0, r: undefined };
    }
    if (e.k === 'var') return e.name === lane ? { c: 1, r: 0 } : form(decls.get(e.name)!.init);
    if (e.k !== 'binary' || e.t !== 'i32') return undefined;
    const a = form(e.a), b = form(e.b);
    if (!a || !b) return undefined;
    const both = (f: (x: number, y: number) => number) => (a.r === undefined || b.r === undefined ? undefined : mod4(f(a.r, b.r)));
    if (e.op === 'add') return { c: a.c + b.c, r: both((x, y) => x + y) };
    if (e.op === 'sub') return { c: a.c - b.c, r: both((x, y) => x - y) };
    if (e.op !== 'mul') return undefined;
    // a product with the lane in it needs a constant factor; a multiple of 4 times anything is a multiple of 4
    if (a.c && b.c) return undefined;
    const k = a.c ? e.b : e.a;
    if ((a.c || b.c) && k.k !== 'const') return undefined;
    const c = a.c ? a.c * (k as { v: number }).v : b.c ? b.c * (k as { v: number }).v : 0;
    return { c, r: a.r === 0 || b.r === 0 ? 0 : both((x, y) => x * y) };
  };
  const lane4 = (idx: Expr) => {
    const f = form(idx);
    return !!f && f.c === 1 && f.r === 0;
  };
  // the value: a load, or a guard choosing between a load and a constant
  let v: Expr = store.value;
  while (v.k === 'var' && decls.has(v.name)) v = decls.get(v.name)!.init;
  let guard: Expr | undefined, zero: Extract<Expr, { k: 'const' }> | undefined;
  if (v.k === 'select' && v.b.k === 'const' && !uses(v.c)) [guard, zero, v] = [v.c, v.b, v.a];
  while (v.k === 'var' && decls.has(v.name)) v = decls.get(v.name)!.init;
  if (v.k !== 'load' || v.t !== 'f32' || v.buf === store.buf || !lane4(v.idx) || !lane4(store.idx) || !aligned(v.buf) || !aligned(store.buf)) return undefined;
  // lane 0: the decls the indices and guard read, in order
  const at0 = new Map([[lane, E.i32(0)]]);
  const need = new Set<string>();
  const visit = (e: Expr): void => {
    if (e.k === 'var' && decls.has(e.name) && !need.has(e.name)) { need.add(e.name); visit(decls.get(e.name)!.init); }
    operands(e).forEach(visit);
  };
  [v.idx, store.idx, ...(guard ? [guard] : [])].forEach(visit);
  return {
    decls: [...decls.values()].filter((d) => need.has(d.name)).map((d) => ({ ...d, init: substExpr(d.init, at0) })),
    dst: store.buf, dstIdx: substExpr(store.idx, at0), src: v.buf, srcIdx: substExpr(v.idx, at0),
    ...(guard ? { guard: substExpr(guard, at0), zero } : {}),
  };
}
