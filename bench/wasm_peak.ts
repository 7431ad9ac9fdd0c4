// The SIMD128 peak of this machine for `npm run bench:wasm`: a register-resident multiply-add loop in wasm (12
// independent f32x4 accumulators, within the 14 registers V8 leaves a function on x86-64), with f32x4.mul then
// f32x4.add and with f32x4.relaxed_madd; and the flops a loop-IR kernel executes, to rate kernels against it.
import v8 from 'node:v8';
import binaryen from 'binaryen';
import type { Stmt } from '../codegen/loop/ir.js';
import { forEachExpr, stmtExprs } from '../codegen/loop/visit.js';

const ACCUMULATORS = 12;

/** A module exporting peak(n): n steps of acc = acc * x + y on every accumulator; returns a lane of their sum. */
function peakModule(relaxed: boolean): Uint8Array {
  const m = new binaryen.Module();
  m.setFeatures(binaryen.Features.MVP | binaryen.Features.SIMD128 | (relaxed ? binaryen.Features.RelaxedSIMD : 0));
  const v = binaryen.v128, N = 0, I = 1, X = 2, Y = 3, A = 4;
  const get = (i: number) => m.local.get(i, v);
  const api = binaryen as unknown as { _BinaryenSIMDTernary(m: number, op: number, a: number, b: number, c: number): number; RelaxedMaddVecF32x4: number };
  const ptr = (m as unknown as { ptr: number }).ptr;
  // x < 1 and y small: every accumulator converges to y / (1 - x) = 1, far from overflow and subnormals
  const body = [m.local.set(X, m.f32x4.splat(m.f32.const(0.9999999))), m.local.set(Y, m.f32x4.splat(m.f32.const(1e-7)))];
  for (let a = 0; a < ACCUMULATORS; a++) body.push(m.local.set(A + a, m.f32x4.splat(m.f32.const(a / 100))));
  const step = [];
  for (let a = 0; a < ACCUMULATORS; a++) {
    step.push(m.local.set(A + a, relaxed ? api._BinaryenSIMDTernary(ptr, api.RelaxedMaddVecF32x4, get(A + a), get(X), get(Y)) : m.f32x4.add(m.f32x4.mul(get(A + a), get(X)), get(Y))));
  }
  step.push(m.local.set(I, m.i32.add(m.local.get(I, binaryen.i32), m.i32.const(1))));
  step.push(m.br('L', m.i32.lt_s(m.local.get(I, binaryen.i32), m.local.get(N, binaryen.i32))));
  body.push(m.loop('L', m.block(null, step)));
  let sum = get(A);
  for (let a = 1; a < ACCUMULATORS; a++) sum = m.f32x4.add(sum, get(A + a));
  body.push(m.return(m.f32x4.extract_lane(sum, 0)));
  m.addFunction('peak', binaryen.createType([binaryen.i32]), binaryen.f32, [binaryen.i32, v, v, ...Array<number>(ACCUMULATORS).fill(v)], m.block(null, body, binaryen.f32));
  m.addFunctionExport('peak', 'peak');
  if (!m.validate()) throw new Error('bench: the peak module does not validate');
  m.optimize();
  const bin = m.emitBinary();
  m.dispose();
  return bin;
}

/**
 * GFLOP/s of the multiply-add loop: the best of `rounds` runs of about 0.1 s of CPU time each (the machine's other
 * load only slows a run down). undefined where the engine lacks relaxed SIMD.
 */
export function simdPeak(relaxed: boolean, rounds = 9): number | undefined {
  // one long call never leaves the baseline compiler (Liftoff) it started in: compile optimized at once, as
  // WasmRunner does
  v8.setFlagsFromString('--no-liftoff');
  const bin = peakModule(relaxed);
  if (!WebAssembly.validate(bin as BufferSource)) return undefined;
  const peak = new WebAssembly.Instance(new WebAssembly.Module(bin as BufferSource)).exports['peak'] as (n: number) => number;
  peak(1e6);
  // CPU time of this process (one thread), as the kernel breakdown measures: other processes' load counts less
  const now = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  let n = 1e6, best = Infinity;
  for (;;) { // about 0.1 s per run
    const t0 = now();
    peak(n);
    const ms = now() - t0;
    if (ms > 50) break;
    n *= 2;
  }
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    peak(n);
    best = Math.min(best, now() - t0);
  }
  return (n * ACCUMULATORS * 4 * 2) / (best * 1e6);
}

/** Floating-point adds, subtracts, multiplies and divides one run of the statements executes (a multiply-add is two). */
export function flops(stmts: readonly Stmt[]): number {
  let n = 0;
  for (const s of stmts) {
    if (s.k === 'for') { n += s.extent * flops(s.body); continue; }
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'binary' && x.t === 'f32' && ['add', 'sub', 'mul', 'div'].includes(x.op)) n++; });
  }
  return n;
}
