// kiln's wasm encoder (codegen/wasm/encoder.ts) against binaryen as the oracle: every op it names, built by both
// with the same arguments, disassembles to the same text; structured control flow runs to the same values; an
// invalid module is a one-line internal error.
import { describe, expect, it } from 'vitest';
import binaryen from 'binaryen';
import { Module, Type } from '../../codegen/wasm/encoder.js';
import { Locals, WasmModule } from '../../codegen/wasm/module.js';

type Name = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';
const NAMES: Name[] = ['i32', 'i64', 'f32', 'f64', 'v128'];
const ours = (t: Name | 'none'): Type => Type[t];
const theirs = (t: Name | 'none'): binaryen.Type => binaryen[t];
const nameOf = (t: binaryen.Type): Name | 'none' => (t === binaryen.none ? 'none' : NAMES.find((n) => binaryen[n] === t)!);

/** A builder's namespaces, walked by path. */
type Tree = { [k: string]: unknown };
const at = (m: unknown, path: readonly string[]) => path.reduce<unknown>((o, k) => (o as Tree | undefined)?.[k], m) as ((...a: unknown[]) => number) | undefined;

/** Disassembly of a binary, as binaryen reads it back. */
function text(bin: Uint8Array): string {
  const m = binaryen.readBinary(bin);
  try {
    return m.emitText();
  } finally {
    m.dispose();
  }
}

/**
 * One function `f(params) -> result` whose body `build` makes from a builder and the local.get of each parameter,
 * built with kiln's encoder and with binaryen, both with one memory; their disassemblies.
 */
function both(params: Name[], build: (m: unknown, args: number[], kind: 'ours' | 'theirs') => number): { ours: string; theirs: string } {
  const b = new binaryen.Module();
  b.setFeatures(binaryen.Features.All);
  b.setMemory(1, 1, null);
  const bodyB = build(b, params.map((t, i) => b.local.get(i, theirs(t))), 'theirs');
  const result = nameOf(binaryen.getExpressionType(bodyB));
  b.addFunction('f', binaryen.createType(params.map(theirs)), theirs(result), [], bodyB);
  b.addFunctionExport('f', 'f');
  binaryen.setDebugInfo(true);
  let theirsBin: Uint8Array;
  try {
    theirsBin = b.emitBinary();
  } finally {
    binaryen.setDebugInfo(false);
    b.dispose();
  }
  const o = new Module();
  o.setMemory(1, 1, null);
  o.addFunction('f', params.map(ours), ours(result), [], build(o, params.map((t, i) => o.local.get(i, ours(t))), 'ours'));
  o.addFunctionExport('f', 'f');
  return { ours: text(o.emitBinary()), theirs: text(theirsBin) };
}

const SCALAR: readonly Name[] = ['i32', 'i64', 'f32', 'f64'];
const SIMD = ['i8x16', 'i16x8', 'i32x4', 'i64x2', 'f32x4', 'f64x2'] as const;
const laneType: Record<(typeof SIMD)[number], Name> = { i8x16: 'i32', i16x8: 'i32', i32x4: 'i32', i64x2: 'i64', f32x4: 'f32', f64x2: 'f64' };
const LANES: Record<(typeof SIMD)[number], number> = { i8x16: 16, i16x8: 8, i32x4: 4, i64x2: 2, f32x4: 4, f64x2: 2 };
/** Ops with immediates, tested on their own below; relaxed SIMD, which binaryen.js does not name. */
const special = (op: string) => /^(const|load|store|extract_lane|replace_lane|shuffle)|^relaxed_/.test(op);

/** The operand types of an op without immediates (arity from binaryen's function). */
function operands(ns: string, path: string[], arity: number): Name[] {
  const [op, sub] = path as [string, string | undefined];
  if (SCALAR.includes(ns as Name)) {
    if (sub) return [sub as Name]; // trunc_s.f32, convert_u.i64
    const from: Record<string, Name> = { wrap: 'i64', extend_s: 'i32', extend_u: 'i32', demote: 'f64', promote: 'f32' };
    if (op === 'reinterpret') return [({ i32: 'f32', i64: 'f64', f32: 'i32', f64: 'i64' } as Record<string, Name>)[ns]!];
    return Array<Name>(arity).fill(from[op] ?? (ns as Name));
  }
  if (op === 'splat') return [laneType[ns as (typeof SIMD)[number]]];
  if (/^sh[lr]/.test(op)) return ['v128', 'i32'];
  return Array<Name>(arity).fill('v128');
}

/** Every op path of a namespace of kiln's encoder (nested ones such as trunc_s.f32 included). */
function paths(ns: string): string[][] {
  const node = (new Module() as unknown as Tree)[ns] as Tree;
  return Object.entries(node).flatMap(([k, v]) => (typeof v === 'function' ? [[k]] : Object.keys(v as Tree).map((s) => [k, s])));
}

describe('every op of the encoder disassembles as binaryen writes it', () => {
  for (const ns of [...SCALAR, 'v128', ...SIMD]) {
    it(`${ns}: ops without immediates`, () => {
      const ops = paths(ns).filter((p) => !special(p[0]!));
      expect(ops.length).toBeGreaterThan(5);
      for (const path of ops) {
        const fb = at(new binaryen.Module(), [ns, ...path]);
        expect(fb, `binaryen.js has ${ns}.${path.join('.')}`).toBeTypeOf('function');
        const ts = operands(ns, path, fb!.length);
        const r = both(ts, (m, args) => at(m, [ns, ...path])!.call(undefined, ...args));
        expect(r.ours, `${ns}.${path.join('.')}(${ts.join(', ')})`).toBe(r.theirs);
      }
    });
  }

  it('binaryen.js names no SIMD op that the encoder lacks (the whole integer family included)', () => {
    const m = new binaryen.Module(), o = new Module() as unknown as Tree;
    for (const ns of ['v128', ...SIMD]) {
      const missing = Object.keys(m[ns as keyof binaryen.Module] as Tree).filter((k) => k !== 'pop' && !((o[ns] as Tree)[k]));
      expect(missing, ns).toEqual([]);
    }
    m.dispose();
  });

  it('constants: integer edges, float specials and v128 bytes', () => {
    const cases: [string, unknown][] = [
      ...[0, 1, -1, 63, 64, -64, -65, 2 ** 31 - 1, -(2 ** 31), 0x9e3779b9 | 0, 123456789].map((v): [string, unknown] => ['i32', v]),
      ...[0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 0x000fffffffffffffn, 0x3ff0000000000000n, 52n].map((v): [string, unknown] => ['i64', v]),
      ...['f32', 'f64'].flatMap((t) => [0, -0, 1, -1.5, Infinity, -Infinity, NaN, 1e-45, 5e-324, 3.4028234663852886e38, Math.PI, 5.9604644775390625e-8].map((v): [string, unknown] => [t, v])),
    ];
    for (const [t, v] of cases) {
      const r = both([], (m) => at(m, [t, 'const'])!(v));
      expect(r.ours, `${t}.const ${String(v)}`).toBe(r.theirs);
    }
    const bytes = [0, 1, 2, 0x7f, 0x80, 0xff, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0x80];
    const r = both([], (m) => at(m, ['v128', 'const'])!(bytes));
    expect(r.ours).toBe(r.theirs);
  });

  it('loads and stores: every width, offsets and alignments', () => {
    for (const ns of [...SCALAR, 'v128']) {
      for (const path of paths(ns).filter((p) => /^(load|store)/.test(p[0]!))) {
        const op = path[0]!;
        // binaryen asserts an alignment on SIMD accesses; kiln's 0 means natural as in binaryen's scalar ones
        const natural = ns !== 'v128' ? 0 : /^(load|store)$/.test(op) ? 16 : /x/.test(op) ? 8 : Number(/\d+/.exec(op)![0]) / 8;
        const align = (a: number, kind: string) => (a === 0 && kind === 'theirs' ? natural : a);
        if (/_lane$/.test(op)) {
          for (const lane of [0, 1]) {
            const r = both(['i32', 'v128'], (m, [p, v], kind) => at(m, [ns, op])!(8, align(0, kind), lane, p, v));
            expect(r.ours, `${ns}.${op} lane ${lane}`).toBe(r.theirs);
          }
          continue;
        }
        const value: Name = ns === 'v128' ? 'v128' : (ns as Name);
        for (const [offset, a] of [[0, 0], [16, 1], [65536, 0], [2 ** 32 - 1, 0]] as const) {
          const r = /^store/.test(op)
            ? both(['i32', value], (m, [p, v], kind) => at(m, [ns, op])!(offset, align(a, kind), p, v))
            : both(['i32'], (m, [p], kind) => at(m, [ns, op])!(offset, align(a, kind), p));
          expect(r.ours, `${ns}.${op} offset ${offset} align ${a}`).toBe(r.theirs);
        }
      }
    }
  });

  it('lane ops and shuffles', () => {
    for (const ns of SIMD) {
      for (const op of paths(ns).map((p) => p[0]!).filter((o) => /^(extract|replace)_lane/.test(o))) {
        for (const lane of [0, LANES[ns] - 1]) {
          const r = op === 'replace_lane'
            ? both(['v128', laneType[ns]], (m, [v, x]) => at(m, [ns, op])!(v, lane, x))
            : both(['v128'], (m, [v]) => at(m, [ns, op])!(v, lane));
          expect(r.ours, `${ns}.${op} ${lane}`).toBe(r.theirs);
        }
      }
    }
    const r = both(['v128', 'v128'], (m, [a, b]) => at(m, ['i8x16', 'shuffle'])!(a, b, [0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31]));
    expect(r.ours).toBe(r.theirs);
  });
});

describe('structured control flow', () => {
  it('nested labeled blocks and loops with branches out of them, if/else with values, select, calls and globals run as binaryen builds them', async () => {
    /** sum over i < n of (i odd ? i * k : g), g a global incremented per even i, stopping early when the sum passes 1000 */
    const build = (m: Module | binaryen.Module, t: (n: Name | 'none') => number) => {
      const M = m as Module, i32 = (v: number) => M.i32.const(v), get = (i: number) => M.local.get(i, t('i32'));
      M.addGlobal('g', t('i32'), true, i32(7));
      const [n, k, i, s] = [0, 1, 2, 3];
      const odd = M.i32.and(get(i), i32(1));
      const term = M.if(odd, M.call('mul', [get(i), get(k)], t('i32')), M.block(null, [
        M.global.set('g', M.i32.add(M.global.get('g', t('i32')), i32(1))),
        M.global.get('g', t('i32')),
      ], t('i32')));
      const body = M.block('out', [
        M.local.set(i, i32(0)),
        M.loop('next', M.block(null, [
          M.local.set(s, M.i32.add(get(s), term)),
          M.br('out', M.i32.gt_s(get(s), i32(1000))),
          M.local.set(i, M.i32.add(get(i), i32(1))),
          M.br('next', M.i32.lt_s(get(i), get(n))),
        ])),
      ]);
      M.addFunction('mul', [t('i32'), t('i32')] as never, t('i32'), [], M.i32.mul(get(0), get(1)));
      M.addFunction('f', [t('i32'), t('i32')] as never, t('i32'), [t('i32'), t('i32')], M.block(null, [
        body,
        M.drop(M.select(M.i32.eqz(get(s)), i32(1), i32(2))),
        M.return(M.select(M.i32.eqz(get(s)), i32(-1), get(s))),
      ], t('i32')));
      M.addFunctionExport('f', 'f');
    };
    const o = new Module();
    build(o, ours);
    const b = new binaryen.Module();
    b.setFeatures(binaryen.Features.All);
    const original = b.addFunction.bind(b);
    (b as unknown as { addFunction: unknown }).addFunction = (name: string, params: number[], result: number, vars: number[], body: number) => original(name, binaryen.createType(params), result, vars, body);
    build(b, theirs);
    expect(b.validate()).toBe(1);
    const run = async (bin: Uint8Array) => {
      const f = (await WebAssembly.instantiate(bin)).instance.exports['f'] as (n: number, k: number) => number;
      return [[0, 3], [1, 3], [5, 3], [10, 2], [100, 5]].map(([n, k]) => f(n!, k!));
    };
    const want = await run(b.emitBinary());
    b.dispose();
    expect(await run(o.emitBinary())).toEqual(want);
    // the same in JavaScript: a do-while, the global kept from call to call
    let g = 7;
    const ref = (n: number, k: number) => {
      let s = 0, i = 0;
      do {
        s += i & 1 ? i * k : ++g;
        if (s > 1000) break;
        i++;
      } while (i < n);
      return s === 0 ? -1 : s;
    };
    expect(want).toEqual([[0, 3], [1, 3], [5, 3], [10, 2], [100, 5]].map(([n, k]) => ref(n!, k!)));
  });
});

describe('an invalid module', () => {
  it('is a kiln internal error in one line with the engine\'s reason', () => {
    const w = new WasmModule();
    w.addFunction('f', [], 'f32', new Locals(), w.i32(1));
    expect(() => w.finish()).toThrow(/^wasm: internal error: kiln wrote an invalid module \(.*f32.*\)$/);
  });

  it('names a branch to a label that does not enclose it', () => {
    const w = new WasmModule();
    w.addFunction('f', [], 'none', new Locals(), w.block([w.loop('a', w.nop()), w.brIf('a', w.i32(1))]));
    expect(() => w.finish()).toThrow(/^wasm: internal error: branch to a, not an enclosing label$/);
  });
});

describe("binaryen's optimize-instructions rewrites that mattered, in the encoder", () => {
  /** f(x) = x op c for a scalar or a 4-lane op, built by kiln's encoder; its disassembly and its function. */
  async function divide(t: 'f32' | 'f64', c: number, vector: boolean) {
    const o = new Module(), T = Type[t];
    const x = o.local.get(0, vector ? Type.v128 : T), k = t === 'f32' ? o.f32.const(c) : o.f64.const(c);
    const body = !vector ? (t === 'f32' ? o.f32.div(x, k) : o.f64.div(x, k))
      : t === 'f32' ? o.f32x4.extract_lane(o.f32x4.div(o.f32x4.splat(o.local.get(0, T)), o.f32x4.splat(k)), 3)
        : o.f64x2.extract_lane(o.f64x2.div(o.f64x2.splat(o.local.get(0, T)), o.f64x2.splat(k)), 1);
    o.addFunction('f', [T], T, [], body);
    o.addFunctionExport('f', 'f');
    const bin = o.emitBinary();
    return { text: text(bin), f: (await WebAssembly.instantiate(bin)).instance.exports['f'] as (x: number) => number };
  }
  const f32s = [0, -0, 1, -1, 3, 1 / 3, 1e-45, 1.1754942e-38, 1.17549435e-38, 3.4028235e38, -2.5e-39, 7.1e-44, Infinity, -Infinity, NaN, 123456.79].map(Math.fround);

  it('x / c by a power of two is x * (1 / c): the same bits, subnormals and specials included; other divisors stay divisions', async () => {
    for (const vector of [false, true]) {
      for (const c of [32, 0.5, -4, 2 ** 126, 2 ** -126]) {
        const { text: t, f } = await divide('f32', c, vector);
        expect(t, `x / ${c}`).not.toMatch(/div/);
        for (const x of f32s) expect(Object.is(f(x), Math.fround(x / c)) || (Number.isNaN(f(x)) && Number.isNaN(x / c)), `${x} / ${c}`).toBe(true);
      }
      for (const c of [3, 2 ** 127, 2 ** -127, 0, -0, Infinity, NaN]) {
        const { text: t, f } = await divide('f32', c, vector);
        expect(t, `x / ${c}: 1 / c is not a normal f32`).toMatch(/div/);
        for (const x of f32s) expect(Object.is(f(x), Math.fround(x / c)) || (Number.isNaN(f(x)) && Number.isNaN(x / c)), `${x} / ${c}`).toBe(true);
      }
      const d = await divide('f64', 2 ** -1000, vector);
      expect(d.text).not.toMatch(/div/);
      for (const x of [5e-324, 1e-300, 3, -7.5e307, 1e300]) expect(d.f(x)).toBe(x / 2 ** -1000);
      expect((await divide('f64', 2 ** 1023, vector)).text).toMatch(/div/);
      // a divisor one ulp above a power of two, whose log2 rounds to an integer
      const near = 2 ** 20 * (1 + 2 ** -52), n = await divide('f64', near, vector);
      expect(n.text).toMatch(/div/);
      for (const x of [1, 3, 1e300, 5e-324, -7]) expect(n.f(x)).toBe(x / near);
    }
  });

  it('x * 2^k is x << k, either operand the constant; the same wrapped products', async () => {
    for (const k of [1, 2, 32, 2048, -(2 ** 31), 3, -4]) {
      const o = new Module();
      o.addFunction('f', [Type.i32], Type.i32, [], o.i32.add(o.i32.mul(o.local.get(0, Type.i32), o.i32.const(k)), o.i32.mul(o.i32.const(k), o.local.get(0, Type.i32))));
      o.addFunctionExport('f', 'f');
      const bin = o.emitBinary(), t = text(bin);
      expect(t.includes('i32.mul'), `x * ${k}`).toBe(![1, 2, 32, 2048, -(2 ** 31)].includes(k));
      const f = (await WebAssembly.instantiate(bin)).instance.exports['f'] as (x: number) => number;
      for (const x of [0, 1, -1, 7, 0x12345678, -(2 ** 31), 2 ** 31 - 1]) expect(f(x)).toBe((Math.imul(x, k) * 2) | 0);
    }
  });
});
