// legalize: every rewrite on the loop interpreter, the program before vs after, over edge values (0 and -1 divisors,
// INT_MIN, negative operands, NaN, ±0, ±inf); what is left is only primitive ops; the result verifies.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Expr, type Program, S, type Scalar, type Stmt } from '../../codegen/loop/ir.js';
import { type LegalizeOptions, legalize } from '../../codegen/loop/legalize.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import type { DType, TypedArray } from '../../ir/types.js';
import { parseGraph } from '../../ir/parser.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { PASS_NAMES, irAfter, runPipeline } from '../../driver/pipeline.js';

const INT_MIN = -2147483648, INT_MAX = 2147483647;
const INTS = [0, 1, -1, 2, -2, 3, -3, 7, -7, 100, -100, INT_MIN, INT_MIN + 1, INT_MAX, INT_MAX - 1];
const FLOATS = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, -2.5, 3e38, -3e38, 1e-40, -1e-40, 7];
const DTYPE: Record<Scalar, DType> = { f32: 'float32', i32: 'int32', bool: 'bool' };
const TARGETS: LegalizeOptions[] = [{ ieeeMinMax: false }, { ieeeMinMax: true }];

/** Every ordered pair of the values, as two columns. */
const pairs = (xs: readonly number[]): [number[], number[]] => [xs.flatMap((x) => xs.map(() => x)), xs.flatMap(() => xs)];

/** out[i] = f(a[i], b[i]) over n elements; in a second kernel the same value goes through a decl and an assign. */
function program(t: Scalar, out: Scalar, n: number, f: (a: Expr, b: Expr) => Expr): Program {
  const a = E.load('a', E.v('i'), t), b = E.load('b', E.v('i'), t);
  const kernels = [
    { name: 'k0', ops: [], body: [S.for('i', n, [S.store('y', E.v('i'), f(a, b))])] },
    { name: 'k1', ops: [], body: [S.for('i', n, [S.decl('lg0', out, f(a, b)), S.assign('lg0', f(out === t ? E.v('lg0', t) : a, b)), S.store('z', E.v('i'), E.v('lg0', out))])] },
  ];
  return {
    name: 'legal',
    buffers: [{ name: 'a', dtype: DTYPE[t], size: n, kind: 'input' }, { name: 'b', dtype: DTYPE[t], size: n, kind: 'input' },
      { name: 'y', dtype: DTYPE[out], size: n, kind: 'output' }, { name: 'z', dtype: DTYPE[out], size: n, kind: 'output' }],
    kernels, inputs: [{ name: 'a', buffer: 'a' }, { name: 'b', buffer: 'b' }], params: [],
    outputs: [{ name: 'y', buffer: 'y' }, { name: 'z', buffer: 'z' }], updates: [],
  };
}

/** Ops a renderer must map (the primitives): everything in the program's expressions as `kind:op:type`. */
function opsOf(p: Program): Set<string> {
  const out = new Set<string>();
  const expr = (e: Expr): void => {
    if (e.k === 'unary') { out.add(`unary:${e.op}:${e.a.t}`); expr(e.a); }
    else if (e.k === 'binary') { out.add(`binary:${e.op}:${e.a.t}`); expr(e.a); expr(e.b); }
    else if (e.k === 'cast') { out.add(`cast:${e.a.t}>${e.t}`); expr(e.a); }
    else if (e.k === 'select') { expr(e.c); expr(e.a); expr(e.b); }
    else if (e.k === 'load') expr(e.idx);
  };
  const stmts = (ss: readonly Stmt[]): void => ss.forEach((s) => {
    if (s.k === 'for') stmts(s.body);
    else if (s.k === 'decl') expr(s.init);
    else if (s.k === 'assign') expr(s.value);
    else if (s.k === 'store') { expr(s.idx); expr(s.value); }
  });
  p.kernels.forEach((k) => stmts(k.body));
  return out;
}

const NOT_PRIMITIVE = /^(binary:(idiv|mod):|unary:sign:|unary:(abs|floor|ceil|round|sign):i32|binary:(max|min):i32|cast:(\w+)>\5$)/;

/** Runs the program and its legalized form on the same inputs; every output element must be the same bits. */
function check(p: Program, t: Scalar, as: number[], bs: number[], o: LegalizeOptions): void {
  const q = legalize(p, o);
  expect(verifyProgram(q), printProgram(q)).toEqual([]);
  for (const op of opsOf(q)) {
    expect(op, printProgram(q)).not.toMatch(NOT_PRIMITIVE);
    if (!o.ieeeMinMax) expect(op).not.toMatch(/^binary:(max|min):f32/);
  }
  const ctor = t === 'f32' ? Float32Array : Int32Array;
  const inputs = { a: ctor.from(as), b: ctor.from(bs) };
  const before = runProgram(p, inputs, {}).outputs, after = runProgram(q, inputs, {}).outputs;
  for (const [name, want] of before) {
    const got = after.get(name)! as TypedArray;
    const bad = [...want].flatMap((w, i) => (Object.is(w, got[i]) ? [] : [`${name}: a=${as[i]} b=${bs[i]}: ${got[i]}, want ${w}`]));
    expect(bad, printProgram(q)).toEqual([]);
  }
}

const [ia, ib] = pairs(INTS), [fa, fb] = pairs(FLOATS);
const bin = (op: Parameters<typeof E.binary>[0]) => (a: Expr, b: Expr) => E.binary(op, a, b);
const un = (op: Parameters<typeof E.unary>[0]) => (a: Expr) => E.unary(op, a);

describe('legalize', () => {
  for (const o of TARGETS) {
    describe(o.ieeeMinMax ? 'with IEEE max/min instructions' : 'without IEEE max/min instructions', () => {
      it.each(['div', 'idiv', 'mod', 'max', 'min'] as const)('i32 %s equals the original over every pair of edge values', (op) => {
        check(program('i32', 'i32', ia.length, bin(op)), 'i32', ia, ib, o);
      });

      it.each([['div', [0, -1, 1, 2, 3, 7, -7, INT_MIN, INT_MAX]], ['idiv', [1, 2, 3, 7, 64, INT_MAX]], ['mod', [1, 2, 3, 7, 64, INT_MAX]]] as const)(
        'i32 %s by each constant divisor equals the original over the edge values', (op, divisors) => {
          for (const d of divisors) check(program('i32', 'i32', INTS.length, (a) => E.binary(op, a, E.i32(d))), 'i32', INTS, INTS, o);
        });

      it.each(['abs', 'sign', 'floor', 'ceil', 'round', 'neg'] as const)('i32 %s equals the original over the edge values', (op) => {
        check(program('i32', 'i32', INTS.length, un(op)), 'i32', INTS, INTS, o);
      });

      it.each(['max', 'min'] as const)('f32 %s equals the original over every pair of NaN, ±0, ±inf and finite values', (op) => {
        check(program('f32', 'f32', fa.length, bin(op)), 'f32', fa, fb, o);
      });

      it.each(['max', 'min'] as const)('f32 %s with a constant operand, first or second, equals the original', (op) => {
        for (const c of [0, -0, 1, -1, NaN, Infinity, -Infinity]) {
          check(program('f32', 'f32', FLOATS.length, (a) => E.binary(op, a, E.f32(c))), 'f32', FLOATS, FLOATS, o);
          check(program('f32', 'f32', FLOATS.length, (a) => E.binary(op, E.f32(c), a)), 'f32', FLOATS, FLOATS, o);
        }
      });

      it('f32 sign equals the original over NaN, ±0, ±inf and finite values', () => {
        check(program('f32', 'f32', FLOATS.length, un('sign')), 'f32', FLOATS, FLOATS, o);
      });

      it('a cast to its own type is its operand; other casts stay', () => {
        check(program('f32', 'i32', FLOATS.length, (a) => E.cast('i32', { k: 'cast', t: 'f32', a })), 'f32', FLOATS, FLOATS, o);
      });
    });
  }

  it('computes a shared operand once, into a decl before its statement, named apart from the kernel\'s names', () => {
    // the operand reads the other kernel-level name lg1 and the loop is inside a decl named lg0
    const x = E.binary('add', E.load('a', E.v('i'), 'i32'), E.v('lg1'));
    const p: Program = {
      name: 'names', buffers: [{ name: 'a', dtype: 'int32', size: 4, kind: 'input' }, { name: 'y', dtype: 'int32', size: 4, kind: 'output' }],
      kernels: [{ name: 'k', ops: [], body: [S.decl('lg1', 'i32', E.i32(-3)), S.for('i', 4, [S.decl('lg0', 'i32', E.i32(5)),
        S.store('y', E.v('i'), E.binary('add', E.binary('mod', x, E.i32(3)), E.v('lg0')))])] }],
      inputs: [{ name: 'a', buffer: 'a' }], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
    };
    const q = legalize(p, { ieeeMinMax: false });
    expect(verifyProgram(q)).toEqual([]);
    const loop = q.kernels[0]!.body[1] as Extract<Stmt, { k: 'for' }>;
    expect(loop.body.map((s) => (s.k === 'decl' ? s.name : s.k))).toEqual(['lg0', 'lg2', 'lg3', 'store']);
    const a = Int32Array.of(-7, 0, 4, INT_MIN);
    expect([...runProgram(q, { a }, {}).outputs.get('y')!]).toEqual([...runProgram(p, { a }, {}).outputs.get('y')!]);
  });
});

describe('the legalize stage', () => {
  // f32 max (an instruction on wasm only) and i32 sign (never one instruction)
  const g = parseGraph(`graph @legal {
  %0 = input {name="x"} : f32[4,8]
  %1 = input {name="y"} : f32[4,8]
  %2 = max %0, %1 : f32[4,8]
  output "m" = %2
  %3 = input {name="a"} : i32[4,8]
  %4 = sign %3 : i32[4,8]
  output "s" = %4
}`);

  it('runs after schedule, before memplan: --dump-after legalize shows what the renderers get', () => {
    expect(PASS_NAMES.slice(PASS_NAMES.indexOf('schedule'))).toEqual(['schedule', 'legalize', 'launches', 'memplan']);
    for (const [caps, ieee] of [[WASM_CAPS, true], [LLVM_CAPS, false], [CUDA_CAPS, false]] as const) {
      const scheduled = irAfter(g, 'schedule', { caps }), legal = irAfter(g, 'legalize', { caps });
      expect(scheduled).toMatch(/sign\(/);
      expect(legal).not.toMatch(/sign\(/);
      const dumped: string[] = [];
      const c = runPipeline(g, { caps, dumpAfter: 'legalize', dump: (t) => dumped.push(t) });
      expect(dumped).toEqual([legal]);
      // the GPU's launches are merged after it (schedules/horizontal.ts): --dump-after launches is what renderers get
      expect(irAfter(g, 'launches', { caps }).startsWith(printProgram(c.program))).toBe(true);
      if (!caps.gpu) expect(printProgram(c.program)).toBe(legal);
      expect([...opsOf(c.program)].filter((op) => NOT_PRIMITIVE.test(op))).toEqual([]);
      expect(opsOf(c.program).has('binary:max:f32'), `f32 max kept on ${ieee ? 'wasm' : 'llvm/cuda'}`).toBe(ieee);
      expect(verifyProgram(c.program)).toEqual([]);
    }
  });
});
