// Every int32 and bool op on wasm against the interpreter, over edge values, in short (scalar) and long (vector) loops.
import { describe, expect, it } from 'vitest';
import type { TypedArray } from '../../ir/types.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { runPipeline } from '../../driver/pipeline.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { E, type Expr, type Program, type Stmt, S } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { legalize } from '../../codegen/loop/legalize.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';

const INT_MIN = -2147483648, INT_MAX = 2147483647;
const EDGES = [0, -1, 1, INT_MIN, INT_MAX, 2, -2, 7, -7, INT_MIN + 1];
const FLOAT_EDGES = [NaN, Infinity, -Infinity, 3e9, -3e9, 2147483648, -2147483648, 2147483520, 1.5, -1.5, -0.5, 0, -0, 1e-30];
/** Loop extents: under 4 is a scalar loop; 4 and over runs four lanes at a time (and a scalar tail). */
const WIDTHS = [1, 3, 4, 11];

/** Runs graph text on wasm and on the interpreter for each set of inputs; lists every output element that differs. */
function mismatches(text: string, runs: Record<string, TypedArray>[]): string[] {
  const g = parseGraph(text);
  const c = runPipeline(g);
  const wasm = new WasmRunner(c.program, renderWasm(c.program, c.memory));
  const bad: string[] = [];
  for (const inputs of runs) {
    const got = wasm.run(inputs, {}).outputs;
    const show = (i: number) => Object.entries(inputs).map(([n, v]) => `${n}=${v[i % v.length]}`).join(' ');
    for (const [k, v] of interpret(g, new Map(Object.entries(inputs))).outputs) {
      const have = got.get(k)!;
      for (let i = 0; i < v.data.length; i++) {
        if (!Object.is(v.data[i], have[i])) bad.push(`${k} (${show(i)}): wasm ${have[i]}, interpreter ${v.data[i]}`);
      }
    }
  }
  return bad;
}

/** Graph text from `lines` written with %names and `{n}` for the length; every %o_<name> is an output. */
function graph(n: number, lines: string[]): string {
  const ids = new Map(lines.map((l, i) => [/^%(\w+)/.exec(l)![1]!, i]));
  const num = (l: string) => l.replaceAll('{n}', String(n)).replace(/%(\w+)/g, (_, v: string) => `%${ids.get(v)}`);
  const outs = [...ids].filter(([k]) => k.startsWith('o_')).map(([k, i]) => `  output "${k}" = %${i}`);
  return `graph @t {\n${[...lines.map((l) => `  ${num(l)}`), ...outs].join('\n')}\n}\n`;
}

/** Inputs in chunks of `width` elements taken from full arrays (the last chunk wraps around). */
function chunks(all: Record<string, TypedArray>, width: number): Record<string, TypedArray>[] {
  const len = Object.values(all)[0]!.length;
  const out: Record<string, TypedArray>[] = [];
  for (let s = 0; s < len; s += width) {
    out.push(Object.fromEntries(Object.entries(all).map(([k, v]) => {
      const c = new (v.constructor as new (n: number) => TypedArray)(width);
      for (let i = 0; i < width; i++) c[i] = v[(s + i) % len]!;
      return [k, c];
    })));
  }
  return out;
}

const pairs = <T>(xs: readonly T[]): [T[], T[]] => [xs.flatMap((x) => xs.map(() => x)), xs.flatMap(() => xs)];

describe('wasm int32 and bool ops against the interpreter', () => {
  const [as, bs] = pairs(EDGES);
  const intData = { a: Int32Array.from(as), b: Int32Array.from(bs) };
  const intOps = (n: number) => graph(n, [
    '%a = input {name="a"} : i32[{n}]', '%b = input {name="b"} : i32[{n}]',
    ...['add', 'sub', 'mul', 'div', 'pow', 'max', 'min'].map((op) => `%o_${op} = ${op} %a, %b : i32[{n}]`),
    ...['eq', 'ne', 'lt', 'le', 'gt', 'ge'].map((op) => `%o_${op} = ${op} %a, %b : bool[{n}]`),
    ...['neg', 'abs', 'sign', 'floor', 'ceil', 'round'].map((op) => `%o_${op} = ${op} %a : i32[{n}]`),
    '%o_tof32 = cast %a {dtype="float32"} : f32[{n}]', '%o_tobool = cast %a {dtype="bool"} : bool[{n}]',
    '%lt = lt %a, %b : bool[{n}]', '%o_select = select %lt, %a, %b : i32[{n}]',
    '%ab = cast %a {dtype="bool"} : bool[{n}]', '%bb = cast %b {dtype="bool"} : bool[{n}]',
    '%o_and = and %ab, %bb : bool[{n}]', '%o_or = or %ab, %bb : bool[{n}]', '%o_not = not %ab : bool[{n}]',
    '%o_booleq = eq %ab, %bb : bool[{n}]', '%o_boolne = ne %ab, %bb : bool[{n}]',
    '%o_boolselect = select %ab, %bb, %o_not : bool[{n}]', '%o_booltoi32 = cast %o_and {dtype="int32"} : i32[{n}]',
  ]);
  for (const width of WIDTHS) {
    it(`int32 binary, unary, compare, cast and select, and bool logic, over edge pairs, ${width} wide`, () => {
      expect(mismatches(intOps(width), chunks(intData, width))).toEqual([]);
    });
  }

  it('int32 division by each constant, and of each constant (the divide-by-constant path)', () => {
    const data = { a: Int32Array.from(EDGES) };
    for (const d of EDGES) {
      const text = graph(EDGES.length, ['%a = input {name="a"} : i32[{n}]', `%c = const {value=[${d}]} : i32[]`,
        '%cb = broadcast %c {shape=[{n}]} : i32[{n}]', '%o_by = div %a, %cb : i32[{n}]', '%o_of = div %cb, %a : i32[{n}]']);
      expect(mismatches(text, [data])).toEqual([]);
    }
  });

  for (const width of WIDTHS) {
    it(`float32 to int32 and bool casts of NaN, infinities, out-of-range and fractions, ${width} wide`, () => {
      const text = graph(width, ['%f = input {name="f"} : f32[{n}]', '%o_i32 = cast %f {dtype="int32"} : i32[{n}]',
        '%o_bool = cast %f {dtype="bool"} : bool[{n}]', '%b = cast %f {dtype="bool"} : bool[{n}]', '%o_back = cast %b {dtype="float32"} : f32[{n}]']);
      expect(mismatches(text, chunks({ f: Float32Array.from(FLOAT_EDGES) }, width))).toEqual([]);
    });
  }

  for (const width of WIDTHS) {
    it(`bool masks from float compares mixed with a loop-invariant bool, ${width} wide`, () => {
      // x and y compared lane by lane give masks; s, broadcast, is one bool for the whole loop
      const text = graph(width, [
        '%x = input {name="x"} : f32[{n}]', '%y = input {name="y"} : f32[{n}]', '%s = input {name="s"} : f32[]',
        '%sb = broadcast %s {shape=[{n}]} : f32[{n}]', '%sbool = cast %sb {dtype="bool"} : bool[{n}]',
        '%gt = gt %x, %y : bool[{n}]', '%ne = ne %x, %sb : bool[{n}]',
        '%and = and %gt, %sbool : bool[{n}]', '%o_and = cast %and {dtype="float32"} : f32[{n}]',
        '%and2 = and %sbool, %ne : bool[{n}]', '%o_and2 = cast %and2 {dtype="float32"} : f32[{n}]',
        '%or = or %gt, %sbool : bool[{n}]', '%o_or = cast %or {dtype="float32"} : f32[{n}]',
        '%not = not %gt : bool[{n}]', '%o_not = cast %not {dtype="float32"} : f32[{n}]',
        '%eq = eq %gt, %sbool : bool[{n}]', '%o_eq = cast %eq {dtype="float32"} : f32[{n}]',
        '%o_sel = select %sbool, %x, %y : f32[{n}]', '%o_selmask = select %gt, %x, %sb : f32[{n}]',
        '%o_bool = and %ne, %sbool : bool[{n}]',
      ]);
      const xs = [0, 1, -1, NaN, 2, Infinity, -0, 3], ys = [1, 0, -1, 2, NaN, 0, 0, 3];
      const data = chunks({ x: Float32Array.from(xs), y: Float32Array.from(ys) }, width);
      expect(mismatches(text, [0, 1, -2, NaN, -0].flatMap((s) => data.map((d) => ({ ...d, s: Float32Array.of(s) }))))).toEqual([]);
    });
  }

  it('loop-IR floor division and modulo (index arithmetic) by variables of every sign and positive constants, against the loop interpreter', () => {
    const [as2, bs2] = pairs(EDGES), n = as2.length;
    const raw = (op: 'idiv' | 'mod', a: Expr, b: Expr): Expr => ({ k: 'binary', t: 'i32', op, a, b }); // E.idiv folds
    const a = E.load('a', E.v('i'), 'i32'), b = E.load('b', E.v('i'), 'i32');
    const outs: [string, Expr][] = [['idiv', raw('idiv', a, b)], ['mod', raw('mod', a, b)]];
    for (const [j, d] of EDGES.entries()) {
      // a constant divisor is positive (the verifier's rule)
      if (d > 0) outs.push([`idiv_by${j}`, raw('idiv', a, E.i32(d))], [`mod_by${j}`, raw('mod', a, E.i32(d))]);
      outs.push([`idiv_of${j}`, raw('idiv', E.i32(d), b)], [`mod_of${j}`, raw('mod', E.i32(d), b)]);
    }
    const body: Stmt[] = [S.for('i', n, outs.map(([o, e]) => S.store(o, E.v('i'), e)))];
    const p: Program = {
      name: 'divmod',
      buffers: [{ name: 'a', dtype: 'int32', size: n, kind: 'input' }, { name: 'b', dtype: 'int32', size: n, kind: 'input' },
        ...outs.map(([o]) => ({ name: o, dtype: 'int32' as const, size: n, kind: 'output' as const }))],
      kernels: [{ name: 'k', ops: [], body }],
      inputs: [{ name: 'a', buffer: 'a' }, { name: 'b', buffer: 'b' }], params: [],
      outputs: outs.map(([o]) => ({ name: o, buffer: o })), updates: [],
    };
    const inputs = { a: Int32Array.from(as2), b: Int32Array.from(bs2) };
    // renderers take legalized programs (the pipeline's legalize stage)
    const q = legalize(p, WASM_CAPS.legal);
    const got = new WasmRunner(q, renderWasm(q, planMemory(q))).run(inputs, {}).outputs;
    const want = runProgram(p, inputs, {}).outputs;
    const bad: string[] = [];
    for (const [o] of outs) {
      const w = want.get(o)!, h = got.get(o)!;
      for (let i = 0; i < n; i++) if (w[i] !== h[i]) bad.push(`${o} (a=${as2[i]} b=${bs2[i]}): wasm ${h[i]}, loop interpreter ${w[i]}`);
    }
    expect(bad).toEqual([]);
  });
});
