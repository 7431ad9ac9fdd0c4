// cacheRead: a value computed inside loop `inner` that does not depend on the loop `outer` around it is computed
// once per iteration of `inner` into a local array, in a loop placed before `outer`, and read from the array inside
// (TVM cache_read + compute_at): the B row of a matmul micro-kernel, loaded once per k and reused by every row.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { accesses, loopOf, readsOf, replaceLoop, replaceParent, substStmts, varsOf } from './loops.js';
import { leadingLocals } from './cache_write.js';
import { primitive } from './primitive.js';

export interface CacheReadArgs {
  /** the loop the value does not depend on */
  readonly outer: string;
  /** a loop directly in outer's body: the array has one element per iteration of it */
  readonly inner: string;
  /** a decl directly in inner's body: it and the decls it reads there move to the new loop */
  readonly value: string;
  readonly local: string;
  /** the new loop's variable */
  readonly fill: string;
  /** the loop whose body declares the array (after its leading locals) */
  readonly at: string;
}

/**
 * The decls of inner's body that compute `value` (it included), in order, or why they cannot move; `shared`: those
 * the rest of the body reads too (they stay, and the new loop computes them again).
 */
function movedDecls(outerBody: readonly Stmt[], outerVar: string, innerBody: readonly Stmt[], value: string): { moved: Stmt[]; shared: Set<string> } | string {
  const decls = new Map(innerBody.flatMap((s) => (s.k === 'decl' ? [[s.name, s] as const] : [])));
  if (!decls.has(value)) return `'${value}' is not a decl directly in the inner loop's body`;
  const need = new Set<string>();
  const visit = (name: string): void => {
    if (need.has(name)) return;
    need.add(name);
    for (const v of varsOf((decls.get(name) as Extract<Stmt, { k: 'decl' }>).init)) if (decls.has(v)) visit(v);
  };
  visit(value);
  const moved = innerBody.filter((s) => s.k === 'decl' && need.has(s.name));
  const { arrays, assigned, declared } = accesses(outerBody);
  const changing = [...need].find((n) => assigned.has(n));
  if (changing) return `'${changing}' is assigned in the loop (not a value computed once)`;
  const written = new Set(arrays.filter((a) => a.write).map((a) => a.array));
  const outerDecls = new Set([...declared].filter((d) => !decls.has(d)));
  for (const s of moved) {
    const bad = [...readsOf([s])].find((x) => x === outerVar || assigned.has(x) || written.has(x) || outerDecls.has(x));
    if (bad) return `'${(s as { name: string }).name}' depends on '${bad}', which changes in loop '${outerVar}'`;
  }
  const reads = readsOf(innerBody.filter((s) => !moved.includes(s)));
  // decls the rest reads as well stay there too (computed once more in the new loop), and so do the decls they
  // read, transitively: iterating the set itself visits what is added (a snapshot stopped one level deep)
  const shared = new Set([...need].filter((n) => n !== value && reads.has(n)));
  for (const n of shared) for (const v of varsOf((decls.get(n) as Extract<Stmt, { k: 'decl' }>).init)) if (need.has(v)) shared.add(v);
  return { moved, shared };
}

export const cacheRead = primitive<CacheReadArgs>({
  name: 'cacheRead',
  check: (k, a) => {
    const outer = loopOf(k.body, a.outer);
    const inner = outer.body.find((s) => s.k === 'for' && s.v === a.inner);
    if (inner?.k !== 'for') return `loop '${a.inner}' is not directly in the body of loop '${a.outer}'`;
    loopOf(k.body, a.at);
    const m = movedDecls(outer.body, outer.v, inner.body, a.value);
    return typeof m === 'string' ? m : undefined;
  },
  apply: (k, a) => {
    const outer = loopOf(k.body, a.outer);
    const inner = outer.body.find((s) => s.k === 'for' && s.v === a.inner) as Extract<Stmt, { k: 'for' }>;
    const { moved, shared } = movedDecls(outer.body, outer.v, inner.body, a.value) as Exclude<ReturnType<typeof movedDecls>, string>;
    const t = (moved.find((s) => s.k === 'decl' && s.name === a.value) as Extract<Stmt, { k: 'decl' }>).t;
    // the new loop's copies of shared decls get names of their own
    const rename = new Map<string, Expr>([[inner.v, E.v(a.fill)]]);
    const copies = moved.map((s) => {
      const d = s as Extract<Stmt, { k: 'decl' }>;
      const x = substStmts([d], rename)[0] as Extract<Stmt, { k: 'decl' }>;
      if (!shared.has(d.name)) return x;
      const name = k.fresh(d.name.replace(/\d+$/, ''));
      rename.set(d.name, E.v(name, d.t));
      return { ...x, name };
    });
    const fillLoop = S.for(a.fill, inner.extent, [...copies, S.store(a.local, E.v(a.fill), E.v(a.value, t))]);
    const cell = E.load(a.local, E.v(inner.v), t);
    const innerBody = inner.body.filter((s) => !moved.includes(s) || shared.has((s as { name: string }).name)).map((s) => substStmts([s], new Map([[a.value, cell]]))[0]!);
    let body = replaceLoop(k.body, a.inner, (l) => [{ ...l, body: innerBody }]);
    body = replaceParent(body, a.outer, (ss) => {
      const i = ss.findIndex((s) => s.k === 'for' && s.v === a.outer);
      return [...ss.slice(0, i), fillLoop, ...ss.slice(i)];
    });
    body = replaceLoop(body, a.at, (l) => {
      const i = leadingLocals(l.body);
      return [{ ...l, body: [...l.body.slice(0, i), S.local(a.local, t, inner.extent), ...l.body.slice(i)] }];
    });
    return { body };
  },
});
