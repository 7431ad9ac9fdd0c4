// Cleanup steps after the recipes: serial loops of one iteration go (their variable is 0), and index arithmetic
// is simplified again (splits leave `(o*4 + m)*K + k`).
import { E, type Expr, type Stmt } from '../ir.js';
import { simplify } from '../simplify.js';
import { mapExpr, substStmts } from './loops.js';
import { primitive } from './primitive.js';

function drop(body: readonly Stmt[]): Stmt[] {
  return body.flatMap((s): Stmt[] => {
    if (s.k !== 'for') return [s];
    const inner = drop(s.body);
    return s.extent === 1 && s.kind === 'serial' ? substStmts(inner, new Map([[s.v, E.i32(0)]])) : [{ ...s, body: inner }];
  });
}

const hasUnit = (body: readonly Stmt[]): boolean => body.some((s) => s.k === 'for' && ((s.extent === 1 && s.kind === 'serial') || hasUnit(s.body)));

/** The top-level statements dropUnitLoops works in: all, or the top-level loop `loop` alone. */
const within = (body: readonly Stmt[], loop: string | undefined) => (loop === undefined ? body : body.filter((s) => s.k === 'for' && s.v === loop));

/** Removes serial loops of one iteration (inside top-level loop `loop` only, when given). */
export const dropUnitLoops = primitive<{ readonly loop?: string }>({
  name: 'dropUnitLoops',
  check: (k, a) => (hasUnit(within(k.body, a.loop)) ? undefined : `no serial loop of one iteration${a.loop === undefined ? '' : ` in top-level loop '${a.loop}'`}`),
  apply: (k, a) => ({ body: a.loop === undefined ? drop(k.body) : k.body.flatMap((s) => (s.k === 'for' && s.v === a.loop ? drop([s]) : [s])) }),
});

/** Simplifies the kernel's index arithmetic (simplify.ts), or that of top-level loop `loop` alone when given. */
export const simplifyIndices = primitive<{ readonly loop?: string }>({
  name: 'simplify',
  check: (k, a) => (a.loop === undefined || within(k.body, a.loop).length ? undefined : `no top-level loop '${a.loop}'`),
  apply: (k, a) => {
    const simplified = (body: readonly Stmt[]) => {
      const p = simplify({ name: 'k', buffers: k.buffers, kernels: [{ name: 'k', ops: [], body }], inputs: [], params: [], outputs: [], updates: [] });
      return [...p.kernels[0]!.body];
    };
    return { body: a.loop === undefined ? simplified(k.body) : k.body.flatMap((s) => (s.k === 'for' && s.v === a.loop ? simplified([s]) : [s])) };
  },
});

/** Every declared name becomes its prefix (letters) and a counter in print order, as lowering numbers names. */
function renumbered(body: readonly Stmt[]): Stmt[] {
  let n = 0;
  const scopes: Map<string, string>[] = [new Map()];
  const lookup = (name: string) => {
    for (let i = scopes.length - 1; i >= 0; i--) {
      const r = scopes[i]!.get(name);
      if (r !== undefined) return r;
    }
    return name;
  };
  const declare = (name: string) => {
    const fresh = `${name.replace(/\d+$/, '')}${n++}`;
    scopes[scopes.length - 1]!.set(name, fresh);
    return fresh;
  };
  const ex = (e: Expr): Expr => mapExpr(e, (x) => (x.k === 'var' ? { ...x, name: lookup(x.name) } : x.k === 'load' ? { ...x, buf: lookup(x.buf) } : x));
  const visit = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    switch (s.k) {
      case 'for': {
        scopes.push(new Map());
        const v = declare(s.v);
        const inner = visit(s.body);
        scopes.pop();
        return { ...s, v, body: inner };
      }
      case 'decl': {
        const init = ex(s.init);
        return { ...s, name: declare(s.name), init };
      }
      case 'local': return { ...s, name: declare(s.name) };
      case 'assign': return { ...s, name: lookup(s.name), value: ex(s.value) };
      case 'store': return { ...s, buf: lookup(s.buf), idx: ex(s.idx), value: ex(s.value) };
    }
  });
  return visit(body);
}

/** Renames the kernel's loop variables, decls and local arrays in print order (prefix + counter). */
export const renumber = primitive<Record<string, never>>({
  name: 'renumber',
  check: () => undefined,
  apply: (k) => ({ body: renumbered(k.body) }),
});
