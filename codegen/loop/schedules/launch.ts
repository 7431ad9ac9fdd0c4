// GPU launches. launch wraps top-level statements that are no parallel loop nest into one loop of one iteration
// inside another (to become a launch of one block of one thread); sinkDecls moves the kernel's top-level pure
// decls into each of the given loops that reads them (directly or through one another), at the start of its body,
// so every GPU thread computes them itself and the kernel's top level holds only launches.
import { pureDecls } from '../analysis.js';
import { type Expr, S, type Stmt } from '../ir.js';
import { findLoop, readsOf, replaceLoop, varsOf } from './loops.js';
import { primitive } from './primitive.js';

/** The top-level pure decls the statements read, directly or through one another, in kernel order. */
function readDecls(pure: ReadonlyMap<string, Stmt>, stmts: readonly Stmt[]): Stmt[] {
  const need = new Set<string>();
  const visit = (name: string): void => {
    const d = pure.get(name);
    if (!d || need.has(name)) return;
    need.add(name);
    for (const v of varsOf((d as { init: Expr }).init)) visit(v);
  };
  for (const n of readsOf(stmts)) visit(n);
  return [...pure.values()].filter((d) => need.has((d as { name: string }).name));
}

export interface LaunchArgs {
  /** positions of top-level statements, increasing; the launch takes the place of the last (pure decls between stay) */
  readonly stmts: readonly number[];
  readonly block: string;
  readonly thread: string;
}

export const launch = primitive<LaunchArgs>({
  name: 'launch',
  check: (k, a) => {
    const pure = pureDecls(k.body);
    if (!a.stmts.length || a.stmts.some((i, j) => !Number.isInteger(i) || i < 0 || i >= k.body.length || (j > 0 && i <= a.stmts[j - 1]!))) return `positions ${a.stmts.join(', ')} are not increasing positions of the kernel's ${k.body.length} statements`;
    for (let i = a.stmts[0]!; i <= a.stmts[a.stmts.length - 1]!; i++) {
      const st = k.body[i]!;
      if (!a.stmts.includes(i) && !(st.k === 'decl' && pure.has(st.name))) return `statement ${i} between them is not a pure decl`;
    }
    return undefined;
  },
  apply: (k, a) => {
    const l = S.for(a.block, 1, [S.for(a.thread, 1, a.stmts.map((i) => k.body[i]!))]);
    const last = a.stmts[a.stmts.length - 1]!;
    return { body: k.body.flatMap((s, i) => (i === last ? [l] : a.stmts.includes(i) ? [] : [s])) };
  },
});

export const sinkDecls = primitive<{ readonly loops: readonly string[] }>({
  name: 'sinkDecls',
  check: (k, a) => {
    const pure = pureDecls(k.body);
    const other = k.body.find((s) => s.k !== 'for' && !(s.k === 'decl' && pure.has(s.name)));
    if (other) return 'the kernel has top-level statements other than loops and pure decls';
    const missing = a.loops.find((v) => !findLoop(k.body, v));
    if (missing) return `no loop '${missing}' in the kernel`;
    const targets = new Set(a.loops);
    const top = k.body.find((s) => s.k === 'for' && readDecls(pure, [s]).length && !targets.has(s.v) && !a.loops.some((v) => findLoop([s], v)));
    return top ? `loop '${(top as { v: string }).v}' reads decls of the top level but holds none of the loops to sink them into` : undefined;
  },
  apply: (k, a) => {
    const pure = pureDecls(k.body);
    let body: Stmt[] = k.body.filter((s) => !(s.k === 'decl' && pure.has(s.name)));
    for (const v of a.loops) body = replaceLoop(body, v, (l) => [{ ...l, body: [...readDecls(pure, l.body), ...l.body] }]);
    return { body };
  },
});
