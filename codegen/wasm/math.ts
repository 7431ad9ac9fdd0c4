// Math written in wasm: exp, log, tanh, erf (computed in f64, rounded once to f32), vector exp and tanh, and the Philox RNG.
import { Type } from './encoder.js';
import { Locals, type Ref, WasmModule } from './module.js';

const LN2_HI = 6.93147180369123816490e-1, LN2_LO = 1.90821492927058770002e-10;

/** Adds $exp64, $log64, $expf, $logf, $tanhf, $erff, $philox to the module. */
export function addMath(w: WasmModule): void {
  const m = w.ops;
  const f64 = (v: number) => w.f64(v);
  const i64 = (v: bigint) => m.i64.const(v);
  // exp64(x): x = k ln2 + r, |r| <= ln2/2; exp(r) by Taylor to r^13, evaluated by Estrin's scheme (a tree of
  // depth 6 where Horner's rule is a chain of 26 dependent operations); scale by 2^k through the exponent bits
  {
    const L = new Locals(['f64']);
    const x = 0, k = L.get('k', 'f64'), r = L.get('r', 'f64'), p = L.get('p', 'f64');
    const r2 = L.get('r2', 'f64'), r4 = L.get('r4', 'f64');
    const X = () => w.get(x, 'f64'), K = () => w.get(k, 'f64'), R = () => w.get(r, 'f64');
    const fact = (n: number) => { let f = 1; for (let i = 2; i <= n; i++) f *= i; return f; };
    const add = (a: Ref, b: Ref) => m.f64.add(a as number, b as number) as Ref, mul = (a: Ref, b: Ref) => m.f64.mul(a as number, b as number) as Ref;
    // c_n + c_{n+1} r, then pairs of those joined with r^2, r^4, r^8
    const pair = (n: number) => add(f64(1 / fact(n)), mul(f64(1 / fact(n + 1)), R()));
    const R2 = () => w.get(r2, 'f64'), R4 = () => w.get(r4, 'f64');
    const quad = (n: number) => add(pair(n), mul(R2(), pair(n + 2)));
    const poly = w.valueBlock([
      w.set(r2, mul(R(), R())),
      w.set(r4, mul(R2(), R2())),
      add(add(quad(0), mul(R4(), quad(4))), mul(mul(R4(), R4()), add(quad(8), mul(R4(), pair(12))))),
    ], 'f64');
    const scale = (e: Ref) => m.f64.reinterpret(m.i64.shl(m.i64.extend_s(m.i32.add(m.i32.trunc_s.f64(e as number), m.i32.const(1023))), i64(52n))) as Ref;
    const half = m.f64.mul(K() as number, f64(0.5) as number) as Ref;
    const kh = L.get('kh', 'f64');
    const body = w.block([
      w.if(m.f64.ne(X() as number, X() as number) as Ref, w.ret(X())),
      w.if(m.f64.gt(X() as number, f64(709.78) as number) as Ref, w.ret(f64(Infinity))),
      w.if(m.f64.lt(X() as number, f64(-745.2) as number) as Ref, w.ret(f64(0))),
      w.set(k, m.f64.nearest(m.f64.mul(X() as number, f64(Math.LOG2E) as number)) as Ref),
      w.set(r, m.f64.sub(m.f64.sub(X() as number, m.f64.mul(K() as number, f64(LN2_HI) as number)), m.f64.mul(K() as number, f64(LN2_LO) as number)) as Ref),
      w.set(p, poly),
      // 2^k split in two factors so k down to -1075 stays representable
      w.set(kh, m.f64.floor(half as number) as Ref),
      w.ret(m.f64.mul(m.f64.mul(w.get(p, 'f64') as number, scale(w.get(kh, 'f64')) as number), scale(m.f64.sub(K() as number, w.get(kh, 'f64') as number) as Ref) as number) as Ref),
    ]);
    w.addFunction('exp64', ['f64'], 'f64', L, body);
  }
  addVectorExp(w);
  // log64(x): x = 2^e m, m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f), f = (m-1)/(m+1), odd series to f^25
  {
    const L = new Locals(['f64']);
    const x = 0, bits = L.get('bits', 'i64'), e = L.get('e', 'f64'), mm = L.get('m', 'f64'), f = L.get('f', 'f64'), f2 = L.get('f2', 'f64');
    const X = () => w.get(x, 'f64');
    let series: Ref = f64(1 / 25);
    for (let n = 23; n >= 1; n -= 2) series = m.f64.add(m.f64.mul(series as number, w.get(f2, 'f64') as number), f64(1 / n) as number) as Ref;
    const body = w.block([
      w.if(m.f64.ne(X() as number, X() as number) as Ref, w.ret(X())),
      w.if(m.f64.lt(X() as number, f64(0) as number) as Ref, w.ret(f64(NaN))),
      w.if(m.f64.eq(X() as number, f64(0) as number) as Ref, w.ret(f64(-Infinity))),
      w.if(m.f64.eq(X() as number, f64(Infinity) as number) as Ref, w.ret(X())),
      w.set(bits, m.i64.reinterpret(X() as number) as Ref),
      w.set(e, m.f64.convert_s.i64(m.i64.sub(m.i64.shr_u(w.get(bits, 'i64') as number, i64(52n)), i64(1023n))) as Ref),
      w.set(mm, m.f64.reinterpret(m.i64.or(m.i64.and(w.get(bits, 'i64') as number, i64(0x000fffffffffffffn)), i64(0x3ff0000000000000n))) as Ref),
      w.if(m.f64.gt(w.get(mm, 'f64') as number, f64(Math.SQRT2) as number) as Ref, w.block([
        w.set(mm, m.f64.mul(w.get(mm, 'f64') as number, f64(0.5) as number) as Ref),
        w.set(e, m.f64.add(w.get(e, 'f64') as number, f64(1) as number) as Ref),
      ])),
      w.set(f, m.f64.div(m.f64.sub(w.get(mm, 'f64') as number, f64(1) as number), m.f64.add(w.get(mm, 'f64') as number, f64(1) as number)) as Ref),
      w.set(f2, m.f64.mul(w.get(f, 'f64') as number, w.get(f, 'f64') as number) as Ref),
      w.ret(m.f64.add(m.f64.mul(w.get(e, 'f64') as number, f64(Math.LN2) as number), m.f64.mul(m.f64.mul(f64(2) as number, w.get(f, 'f64') as number), series as number)) as Ref),
    ]);
    w.addFunction('log64', ['f64'], 'f64', L, body);
  }
  const f32fn = (name: string, inner: (x: Ref, L: Locals) => Ref) => {
    const L = new Locals(['f32']);
    w.addFunction(name, ['f32'], 'f32', L, m.f32.demote(inner(m.f64.promote(w.get(0, 'f32') as number) as Ref, L) as number) as Ref);
  };
  f32fn('expf', (x) => w.call('exp64', [x], 'f64'));
  f32fn('logf', (x) => w.call('log64', [x], 'f64'));
  // tanh: sign(x) (1 - 2 / (exp(2|x|) + 1)); x itself when |x| < 1e-8 (and for NaN, ±0)
  f32fn('tanhf', (x, L) => {
    const xv = L.get('x', 'f64'), t = L.get('t', 'f64');
    const X = () => w.get(xv, 'f64');
    return w.valueBlock([
      w.set(xv, x),
      w.if(m.i32.eqz(m.f64.ge(m.f64.abs(X() as number), f64(1e-8) as number)) as Ref, w.ret(m.f32.demote(X() as number) as Ref)),
      w.set(t, w.call('exp64', [m.f64.mul(f64(2) as number, m.f64.abs(X() as number)) as Ref], 'f64')),
      m.f64.copysign(m.f64.sub(f64(1) as number, m.f64.div(f64(2) as number, m.f64.add(w.get(t, 'f64') as number, f64(1) as number))), X() as number) as Ref,
    ], 'f64');
  });
  // erf: Maclaurin series below 2.5, continued fraction for erfc above, ±1 beyond 6
  f32fn('erff', (x, L) => {
    const xv = L.get('x', 'f64'), ax = L.get('ax', 'f64'), term = L.get('term', 'f64'), sum = L.get('sum', 'f64'), n = L.get('n', 'f64');
    const cf = L.get('cf', 'f64'), i = L.get('i', 'i32');
    const AX = () => w.get(ax, 'f64');
    const g = (v: number) => w.get(v, 'f64');
    const series = w.block([
      w.set(term, AX()), w.set(sum, AX()), w.set(n, f64(1)),
      w.loop('erfs', w.block([
        w.set(term, m.f64.div(m.f64.mul(g(term) as number, m.f64.neg(m.f64.mul(AX() as number, AX() as number))), g(n) as number) as Ref),
        w.set(sum, m.f64.add(g(sum) as number, m.f64.div(g(term) as number, m.f64.add(m.f64.mul(f64(2) as number, g(n) as number), f64(1) as number))) as Ref),
        w.set(n, m.f64.add(g(n) as number, f64(1) as number) as Ref),
        w.brIf('erfs', m.f64.lt(g(n) as number, f64(60) as number) as Ref),
      ])),
      w.ret(m.f32.demote(m.f64.copysign(m.f64.mul(g(sum) as number, f64(2 / Math.sqrt(Math.PI)) as number), g(xv) as number)) as Ref),
    ]);
    // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))) evaluated backwards
    const contFrac = w.block([
      w.set(cf, AX()), w.set(i, w.i32(60)),
      w.loop('erfc', w.block([
        w.set(cf, m.f64.add(AX() as number, m.f64.div(m.f64.mul(m.f64.convert_s.i32(w.get(i, 'i32') as number), f64(0.5) as number), g(cf) as number)) as Ref),
        w.set(i, m.i32.sub(w.get(i, 'i32') as number, m.i32.const(1)) as Ref),
        w.brIf('erfc', m.i32.gt_s(w.get(i, 'i32') as number, m.i32.const(0)) as Ref),
      ])),
      w.ret(m.f32.demote(m.f64.copysign(m.f64.sub(f64(1) as number, m.f64.div(m.f64.div(w.call('exp64', [m.f64.neg(m.f64.mul(AX() as number, AX() as number)) as Ref], 'f64') as number, f64(Math.sqrt(Math.PI)) as number), g(cf) as number)), g(xv) as number)) as Ref),
    ]);
    return w.valueBlock([
      w.set(xv, x),
      w.set(ax, m.f64.abs(g(xv) as number) as Ref),
      w.if(m.f64.ne(g(xv) as number, g(xv) as number) as Ref, w.ret(m.f32.demote(g(xv) as number) as Ref)),
      w.if(m.f64.gt(AX() as number, f64(6) as number) as Ref, w.ret(m.f32.demote(m.f64.copysign(f64(1) as number, g(xv) as number)) as Ref)),
      w.if(m.f64.lt(AX() as number, f64(2.5) as number) as Ref, series, contFrac),
      f64(0),
    ], 'f64');
  });
  addPhilox(w);
}

/**
 * $exp64x2(v128) -> v128: exp64's steps on both f64 lanes (its early returns as lane selects after the main path, whose
 * out-of-range lanes compute garbage without trapping: the vector truncation saturates), so each lane has exp64's bits;
 * $expf4 and $tanhf4: expf and tanhf on four f32 lanes, as two f64x2 halves, each lane rounded once to f32 as the
 * scalar forms are.
 */
function addVectorExp(w: WasmModule): void {
  const m = w.ops;
  const f64 = (v: number) => m.f64x2.splat(m.f64.const(v));
  const add = (a: number, b: number) => m.f64x2.add(a, b), mul = (a: number, b: number) => m.f64x2.mul(a, b);
  {
    const L = new Locals(['v128']);
    const X = () => m.local.get(0, Type.v128);
    const v = (name: string) => { const i = L.get(name, 'v128'); return { get: () => m.local.get(i, Type.v128), set: (e: number) => m.local.set(i, e) }; };
    const k = v('k'), r = v('r'), r2 = v('r2'), r4 = v('r4'), p = v('p'), kh = v('kh');
    const fact = (n: number) => { let f = 1; for (let i = 2; i <= n; i++) f *= i; return f; };
    // the same tree as exp64's poly, operation for operation
    const pair = (n: number) => add(f64(1 / fact(n)), mul(f64(1 / fact(n + 1)), r.get()));
    const quad = (n: number) => add(pair(n), mul(r2.get(), pair(n + 2)));
    // 2^e for integral e: (i32(e) + 1023) << 52 in each i64 lane
    const scale = (e: number) => m.i64x2.shl(m.i64x2.extend_low_i32x4_s(m.i32x4.add(m.i32x4.trunc_sat_f64x2_s_zero(e), m.i32x4.splat(m.i32.const(1023)))), m.i32.const(52));
    const body = w.block([
      k.set(m.f64x2.nearest(mul(X(), f64(Math.LOG2E)))) as Ref,
      r.set(m.f64x2.sub(m.f64x2.sub(X(), mul(k.get(), f64(LN2_HI))), mul(k.get(), f64(LN2_LO)))) as Ref,
      r2.set(mul(r.get(), r.get())) as Ref,
      r4.set(mul(r2.get(), r2.get())) as Ref,
      p.set(add(add(quad(0), mul(r4.get(), quad(4))), mul(mul(r4.get(), r4.get()), add(quad(8), mul(r4.get(), pair(12)))))) as Ref,
      kh.set(m.f64x2.floor(mul(k.get(), f64(0.5)))) as Ref,
      p.set(mul(mul(p.get(), scale(kh.get())), scale(m.f64x2.sub(k.get(), kh.get())))) as Ref,
      // exp64's early returns, lane by lane: above 709.78 inf, below -745.2 zero, NaN itself
      p.set(m.v128.bitselect(f64(Infinity), p.get(), m.f64x2.gt(X(), f64(709.78)))) as Ref,
      p.set(m.v128.bitselect(f64(0), p.get(), m.f64x2.lt(X(), f64(-745.2)))) as Ref,
      w.ret(m.v128.bitselect(X(), p.get(), m.f64x2.ne(X(), X())) as Ref),
    ]);
    w.addFunction('exp64x2', ['v128'], 'v128', L, body);
  }
  /** A function of four f32 lanes computing f (f64x2 -> f64x2) on lanes 0-1 and 2-3, each result demoted once. */
  const halves = (name: string, f: (x: number, L: Locals) => number) => {
    const L = new Locals(['v128']);
    const X = () => m.local.get(0, Type.v128);
    const lo = f(m.f64x2.promote_low_f32x4(X()), L);
    const hi = f(m.f64x2.promote_low_f32x4(m.i8x16.shuffle(X(), X(), [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15])), L);
    const lanes = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
    w.addFunction(name, ['v128'], 'v128', L, m.i8x16.shuffle(m.f32x4.demote_f64x2_zero(lo), m.f32x4.demote_f64x2_zero(hi), lanes) as Ref);
  };
  halves('expf4', (x) => m.call('exp64x2', [x], Type.v128));
  // tanhf's steps: sign(x) (1 - 2 / (exp(2|x|) + 1)), x itself where not |x| >= 1e-8 (NaN, ±0, tiny)
  let half = 0;
  halves('tanhf4', (x, L) => {
    const xv = L.get(`x${half}`, 'v128'), t = L.get(`t${half++}`, 'v128');
    const X = () => m.local.get(xv, Type.v128);
    const sign = m.v128.const([0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    const r = m.v128.bitselect(X(), m.f64x2.sub(f64(1), m.f64x2.div(f64(2), add(m.local.get(t, Type.v128), f64(1)))), sign);
    return m.block(null, [
      m.local.set(xv, x),
      m.local.set(t, m.call('exp64x2', [mul(f64(2), m.f64x2.abs(X()))], Type.v128)),
      m.v128.bitselect(r, X(), m.f64x2.ge(m.f64x2.abs(X()), f64(1e-8))),
    ], Type.v128);
  });
}

/**
 * $philox(seed, counter, index) -> f32: Philox-4x32-10 word index%4 of block (index/4, counter, 0, 0) keyed (seed, 0),
 * as a uniform float (24 high bits * 2^-24); $philox_block(seed, counter, block) -> f32: word 0 of the block, its
 * words 1..3 left in globals philox_word1..3 (each thread's instance has its own), for callers using every word.
 */
function addPhilox(w: WasmModule): void {
  const m = w.ops;
  const i64 = (v: bigint) => m.i64.const(v);
  const u64 = (v: number) => m.i64.extend_u(v);
  /** The function's locals and the statements leaving block `first` (an i32 expression) in words c0..c3. */
  const block = (L: Locals, first: (g: (i: number) => number) => number) => {
    const [seed, counter] = [0, 1];
    const c = [L.get('c0', 'i32'), L.get('c1', 'i32'), L.get('c2', 'i32'), L.get('c3', 'i32')];
    const k0 = L.get('k0', 'i32'), k1 = L.get('k1', 'i32'), p0 = L.get('p0', 'i64'), p1 = L.get('p1', 'i64'), r = L.get('r', 'i32');
    const g = (i: number) => w.get(i, 'i32') as number;
    const round = w.block([
      w.set(p0, m.i64.mul(u64(m.i32.const(0xd2511f53 | 0)), u64(g(c[0]!))) as Ref),
      w.set(p1, m.i64.mul(u64(m.i32.const(0xcd9e8d57 | 0)), u64(g(c[2]!))) as Ref),
      w.set(c[0]!, m.i32.xor(m.i32.xor(m.i32.wrap(m.i64.shr_u(w.get(p1, 'i64') as number, i64(32n))), g(c[1]!)), g(k0)) as Ref),
      w.set(c[2]!, m.i32.xor(m.i32.xor(m.i32.wrap(m.i64.shr_u(w.get(p0, 'i64') as number, i64(32n))), g(c[3]!)), g(k1)) as Ref),
      w.set(c[1]!, m.i32.wrap(w.get(p1, 'i64') as number) as Ref),
      w.set(c[3]!, m.i32.wrap(w.get(p0, 'i64') as number) as Ref),
      w.set(k0, m.i32.add(g(k0), m.i32.const(0x9e3779b9 | 0)) as Ref),
      w.set(k1, m.i32.add(g(k1), m.i32.const(0xbb67ae85 | 0)) as Ref),
    ]);
    const uniform = (i: number) => m.f32.mul(m.f32.convert_u.i32(m.i32.shr_u(g(c[i]!), m.i32.const(8))), m.f32.const(5.9604644775390625e-8)) as Ref;
    const stmts = [
      w.set(c[0]!, first(g) as Ref), w.set(c[1]!, w.get(counter, 'i32')), w.set(c[2]!, w.i32(0)), w.set(c[3]!, w.i32(0)),
      w.set(k0, w.get(seed, 'i32')), w.set(k1, w.i32(0)),
      w.forLoop(r, 10, [round]),
    ];
    return { c, g, stmts, uniform };
  };
  {
    const L = new Locals(['i32', 'i32', 'i32']);
    const index = 2, word = L.get('w', 'i32');
    const { c, g, stmts } = block(L, (get) => m.i32.shr_u(get(index), m.i32.const(2)));
    const body = w.block([
      ...stmts,
      // word index % 4 of the block
      w.set(word, w.select(m.i32.eqz(m.i32.and(g(index), m.i32.const(3))) as Ref, w.get(c[0]!, 'i32'),
        w.select(m.i32.eq(m.i32.and(g(index), m.i32.const(3)), m.i32.const(1)) as Ref, w.get(c[1]!, 'i32'),
          w.select(m.i32.eq(m.i32.and(g(index), m.i32.const(3)), m.i32.const(2)) as Ref, w.get(c[2]!, 'i32'), w.get(c[3]!, 'i32'))))),
      w.ret(m.f32.mul(m.f32.convert_u.i32(m.i32.shr_u(g(word), m.i32.const(8))), m.f32.const(5.9604644775390625e-8)) as Ref),
    ]);
    w.addFunction('philox', ['i32', 'i32', 'i32'], 'f32', L, body);
  }
  {
    const L = new Locals(['i32', 'i32', 'i32']);
    const { stmts, uniform } = block(L, (get) => get(2));
    for (const i of [1, 2, 3]) m.addGlobal(`philox_word${i}`, Type.f32, true, w.f32(0) as number);
    w.addFunction('philox_block', ['i32', 'i32', 'i32'], 'f32', L, w.block([
      ...stmts,
      ...[1, 2, 3].map((i) => m.global.set(`philox_word${i}`, uniform(i) as number) as Ref),
      w.ret(uniform(0)),
    ]));
  }
}
