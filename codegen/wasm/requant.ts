// int8 requantization in wasm (ir/quant.ts's integer semantics): $qmulhi and $qshr on i64, instead of calls to the
// host's BigInt forms (measured: those calls were most of the seed MLP's int8 predict, two per output element).
import { Locals, type Ref, type WasmModule } from './module.js';

/** Adds $qmulhi (SaturatingRoundingDoublingHighMul) and $qshr (RoundingDivideByPOT) to the module. */
export function addRequant(w: WasmModule): void {
  const m = w.ops;
  const i32 = (v: number) => w.i32(v) as number;
  const i64 = (v: number) => m.i64.const(v);
  // qmulhi(a, b) = (a·b + nudge) / 2^31 truncated toward zero, nudge 2^30 for a·b >= 0 else 1 - 2^30 (|a·b| <= 2^62:
  // no overflow); INT32_MIN² is the one product whose quotient (2^31) does not fit: INT32_MAX
  {
    const L = new Locals(['i32', 'i32']), p = L.get('p', 'i64');
    const P = () => w.get(p, 'i64') as number;
    const product = m.i64.mul(m.i64.extend_s(w.get(0, 'i32') as number), m.i64.extend_s(w.get(1, 'i32') as number));
    const nudged = m.i64.add(P(), m.select(m.i64.ge_s(P(), i64(0)), i64(2 ** 30), i64(1 - 2 ** 30)));
    // signed division by 2^31 toward zero: a negative dividend biased by 2^31 - 1 before the arithmetic shift
    const q = L.get('q', 'i64'), Q = () => w.get(q, 'i64') as number;
    const div = m.i64.shr_s(m.i64.add(Q(), m.i64.and(m.i64.shr_s(Q(), i64(63)), i64(2 ** 31 - 1))), i64(31));
    const minSquared = m.i32.and(m.i32.eq(w.get(0, 'i32') as number, i32(-(2 ** 31))), m.i32.eq(w.get(1, 'i32') as number, i32(-(2 ** 31))));
    w.addFunction('qmulhi', ['i32', 'i32'], 'i32', L, w.valueBlock([
      w.set(p, product as Ref), w.set(q, nudged as Ref),
      m.select(minSquared, i32(2 ** 31 - 1), m.i32.wrap(div)) as Ref,
    ], 'i32'));
  }
  // qshr(x, e), e in 0..31: x >> e, plus 1 where the remainder x & (2^e - 1) exceeds half of 2^e (ties away from
  // zero: the threshold one higher for negative x); 2^31 - 1 wraps to INT32_MAX as the mask for e = 31
  {
    const L = new Locals(['i32', 'i32']), mask = L.get('mask', 'i32');
    const X = () => w.get(0, 'i32') as number, M = () => w.get(mask, 'i32') as number;
    const threshold = m.i32.add(m.i32.shr_s(M(), i32(1)), m.i32.lt_s(X(), i32(0)));
    w.addFunction('qshr', ['i32', 'i32'], 'i32', L, w.valueBlock([
      w.set(mask, m.i32.sub(m.i32.shl(i32(1), w.get(1, 'i32') as number), i32(1)) as Ref),
      m.i32.add(m.i32.shr_s(X(), w.get(1, 'i32') as number), m.i32.gt_s(m.i32.and(X(), M()), threshold)) as Ref,
    ], 'i32'));
  }
}
