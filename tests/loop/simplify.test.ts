// simplify: index arithmetic rewritten by exact integer identities over loop ranges. Checked on the reshape index
// of a pooling gradient (before/after text) and on seeded random index expressions evaluated at every point.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { printExpr } from '../../codegen/loop/printer.js';
import { simplify } from '../../codegen/loop/simplify.js';
import { rng } from '../passes/random_graphs.js';

/** A program storing `e` at every point of loops over `extents` (variables v0, v1, ...). */
function program(extents: number[], e: Expr): Program {
  const size = extents.reduce((a, b) => a * b, 1);
  let at: Expr = E.i32(0);
  extents.forEach((n, d) => { at = E.add(E.mul(at, E.i32(n)), E.v(`v${d}`)); });
  let body: Stmt[] = [S.store('y', at, e)];
  for (let d = extents.length - 1; d >= 0; d--) body = [S.for(`v${d}`, extents[d]!, body)];
  return {
    name: 'p', buffers: [{ name: 'y', dtype: 'int32', size, kind: 'output' }],
    kernels: [{ name: 'k0', ops: [], body }], inputs: [], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
  };
}

/** The simplified form of e inside loops over extents. */
function simplified(extents: number[], e: Expr): Expr {
  let s = simplify(program(extents, e)).kernels[0]!.body[0]!;
  while (s.k === 'for') s = s.body[0]!;
  return (s as Extract<Stmt, { k: 'store' }>).value;
}

const { v, i32, add, mul, idiv, mod } = E;

describe('simplify', () => {
  it('splits a flattened NHWC index back into its coordinates', () => {
    // (o0*6272 + o1*224 + o2*8 + o3) // 6272 % 64, // 224 % 28, // 8 % 28, % 8 over [64, 28, 28, 8]
    const flat = add(add(add(mul(v('v0'), i32(6272)), mul(v('v1'), i32(224))), mul(v('v2'), i32(8))), v('v3'));
    const ext = [64, 28, 28, 8];
    expect(printExpr(simplified(ext, mod(idiv(flat, 6272), 64)))).toBe('v0');
    expect(printExpr(simplified(ext, mod(idiv(flat, 224), 28)))).toBe('v1');
    expect(printExpr(simplified(ext, mod(idiv(flat, 8), 28)))).toBe('v2');
    expect(printExpr(simplified(ext, mod(flat, 8)))).toBe('v3');
  });
  it('divides by a common factor first: the 2x2 pooling window of a row', () => {
    // (v1*112 + v2*8 + v3) // 224 with v2*8 + v3 < 112 is v1 // 2
    expect(printExpr(simplified([28, 14, 8], idiv(add(add(mul(v('v0'), i32(112)), mul(v('v1'), i32(8))), v('v2')), 224)))).toBe('v0 // 2');
    expect(printExpr(simplified([28, 8], idiv(add(mul(v('v0'), i32(8)), v('v1')), 16)))).toBe('v0 // 2');
    expect(printExpr(simplified([28, 8], mod(add(mul(v('v0'), i32(8)), v('v1')), 16)))).toBe('v0 % 2 * 8 + v1');
  });
  it('keeps what the ranges do not decide', () => {
    expect(printExpr(simplified([10], idiv(v('v0'), 3)))).toBe('v0 // 3');
    expect(printExpr(simplified([10, 4], mod(add(mul(v('v0'), i32(4)), v('v1')), 6)))).toBe('(v0 * 4 + v1) % 6');
  });
  it('puts a quotient and its remainder back together: x // d * (c*d) + x % d * c is x * c', () => {
    // a head's column of a [32, 4, 8] kernel (MultiHeadAttention) after the split of its flat index: the column
    const flat = add(mul(v('v0'), i32(32)), v('v1'));
    expect(printExpr(simplified([32, 32], add(mul(mod(idiv(flat, 8), 4), i32(8)), mod(flat, 8))))).toBe('v1');
    expect(printExpr(simplified([32, 32], add(mul(v('v0'), i32(32)), add(mul(idiv(v('v1'), 8), i32(8)), mod(v('v1'), 8)))))).toBe('v0 * 32 + v1');
    expect(printExpr(simplified([40], add(mul(idiv(v('v0'), 4), i32(12)), mul(mod(v('v0'), 4), i32(3)))))).toBe('v0 * 3');
    // a dividend below 0 (floor division, remainder in [0, d)): still exact
    const neg = add(v('v0'), i32(-5));
    expect(printExpr(simplified([10], add(mul(idiv(neg, 4), i32(4)), mod(neg, 4))))).toBe('v0 + (-5)');
    // coefficients that do not pair, or two dividends: kept
    expect(printExpr(simplified([40], add(mul(idiv(v('v0'), 8), i32(4)), mod(v('v0'), 8))))).toBe('v0 // 8 * 4 + v0 % 8');
    expect(printExpr(simplified([40, 3], add(mul(idiv(v('v0'), 8), i32(8)), mod(v('v1'), 8))))).toBe('v0 // 8 * 8 + v1');
  });
  it('gives the same value at every point where quotients and remainders pair (200 seeded cases)', () => {
    const r = rng(12);
    const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
    for (let n = 0; n < 200; n++) {
      const extents = [int(1, 12), int(1, 12)];
      const x = add(add(mul(v('v0'), i32(int(-4, 9))), mul(v('v1'), i32(int(1, 5)))), i32(int(-20, 20)));
      const d = int(1, 9), c = int(-3, 4), c2 = r() < 0.8 ? c * d : int(-9, 9);
      const e = add(add(mul(idiv(x, d), i32(c2)), v('v1')), mul(mod(x, d), i32(c)));
      const p = program(extents, e);
      const want = runProgram(p, {}, {}).outputs.get('y')!;
      expect([...runProgram(simplify(p), {}, {}).outputs.get('y')!], `${printExpr(e)} over [${extents}] -> ${printExpr(simplified(extents, e))}`).toEqual([...want]);
    }
  });
  it('drops boolean units', () => {
    const c = E.binary('lt', v('v0'), i32(3));
    expect(printExpr(simplified([5], E.select(E.binary('and', c, E.bool(true)), i32(1), i32(0))))).toBe('select(v0 < 3, 1, 0)');
    expect(printExpr(simplified([5], E.select(E.binary('or', E.bool(false), c), i32(1), i32(0))))).toBe('select(v0 < 3, 1, 0)');
  });

  it('simplifies one expression in two loops of one name (in two kernels) by each loop\'s own range', () => {
    // interned, `i0 % 4` is one object in both loops: a result remembered for [0, 3) must not serve [0, 10) (loop
    // names are unique within a kernel only)
    const p: Program = {
      name: 'p', buffers: [{ name: 'y', dtype: 'int32', size: 3, kind: 'output' }, { name: 'z', dtype: 'int32', size: 10, kind: 'output' }],
      kernels: [
        { name: 'k0', ops: [], body: [S.for('i0', 3, [S.store('y', v('i0'), mod(v('i0'), 4))])] },
        { name: 'k1', ops: [], body: [S.for('i0', 10, [S.store('z', v('i0'), mod(v('i0'), 4))])] },
      ],
      inputs: [], params: [], outputs: [{ name: 'y', buffer: 'y' }, { name: 'z', buffer: 'z' }], updates: [],
    };
    const out = simplify(p).kernels.map((k) => ((k.body[0] as Extract<Stmt, { k: 'for' }>).body[0] as Extract<Stmt, { k: 'store' }>).value);
    expect(out.map((e) => printExpr(e))).toEqual(['i0', 'i0 % 4']);
    expect([...runProgram(simplify(p), {}, {}).outputs.get('z')!]).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
  });

  it('gives the same value at every point on 600 seeded random index expressions', () => {
    const r = rng(11);
    const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
    for (let n = 0; n < 600; n++) {
      const extents = Array.from({ length: int(1, 3) }, () => int(1, 12));
      const gen = (depth: number): Expr => {
        if (depth === 0 || r() < 0.25) return r() < 0.7 ? v(`v${int(0, extents.length - 1)}`) : i32(int(-5, 40));
        const a = gen(depth - 1);
        switch (int(0, 6)) {
          case 0: return E.binary('add', a, gen(depth - 1));
          case 1: return E.binary('sub', a, gen(depth - 1));
          case 2: return E.binary('mul', a, i32(int(-3, 20)));
          case 3: return E.binary('idiv', a, i32(int(1, 30)));
          case 4: return E.binary('mod', a, i32(int(1, 30)));
          case 5: return E.binary('min', a, i32(int(-5, 60)));
          default: return E.binary('max', a, gen(depth - 1));
        }
      };
      // half of them: flattened indices (strides near the extents' products) split by nearby divisors
      const flatIndex = (): Expr => {
        let stride = 1, acc: Expr = i32(int(0, 2) === 0 ? int(-3, 3) : 0);
        const strides: number[] = [];
        for (let d = extents.length - 1; d >= 0; d--) {
          const s = Math.max(1, stride + (r() < 0.3 ? int(-1, 1) : 0));
          strides.push(s);
          acc = add(acc, mul(v(`v${d}`), i32(s)));
          stride *= extents[d]! * (r() < 0.2 ? 2 : 1);
        }
        const pick = () => Math.max(1, strides[int(0, strides.length - 1)]! * int(1, 3) + (r() < 0.3 ? int(-1, 1) : 0));
        let x = acc;
        for (let k = int(1, 3); k > 0; k--) x = r() < 0.5 ? idiv(x, pick()) : mod(x, pick());
        return x;
      };
      const e = n % 2 ? flatIndex() : gen(4);
      const p = program(extents, e);
      const want = runProgram(p, {}, {}).outputs.get('y')!;
      const got = runProgram(simplify(p), {}, {}).outputs.get('y')!;
      expect([...got], `${printExpr(e)} over [${extents}] -> ${printExpr(simplified(extents, e))}`).toEqual([...want]);
    }
  });
});
