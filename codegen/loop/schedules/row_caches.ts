// Recipe: matmul row caches. A matmul of a nest's full shape accumulates a whole row at once in i-k-j order
// (row = 0; for k: row[j] += A[i, k] * B[k, j]: contiguous, vectorizable, the same sums in the same order):
// - in a plain nest of such matmuls, each becomes a row cache over the last axis (cacheWrite);
// - in a nest with inner axes, a matmul lowered into a row cache accumulates in it in place (accumulateInto);
// and on CPUs the matmuls that read nothing the nest computes accumulate R rows together (R independent add chains
// per k; R chosen so their vectors fit the registers, 16 by default), the rest of the nest then running row by row (unrolled);
// a column operand the row cannot read as lanes (A·Bᵀ: attention's scores Q·Kᵀ) is read once per k for the R rows.
import { S, type Stmt } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { accumulateInto, cacheWrite } from './cache_write.js';
import { fission } from './fission.js';
import type { Recipe } from './index.js';
import { unroll } from './kinds.js';
import { liftLocal } from './lift_local.js';
import { cacheRead } from './cache_read.js';
import { type For, ScheduleError, loopOf, readsOf } from './loops.js';
import { type Reduction, localArrays, matmulOperands, outerChain, reductionAt, reductionsOf, storesFullShape } from './nests.js';
import type { Schedule } from './primitive.js';
import { reorder } from './reorder.js';
import { split } from './split.js';
import { matmulTops } from './gpu_matmul.js';
import { vectorLegal } from './vectorize.js';

/** Rows per block: R rows' vectors (8 rows at most, caps.rowAccumulators registers in all, 16 by default) dividing the rows. */
export function rowBlock(rows: number, rowSize: number, matmuls: number, caps: TargetCaps): number {
  const vecs = Math.ceil(rowSize / caps.vectorWidth) * matmuls;
  return [8, 4, 2].find((r) => rows % r === 0 && r * vecs <= (caps.rowAccumulators ?? 16)) ?? 1;
}

/** Whether the statements of a reduction read any of the names. */
function readsAny(stmts: readonly Stmt[], r: Reduction, names: readonly string[]): boolean {
  const reads = readsOf(stmts.slice(r.start + 1, r.end + 1));
  return names.some((n) => n !== r.acc && reads.has(n));
}

const prefix = (v: string) => v.replace(/\d+$/, '');

/**
 * In an R-row accumulation `for k { for m (R rows) { for r (a row) { ... } } }` whose row loop cannot be vector lanes,
 * the values of its body that vary along the row (a column operand read across B's rows: Bᵀ) read once per k into a
 * register array before the R rows (cacheRead) when that makes the row loop lanes: one gather of a row per k and R
 * vector products, instead of R x row unrolled scalar products (the seed Transformer's Q·Kᵀ: 8 x 16 per k, 9,000
 * lines of IR per kernel).
 */
function cacheColumns(s: Schedule, k: string, m: string, r: string, caps: TargetCaps): void {
  const row = loopOf(s.body, r);
  if (vectorLegal(row, caps) === undefined) return;
  const along = row.body.flatMap((d) => (d.k === 'decl' && readsOf([d]).has(r) ? [d.name] : []));
  s.attempt(() => {
    for (const value of along) s.apply(cacheRead, { outer: m, inner: r, value, local: s.fresh('b'), fill: s.fresh('c'), at: k });
    if (vectorLegal(loopOf(s.body, r), caps) !== undefined) throw new ScheduleError(`loop '${r}' is no vector loop with its columns cached`);
  });
}

/**
 * A row cache's accumulation in i-k-j order. `levels` (outermost first: R-row loops, then the row's loops) is a
 * perfect nest whose innermost body starts with the cache's init store, then its reduction (`steps` statements,
 * the reduction's loops `ks` (a perfect chain, outermost first) or one step); each level is distributed over init,
 * reduction and what follows, ks move outside the reduction's levels, and the R-row loops of init and reduction are
 * unrolled; with `caps` (a CPU's), R rows' column operand may be cached per step (cacheColumns). Returns the levels of
 * what follows (empty names where nothing follows).
 */
export function rowOrder(s: Schedule, levels: readonly string[], rows: number, steps: number, ks: readonly string[], caps?: TargetCaps): string[] {
  const mids: string[] = [], rests: string[] = [];
  for (let d = levels.length - 1; d >= 0; d--) {
    const l = loopOf(s.body, levels[d]!);
    const first = d === levels.length - 1 ? steps : 1;
    const tail = l.body.length > 1 + first;
    // (R-row loops: m where rows accumulate, q for the rest, run row by row; r along a row)
    const row = d < rows;
    const names = [s.fresh(row ? 'm' : 'r'), ...(tail ? [s.fresh(row ? 'q' : 'r')] : [])];
    s.apply(fission, { loop: l.v, at: tail ? [1, 1 + first] : [1], names, ...(row || prefix(l.v) === 'r' ? {} : { first: s.fresh('r') }) });
    mids.unshift(names[0]!);
    rests.unshift(tail ? names[1]! : '');
  }
  if (ks.length) s.apply(reorder, { loops: [...ks, ...mids] });
  const k = ks[ks.length - 1];
  if (k && rows && levels.length === rows + 1 && caps && !caps.gpu) cacheColumns(s, k, mids[rows - 1]!, mids[rows]!, caps);
  if (rows) s.apply(unroll, { loops: [...levels.slice(0, rows), ...mids.slice(0, rows)] });
  return rests;
}

/** The reductions of a plain nest's body when all are full-shape matmuls, then an epilogue; else undefined. */
function plainMatmuls(chain: readonly For[], locals: ReadonlySet<string>): Reduction[] | undefined {
  const j = chain[chain.length - 1]!, body = j.body;
  const rs = reductionsOf(body);
  if (!rs.length || !rs.every((r) => matmulOperands(r))) return undefined;
  if (rs.some((r, i) => r.start !== (i ? rs[i - 1]!.end + 1 : 0))) return undefined;
  const epi = body.slice(rs[rs.length - 1]!.end + 1);
  if (epi.some((s) => s.k !== 'decl' && s.k !== 'store') || !storesFullShape(epi, chain, locals)) return undefined;
  // a matmul of the full shape reads the last loop (unless it has one iteration)
  return rs.every((r) => j.extent === 1 || readsAny(body, r, [j.v])) ? rs : undefined;
}

/** Row caches of a plain nest of full-shape matmuls (cached over the last axis); whether the nest was one. */
function plainRows(s: Schedule, top: For, caps: TargetCaps): boolean {
  const chain = outerChain(top);
  const rs = plainMatmuls(chain, localArrays(s.body));
  if (!rs) return false;
  const body = chain[chain.length - 1]!.body;
  const early = rs.filter((r) => !rs.some((o) => o !== r && readsAny(body, r, [o.acc])));
  const R = !caps.gpu && chain.length >= 2 && early.length === rs.length ? rowBlock(chain[chain.length - 2]!.extent, chain[chain.length - 1]!.extent, rs.length, caps) : 1;
  let rows: string[] = [], j = chain[chain.length - 1]!.v;
  if (R > 1) {
    rows = [s.fresh('m')];
    s.apply(split, { loop: chain[chain.length - 2]!.v, factor: R, outer: s.fresh('o'), inner: rows[0]! });
  }
  for (const r of rs) {
    s.apply(cacheWrite, { acc: r.acc, loops: [...rows, j], local: s.fresh(R > 1 ? 'rows' : 'row'), read: 'inline', place: R > 1 ? 'start' : 'before' });
    const rest = rowOrder(s, [...rows, j], rows.length, r.end - r.start, r.loops.slice(0, 1).map((l) => l.v), caps);
    [rows, j] = [rest.slice(0, -1), rest[rest.length - 1]!];
  }
  if (rows.length) s.apply(unroll, { loops: rows });
  return true;
}

/** A matmul computed into a local row cache: its accumulator and the row's loops (outermost first). */
interface RowMatmul { readonly acc: string; readonly local: string; readonly loops: readonly string[]; readonly r: Reduction }

/** The row cache declared at body[i] when a matmul is accumulated into it (the statement after the local). */
function rowMatmulAt(body: readonly Stmt[], i: number): RowMatmul | undefined {
  const local = body[i];
  if (local?.k !== 'local') return undefined;
  // the row's loops: a perfect nest right after the array (none where every extent of the row is 1)
  let stmts: readonly Stmt[] = body.slice(i + 1);
  const first = stmts[0];
  const loops = first?.k === 'for' && first.kind === 'serial' ? outerChain(first) : [];
  if (loops.length) stmts = loops[loops.length - 1]!.body;
  const r = reductionAt(stmts, 0);
  if (!r || !matmulOperands(r)) return undefined;
  const st = stmts[r.end + 1];
  if (st?.k !== 'store' || st.buf !== local.name || st.value.k !== 'var' || st.value.name !== r.acc) return undefined;
  if (loops.length && stmts.length !== r.end + 2) return undefined;
  return { acc: r.acc, local: local.name, loops: loops.map((l) => l.v), r };
}

/**
 * Row caches of matmuls in a nest with inner axes, declared in the body of its last outer loop `i` (or at the
 * kernel's top level when it has none); R rows at a time for the leading ones that read nothing the nest computes.
 */
function innerRows(s: Schedule, i: For | undefined, caps: TargetCaps): void {
  const body = i ? i.body : s.body;
  const cached = body.flatMap((_, n) => rowMatmulAt(body, n) ?? []);
  if (!cached.length) return;
  const computed = new Set(body.flatMap((x) => (x.k === 'local' || x.k === 'decl' ? [x.name] : [])));
  const isEarly = (c: RowMatmul) => ![...readsOf(c.r.loops.length ? [c.r.loops[0]!] : [...c.r.step, S.assign(c.acc, c.r.update)])].some((n) => n !== c.acc && computed.has(n));
  // the leading row caches (nothing before them but other such caches)
  let lead = 0;
  for (let n = 0; n < body.length;) {
    const c = rowMatmulAt(body, n);
    if (!c || !isEarly(c)) break;
    lead++;
    n += 1 + (c.loops.length ? 1 : c.r.end + 2);
  }
  const rowSize = (c: RowMatmul) => (body.find((x) => x.k === 'local' && x.name === c.local) as Extract<Stmt, { k: 'local' }>).size;
  const R = i && !caps.gpu && lead ? rowBlock(i.extent, rowSize(cached[0]!), lead, caps) : 1;
  if (i && R > 1) {
    let q = s.fresh('m');
    s.apply(split, { loop: i.v, factor: R, outer: s.fresh('o'), inner: q });
    for (const c of cached.slice(0, lead)) {
      s.apply(liftLocal, { local: c.local, loop: q, place: 'start', name: s.fresh('rows') });
      s.apply(accumulateInto, { acc: c.acc });
      q = rowOrder(s, [q, ...c.loops], 1, c.r.end - c.r.start, c.r.loops.slice(0, 1).map((l) => l.v), caps)[0]!;
    }
    s.apply(unroll, { loops: [q] });
  }
  for (const c of cached.slice(R > 1 ? lead : 0)) {
    s.apply(accumulateInto, { acc: c.acc });
    if (c.loops.length) rowOrder(s, c.loops, 0, c.r.end - c.r.start, c.r.loops.slice(0, 1).map((l) => l.v), caps);
  }
}

export const rowCaches: Recipe = {
  name: 'row-caches',
  run: (s: Schedule, caps: TargetCaps) => {
    const gpuTiles = caps.gpu ? matmulTops(s.body) : [];
    for (const top of s.body.filter((x): x is For => x.k === 'for' && !gpuTiles.includes(x.v))) {
      if (!s.attempt(() => { if (!plainRows(s, top, caps)) throw new ScheduleError('not a plain nest of matmuls'); })) {
        const chain = outerChain(top);
        s.attempt(() => innerRows(s, chain[chain.length - 1]!, caps));
      }
    }
    s.attempt(() => innerRows(s, undefined, caps));
  },
};
