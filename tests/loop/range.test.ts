// The one range analysis: exact bounds for the index patterns lowering writes (affine, floor division, remainder,
// min/max, clamps, selects on a loop variable), and sound bounds on seeded random index expressions, each checked
// against the values the loop interpreter computes at every point of the iteration box.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { printExpr } from '../../codegen/loop/printer.js';
import { type RangeEnv, loopEnv, rangeOf } from '../../codegen/loop/range.js';
import { verifyKernel } from '../../codegen/loop/verifier.js';
import { rng } from '../passes/random_graphs.js';

const { v, i32, add, mul, idiv, mod } = E;
const sub = (a: Expr, b: Expr) => E.binary('sub', a, b);
const min = (a: Expr, b: Expr) => E.binary('min', a, b);
const max = (a: Expr, b: Expr) => E.binary('max', a, b);
const cmp = (op: 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne', a: Expr, b: Expr) => E.binary(op, a, b);

/** Every value e takes over loops v0, v1, ... of the given extents, computed by the loop interpreter. */
function values(extents: number[], e: Expr): number[] {
  const size = extents.reduce((a, b) => a * b, 1);
  let at: Expr = i32(0);
  extents.forEach((n, d) => { at = add(mul(at, i32(n)), v(`v${d}`)); });
  let body: Stmt[] = [S.store('y', at, e)];
  for (let d = extents.length - 1; d >= 0; d--) body = [S.for(`v${d}`, extents[d]!, body)];
  const p: Program = {
    name: 'p', buffers: [{ name: 'y', dtype: 'int32', size, kind: 'output' }],
    kernels: [{ name: 'k0', ops: [], body }], inputs: [], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
  };
  return [...runProgram(p, {}, {}).outputs.get('y')!];
}

const envOf = (extents: number[]): RangeEnv => loopEnv(new Map(extents.map((n, d) => [`v${d}`, n])));

/** The true [min, max] of e over the box. */
function truth(extents: number[], e: Expr): [number, number] {
  const xs = values(extents, e);
  return [Math.min(...xs), Math.max(...xs)];
}

describe('rangeOf', () => {
  const exactCases: [string, number[], Expr][] = [
    ['an affine index', [4, 5], add(sub(mul(v('v0'), i32(3)), v('v1')), i32(-2))],
    ['a negative coefficient', [7], mul(v('v0'), i32(-4))],
    ['a product of two loop variables', [3, 6], mul(add(v('v0'), i32(-1)), v('v1'))],
    ['a floor division', [4, 8], idiv(add(mul(v('v0'), i32(8)), v('v1')), 3)],
    ['a floor division of a negative range', [9], idiv(sub(v('v0'), i32(7)), 4)],
    ['a remainder within one block', [5], mod(add(v('v0'), i32(10)), 16)],
    ['a remainder of a negative range within one block', [3], mod(sub(v('v0'), i32(5)), 8)],
    ['min and max of independent ranges', [6, 4], max(min(v('v0'), add(v('v1'), i32(2))), i32(1))],
    ['a clamp of a padded index', [10], max(min(sub(v('v0'), i32(2)), i32(4)), i32(0))],
    ['a clamp of a strided window index', [4, 3], max(min(add(mul(v('v0'), i32(2)), sub(v('v1'), i32(1))), i32(6)), i32(0))],
    ['a select on a loop variable', [8], E.select(cmp('lt', v('v0'), i32(3)), v('v0'), i32(7))],
    ['a select with the constant first', [8, 2], E.select(cmp('ge', i32(5), v('v0')), add(v('v0'), v('v1')), i32(-1))],
    ['a select whose branch is never taken', [4], E.select(cmp('gt', v('v0'), i32(10)), i32(1000), mul(v('v0'), i32(2)))],
  ];
  it.each(exactCases)('is exact for %s', (_, extents, e) => {
    const r = rangeOf(e, envOf(extents));
    expect(r, printExpr(e)).toBeDefined();
    expect([r!.lo, r!.hi], printExpr(e)).toEqual(truth(extents, e));
    expect(r!.exact, printExpr(e)).toBe(true);
  });

  it('is sound, and not claimed exact, where a variable occurs twice, a remainder wraps or a select\'s else is no box', () => {
    for (const [extents, e] of [
      [[5], sub(v('v0'), v('v0'))],
      [[6, 3], add(mul(v('v0'), v('v1')), v('v1'))],
      [[10], mod(v('v0'), 4)],
      [[10], E.select(cmp('ne', v('v0'), i32(3)), v('v0'), i32(0))],
      [[6], E.select(cmp('eq', v('v0'), i32(2)), i32(100), v('v0'))],
      [[10], add(E.select(cmp('lt', v('v0'), i32(3)), i32(9), i32(5)), v('v0'))], // 9 + 9 is never reached
      [[5, 5], E.select(E.binary('and', cmp('ge', v('v0'), i32(1)), cmp('lt', v('v1'), i32(2))), add(v('v0'), v('v1')), i32(-3))],
    ] as [number[], Expr][]) {
      const r = rangeOf(e, envOf(extents))!;
      const [lo, hi] = truth(extents, e);
      expect(r.lo <= lo && hi <= r.hi, printExpr(e)).toBe(true);
      expect(r.exact, printExpr(e)).toBe(false);
    }
  });

  it('claims nothing about loads, unknown variables, non-constant divisors and values past int32', () => {
    const env = envOf([10]);
    expect(rangeOf(E.load('x', v('v0'), 'i32'), env)).toBeUndefined();
    expect(rangeOf(add(v('w'), i32(1)), env)).toBeUndefined();
    expect(rangeOf(E.binary('idiv', i32(7), v('v0')), env)).toBeUndefined();
    expect(rangeOf(mul(v('v0'), i32(1 << 30)), env)).toBeUndefined();
    expect(rangeOf(E.v('f', 'f32'), env)).toBeUndefined();
  });

  it('takes an inexact variable (a decl) as a bound only', () => {
    const env: RangeEnv = (name) => (name === 'd' ? { lo: 0, hi: 9, exact: false } : undefined);
    expect(rangeOf(idiv(v('d'), 2), env)).toMatchObject({ lo: 0, hi: 4, exact: false });
  });

  it('bounds every value on 1500 seeded random index expressions, exactly where it says so', () => {
    const r = rng(12);
    const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
    let exact = 0;
    for (let n = 0; n < 1500; n++) {
      const extents = Array.from({ length: int(1, 3) }, () => int(1, 9));
      const leaf = () => (r() < 0.7 ? v(`v${int(0, extents.length - 1)}`) : i32(int(-6, 20)));
      const cond = (): Expr => {
        const c = cmp((['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const)[int(0, 5)]!, ...(r() < 0.5 ? [leaf(), leaf()] as const : [gen(1), leaf()] as const));
        return r() < 0.3 ? E.binary(r() < 0.7 ? 'and' : 'or', c, cmp('lt', leaf(), leaf())) : c;
      };
      const gen = (depth: number): Expr => {
        if (depth === 0 || r() < 0.2) return leaf();
        const a = gen(depth - 1);
        switch (int(0, 9)) {
          case 0: return add(a, gen(depth - 1));
          case 1: return E.binary('sub', a, gen(depth - 1));
          case 2: return E.binary('mul', a, r() < 0.7 ? i32(int(-4, 9)) : gen(depth - 1));
          case 3: return E.binary('idiv', a, i32(int(1, 12)));
          case 4: return E.binary('mod', a, i32(int(1, 12)));
          case 5: return min(a, gen(depth - 1));
          case 6: return max(a, gen(depth - 1));
          case 7: return max(min(a, i32(int(0, 30))), i32(0));
          case 8: return E.select(cond(), a, gen(depth - 1));
          default: {
            // a select on a variable, added to that variable (exact only if the condition's variable is counted)
            const x = v(`v${int(0, extents.length - 1)}`);
            return add(E.select(cmp((['lt', 'ge', 'eq'] as const)[int(0, 2)]!, x, i32(int(-1, 8))), a, leaf()), x);
          }
        }
      };
      const e = gen(4);
      const got = rangeOf(e, envOf(extents));
      if (!got) continue;
      const [lo, hi] = truth(extents, e);
      const what = `${printExpr(e)} over [${extents}]: [${got.lo}, ${got.hi}]${got.exact ? ' exact' : ''}, values [${lo}, ${hi}]`;
      expect(got.lo <= lo && hi <= got.hi, what).toBe(true);
      if (got.exact) {
        expect([got.lo, got.hi], what).toEqual([lo, hi]);
        exact++;
      }
    }
    expect(exact).toBeGreaterThan(300); // the check above ran on many exact claims
  });
});

describe('the verifier with the range analysis', () => {
  it('reports a select index that leaves its buffer on some iteration', () => {
    const buffers = [{ name: 'x', dtype: 'float32', size: 7, kind: 'input' }, { name: 'y', dtype: 'float32', size: 8, kind: 'output' }] as const;
    const body = (idx: Expr) => [S.for('i0', 8, [S.store('y', v('i0'), E.load('x', idx, 'f32'))])];
    // i0 = 2 reads x[7]
    const bad = verifyKernel({ name: 'k', ops: [], body: body(E.select(cmp('lt', v('i0'), i32(3)), add(v('i0'), i32(5)), i32(0))) }, buffers);
    expect(bad.join('\n')).toMatch(/index select\(i0 < 3, i0 \+ 5, 0\) ranges over \[0, 7\], out of bounds for size 7/);
    const good = verifyKernel({ name: 'k', ops: [], body: body(E.select(cmp('lt', v('i0'), i32(2)), add(v('i0'), i32(5)), i32(0))) }, buffers);
    expect(good).toEqual([]);
  });
});
