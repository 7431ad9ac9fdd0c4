// The one traversal of loop IR and interned expressions: structural equality is identity, rewrites that change
// nothing return their input, and every walk reaches every kind of expression.
import { describe, expect, it } from 'vitest';
import { E, type Expr, S, type Stmt, exprId, intern, internedCount } from '../../codegen/loop/ir.js';
import { printExpr, printStmts } from '../../codegen/loop/printer.js';
import { ExprMutator, children, forEachExpr, mapExpr, mapStmts, someExpr, usesVar, walkStmts } from '../../codegen/loop/visit.js';

const { v, i32, f32, add, mul } = E;

/** One expression holding every expression kind (philox included: hand-written walkers used to skip it). */
const everyKind = (): Expr =>
  E.select(E.binary('lt', v('i'), i32(3)), E.unary('neg', E.cast('f32', E.load('x', add(v('i'), i32(1)), 'i32'))), E.philox(7, i32(0), v('i')));

describe('interning', () => {
  it('makes structurally equal expressions one object', () => {
    expect(add(mul(v('i'), i32(4)), v('j'))).toBe(add(mul(v('i'), i32(4)), v('j')));
    expect(everyKind()).toBe(everyKind());
    expect(E.c('f32', 0.5)).toBe(f32(0.5));
    expect(E.c('bool', 7)).toBe(E.bool(true));
  });

  it('keeps apart what differs in kind, type, op, name, buffer or seed', () => {
    const distinct = [
      v('i'), v('i', 'f32'), v('j'), i32(1), f32(1), E.bool(true), E.load('x', v('i'), 'i32'), E.load('y', v('i'), 'i32'),
      E.binary('add', v('i'), v('j')), E.binary('sub', v('i'), v('j')), E.binary('add', v('j'), v('i')),
      E.binary('max', v('i'), v('j')), E.unary('neg', v('i')), E.unary('abs', v('i')), E.cast('f32', v('i')),
      E.philox(1, i32(0), v('i')), E.philox(2, i32(0), v('i')), E.select(E.bool(true), v('i'), v('j')),
    ];
    expect(new Set(distinct).size).toBe(distinct.length);
    // printed text, the old memo key, cannot tell an i32 variable from an f32 one of the same name
    expect(new Set(distinct.map((e) => printExpr(e))).size).toBe(distinct.length - 1);
  });

  it('compares float constants as Object.is: -0 is not 0, NaN is NaN', () => {
    expect(f32(-0)).not.toBe(f32(0));
    expect(Object.is((f32(-0) as { v: number }).v, -0)).toBe(true);
    expect(f32(NaN)).toBe(f32(Number.NaN));
    expect(f32(0.1)).toBe(f32(Math.fround(0.1)));
    expect(f32(Infinity)).not.toBe(f32(-Infinity));
    expect(E.binary('mul', v('x', 'f32'), f32(-0))).not.toBe(E.binary('mul', v('x', 'f32'), f32(0)));
  });

  it('keeps identity through hash collisions and table sweeps (200,000 live expressions)', () => {
    // 2e5 hashes of 32 bits collide a few times, and the table is swept (rebuilt) three times on the way
    const made = Array.from({ length: 200000 }, (_, i) => (i % 2 ? f32(i * 0.37) : E.load(`b${i % 97}`, v(`i${i % 1013}`), 'f32')));
    expect(new Set(made).size).toBe(new Set(made.map((e) => printExpr(e))).size);
    made.forEach((e, i) => { if (e !== (i % 2 ? f32(i * 0.37) : E.load(`b${i % 97}`, v(`i${i % 1013}`), 'f32'))) throw new Error(`expression ${i} was interned twice`); });
    expect(internedCount()).toBeGreaterThanOrEqual(new Set(made).size);
    expect(f32(0.37)).toBe(made[1]);
  });

  it('numbers expressions by identity, so structurally equal ones share a number', () => {
    expect(exprId(add(v('i'), i32(2)))).toBe(exprId(add(v('i'), i32(2))));
    expect(exprId(add(v('i'), i32(2)))).not.toBe(exprId(add(v('i'), i32(3))));
    expect(exprId(f32(-0))).not.toBe(exprId(f32(0)));
  });

  it('adopts an expression built by literal, or gives back the one already interned', () => {
    const lit: Expr = { k: 'binary', t: 'i32', op: 'mod', a: v('k'), b: i32(5) };
    expect(intern(lit)).toBe(E.binary('mod', v('k'), i32(5)));
    const fresh: Expr = { k: 'var', t: 'i32', name: 'never_seen_before' };
    expect(intern(fresh)).toBe(fresh);
    expect(v('never_seen_before')).toBe(fresh);
  });
});

describe('expression traversal', () => {
  it('reaches every kind of expression, pre-order', () => {
    const kinds: string[] = [];
    forEachExpr(everyKind(), (e) => kinds.push(e.k));
    expect(kinds).toEqual(['select', 'binary', 'var', 'const', 'unary', 'cast', 'load', 'binary', 'var', 'const', 'philox', 'const', 'var']);
    expect(new Set(kinds)).toEqual(new Set(['const', 'var', 'load', 'unary', 'cast', 'binary', 'select', 'philox']));
    expect(children(everyKind()).map((e) => e.k)).toEqual(['binary', 'unary', 'philox']);
  });

  it('someExpr stops at the first match; usesVar looks into every kind', () => {
    let seen = 0;
    expect(someExpr(everyKind(), (e) => (seen++, e.k === 'var'))).toBe(true);
    expect(seen).toBe(3); // select, binary, var
    const inPhilox = E.philox(1, i32(0), v('q'));
    expect(usesVar(inPhilox, 'q')).toBe(true);
    expect(usesVar(E.load('x', v('q'), 'f32'), 'q')).toBe(true);
    expect(usesVar(everyKind(), 'q')).toBe(false);
  });

  it('mapExpr returns the same object when nothing changes, and shares what it did not change', () => {
    const e = everyKind();
    expect(mapExpr(e, (x) => x)).toBe(e);
    expect(mapExpr(e, (x) => (x.k === 'var' && x.name === 'nobody' ? i32(0) : x))).toBe(e);
    // i -> j everywhere: the result is the expression built with j, by identity
    const swapped = mapExpr(e, (x) => (x.k === 'var' && x.name === 'i' ? v('j') : x));
    expect(swapped).toBe(E.select(E.binary('lt', v('j'), i32(3)), E.unary('neg', E.cast('f32', E.load('x', add(v('j'), i32(1)), 'i32'))), E.philox(7, i32(0), v('j'))));
    // only the philox's index changes: the condition and the other branch are the very same objects
    const partial = mapExpr(e, (x) => (x.k === 'philox' ? E.philox(8, x.counter, x.index) : x)) as Extract<Expr, { k: 'select' }>;
    const orig = e as Extract<Expr, { k: 'select' }>;
    expect(partial).not.toBe(e);
    expect(partial.c).toBe(orig.c);
    expect(partial.a).toBe(orig.a);
  });

  it('mapExpr keeps a rebuilt node\'s type and op as written (no folding, no retyping)', () => {
    // E.add would fold 0 + x; a rebuild of a binary add keeps it
    const raw = E.binary('add', i32(0), v('i'));
    expect(mapExpr(raw, (x) => (x.k === 'var' ? v('j') : x))).toBe(E.binary('add', i32(0), v('j')));
    // an ill-typed node (for the verifier to report) is rebuilt as ill-typed
    const bad = intern({ k: 'binary', t: 'f32', op: 'lt', a: v('i'), b: i32(1) });
    const out = mapExpr(bad, (x) => (x.k === 'var' ? v('j') : x));
    expect(out.t).toBe('f32');
  });

  it('mapExpr maps each distinct subexpression once (a shared DAG is not a tree)', () => {
    let e: Expr = v('i');
    for (let d = 0; d < 40; d++) e = E.binary('add', e, e); // 2^40 paths, 41 nodes
    let calls = 0;
    const out = mapExpr(e, (x) => (calls++, x.k === 'var' ? v('j') : x));
    expect(calls).toBe(41);
    let want: Expr = v('j');
    for (let d = 0; d < 40; d++) want = E.binary('add', want, want);
    expect(out).toBe(want);
  });
});

describe('statement traversal', () => {
  const body = (): Stmt[] => [
    S.decl('acc', 'f32', f32(0)),
    S.for('i', 4, [S.for('j', 3, [S.assign('acc', E.binary('add', v('acc', 'f32'), E.load('x', add(mul(v('i'), i32(3)), v('j')), 'f32')))])]),
    S.store('y', i32(0), v('acc', 'f32')),
  ];

  it('walkStmts sees every statement with its loops, and can skip a loop body', () => {
    const seen: string[] = [];
    walkStmts(body(), (s, loops) => { seen.push(`${s.k}@${loops.map((l) => l.v).join('.')}`); });
    expect(seen).toEqual(['decl@', 'for@', 'for@i', 'assign@i.j', 'store@']);
    const outer: string[] = [];
    walkStmts(body(), (s) => { outer.push(s.k); return s.k !== 'for'; });
    expect(outer).toEqual(['decl', 'for', 'store']);
  });

  it('mapStmts returns the same array when nothing changes, and splices lists', () => {
    const b = body();
    expect(mapStmts(b, (s) => s)).toBe(b);
    // unroll the inner loop: j -> 0, 1, 2
    const unrolled = mapStmts(b, (s) => (s.k === 'for' && s.v === 'j'
      ? [0, 1, 2].flatMap((k) => s.body.map((t) => (t.k === 'assign' ? S.assign(t.name, mapExpr(t.value, (x) => (x.k === 'var' && x.name === 'j' ? i32(k) : x))) : t)))
      : s));
    expect(printStmts(unrolled)).toBe([
      'decl acc: f32 = 0.0',
      'for i in 0..4 {',
      '  acc = acc + x[i * 3 + 0]',
      '  acc = acc + x[i * 3 + 1]',
      '  acc = acc + x[i * 3 + 2]',
      '}',
      'y[0] = acc',
    ].join('\n'));
    expect(unrolled[0]).toBe(b[0]);
    expect(unrolled[2]).toBe(b[2]);
  });

  it('an ExprMutator rewrites bottom-up and returns untouched statements as they were', () => {
    /** x * 3 -> x + x + x on i32 (a strength reduction, for the test) */
    class Expand extends ExprMutator {
      calls = 0;
      protected override rewrite(e: Expr): Expr {
        this.calls++;
        return e.k === 'binary' && e.op === 'mul' && e.b.k === 'const' && e.b.v === 3 ? E.binary('add', E.binary('add', e.a, e.a), e.a) : e;
      }
    }
    const b = body();
    const m = new Expand();
    const out = m.stmts(b);
    expect(printStmts(out)).toContain('acc = acc + x[i + i + i + j]');
    expect(out[0]).toBe(b[0]);
    expect(out[2]).toBe(b[2]);
    const again = new Expand();
    expect(again.stmts(out)).toBe(out); // nothing left to rewrite
    const none = new ExprMutator();
    expect(none.stmts(b)).toBe(b);
  });
});
