// rfactor: a reduction is split into partial accumulators, one per iteration of one of its loops, combined at the
// end in a fixed order (TVM rfactor): `acc = I; for ko { for ki { acc = acc op e } }` -> `P[ki] = I (each ki);
// acc = I; for ko { for ki { P[ki] = P[ki] op e } }; for c { acc = acc op P[c] }`. The partials' updates no longer
// depend on each other, so the loop can move outward and run in parallel (a tree or a block of threads), and the
// combination order stays fixed: every target computes the same value. Unlike the other primitives it
// reassociates op: exact for integer add and mul (wrapping), and for max and min (NaN-propagating); a float sum or
// product may round differently from the serial one.
import { E, type Expr, S, type Scalar, type Stmt } from '../ir.js';
import { type For, findLoop, readsOf, varsOf } from './loops.js';
import { primitive } from './primitive.js';

export interface RfactorArgs {
  /** the accumulator: a decl followed by a loop nest whose every update is `acc = acc op e` */
  readonly acc: string;
  /** a loop of the nest around every update: one partial per iteration */
  readonly loop: string;
  /** the partials' register array, the loop initializing them and the loop combining them */
  readonly local: string;
  readonly init: string;
  readonly combine: string;
}

type Op = 'add' | 'mul' | 'max' | 'min';

/** The identity of op on t (the accumulator's initial value rfactor needs). */
function identity(op: Op, t: Scalar): number {
  if (op === 'add') return 0;
  if (op === 'mul') return 1;
  if (t === 'i32') return op === 'max' ? -2147483648 : 2147483647;
  return op === 'max' ? -Infinity : Infinity;
}

interface Site {
  readonly list: readonly Stmt[];
  readonly d: number;
  readonly nest: For;
  readonly op: Op;
  readonly t: Scalar;
}

/** The accumulator's decl (at list[d]), the nest after it, and the reduction's op, or why rfactor does not apply. */
function site(body: readonly Stmt[], a: RfactorArgs): Site | string {
  const find = (ss: readonly Stmt[]): readonly Stmt[] | undefined => {
    if (ss.some((s) => s.k === 'decl' && s.name === a.acc)) return ss;
    for (const s of ss) if (s.k === 'for') { const r = find(s.body); if (r) return r; }
    return undefined;
  };
  const list = find(body);
  if (!list) return `no decl '${a.acc}' in the kernel`;
  const d = list.findIndex((s) => s.k === 'decl' && s.name === a.acc);
  const decl = list[d] as Extract<Stmt, { k: 'decl' }>;
  const nest = list[d + 1];
  if (nest?.k !== 'for') return `'${a.acc}' is not followed by the loops that accumulate into it`;
  if (list.slice(d + 2).some((s) => assigns(s, a.acc))) return `'${a.acc}' is assigned after the loops that accumulate into it`;
  const l = findLoop([nest], a.loop);
  if (!l) return `loop '${a.loop}' is not in the loops after '${a.acc}'`;
  if (l.kind !== 'serial') return `loop '${a.loop}' is ${l.kind}`;
  const updates: Extract<Stmt, { k: 'assign' }>[] = [];
  let why: string | undefined;
  const walk = (ss: readonly Stmt[], inLoop: boolean): void => {
    for (const s of ss) {
      if (s.k === 'assign' && s.name === a.acc) {
        if (!inLoop) why ??= `an update of '${a.acc}' is outside loop '${a.loop}'`;
        updates.push(s);
      } else if (readsOf([s]).has(a.acc) && s.k !== 'for') why ??= `'${a.acc}' is read in the loops other than by its updates`;
      if (s.k === 'for') walk(s.body, inLoop || s.v === a.loop);
    }
  };
  walk([nest], false);
  if (why) return why;
  if (!updates.length) return `the loops do not update '${a.acc}'`;
  let op: Op | undefined;
  for (const u of updates) {
    const v = u.value;
    if (v.k !== 'binary' || !['add', 'mul', 'max', 'min'].includes(v.op) || v.a.k !== 'var' || v.a.name !== a.acc || varsOf(v.b).has(a.acc)) return `an update of '${a.acc}' is not '${a.acc} op x' for an associative op`;
    if (op && v.op !== op) return `the updates of '${a.acc}' mix ${op} and ${v.op}`;
    op = v.op as Op;
  }
  if (decl.init.k !== 'const' || !Object.is(decl.init.v, identity(op!, decl.t))) return `'${a.acc}' starts at ${decl.init.k === 'const' ? decl.init.v : 'a non-constant'}, not the identity of ${op}`;
  return { list, d, nest, op: op!, t: decl.t };
}

const assigns = (s: Stmt, name: string): boolean => (s.k === 'assign' && s.name === name) || (s.k === 'for' && s.body.some((x) => assigns(x, name)));

export const rfactor = primitive<RfactorArgs>({
  name: 'rfactor',
  check: (k, a) => {
    const r = site(k.body, a);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const { list, d, nest, op, t } = site(k.body, a) as Site;
    const n = findLoop([nest], a.loop)!.extent;
    const cell = (i: Expr) => E.load(a.local, i, t);
    const updated = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
      if (s.k === 'assign' && s.name === a.acc) return S.store(a.local, E.v(a.loop), E.binary(op, cell(E.v(a.loop)), (s.value as { b: Expr }).b));
      return s.k === 'for' ? { ...s, body: updated(s.body) } : s;
    });
    const accV = E.v(a.acc, t);
    const stmts = [
      ...list.slice(0, d),
      S.local(a.local, t, n),
      S.for(a.init, n, [S.store(a.local, E.v(a.init), E.c(t, identity(op, t)))]),
      list[d]!,
      ...updated([nest]),
      S.for(a.combine, n, [S.assign(a.acc, E.binary(op, accV, cell(E.v(a.combine))))]),
      ...list.slice(d + 2),
    ];
    const swap = (ss: readonly Stmt[]): Stmt[] => (ss === list ? stmts : ss.map((s) => (s.k === 'for' ? { ...s, body: swap(s.body) } : s)));
    return { body: swap(k.body) };
  },
});
