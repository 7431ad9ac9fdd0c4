// cpu_pool.ts: pooling windows with channels as vector lanes, on odd shapes (window 3 stride 2, padding same and valid,
// 5 channels: no multiple of any target's lanes; float32 and int8, max and sum windows, the global average pool's
// reduce_sum) against the graph interpreter bit for bit, on the loop interpreter (llvm's schedule), wasm and llvm.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LLVM_CAPS, compileLlvm } from '../../../codegen/llvm/target.js';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import type { Stmt } from '../../../codegen/loop/ir.js';
import type { TargetCaps } from '../../../codegen/loop/schedule.js';
import { renderWasm } from '../../../codegen/wasm/render.js';
import { someExpr } from '../../../codegen/loop/visit.js';
import { WasmRunner } from '../../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../../codegen/wasm/target.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { interpret } from '../../../ir/interpreter.js';
import { parseGraph } from '../../../ir/parser.js';
import { expectSame, rng } from '../../ir/helpers.js';
import { runMain } from '../../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cpu-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const G = parseGraph(`graph @pools {
  %0 = input {name="x"} : f32[3,9,11,5]
  %1 = reduce_window %0 {kind="max", padding=[[1, 1], [1, 1]], strides=[2, 2], window=[3, 3]} : f32[3,5,6,5]
  %2 = reduce_window %0 {kind="max", padding=[[0, 0], [0, 0]], strides=[2, 2], window=[3, 3]} : f32[3,4,5,5]
  %3 = reduce_window %0 {kind="sum", padding=[[1, 1], [1, 1]], strides=[2, 2], window=[3, 3]} : f32[3,5,6,5]
  %4 = reduce_sum %0 {axes=[1, 2], keepdims=false} : f32[3,5]
  %5 = const {value=[99]} : f32[3,5]
  %6 = div %4, %5 : f32[3,5]
  %7 = quantize %0 {scale=0.05, zeroPoint=3} : i8[3,9,11,5]
  %8 = reduce_window %7 {kind="max", padding=[[1, 1], [1, 1]], strides=[2, 2], window=[3, 3]} : i8[3,5,6,5]
  %9 = dequantize %8 {scale=1, zeroPoint=0} : f32[3,5,6,5]
  %10 = cast %7 {dtype="int32"} : i32[3,9,11,5]
  %11 = reduce_window %10 {kind="sum", padding=[[0, 0], [0, 0]], strides=[2, 2], window=[3, 3]} : i32[3,4,5,5]
  %12 = reduce_sum %10 {axes=[1, 2], keepdims=false} : i32[3,5]
  output "max_same" = %1
  output "max_valid" = %2
  output "sum_same" = %3
  output "gap" = %6
  output "q_max_same" = %9
  output "q_sum_valid" = %11
  output "q_gap" = %12
}`);

/** Values in [-4, 4) (so the int8 ones clamp at both ends), ties of ±0 and a few infinities and NaNs. */
const X = (() => {
  const r = rng(11), x = Float32Array.from({ length: 3 * 9 * 11 * 5 }, () => Math.fround(8 * r() - 4));
  [[7, -0], [8, 0], [100, -Infinity], [200, Infinity], [333, NaN], [334, 0], [335, -0]].forEach(([i, v]) => { x[i!] = v!; });
  return x;
})();
const want = interpret(G, { x: X }).outputs;

/** Every output equals the interpreter's bit for bit. */
function expectInterpreter(outputs: ReadonlyMap<string, ArrayLike<number>>): void {
  for (const [name, v] of want) expectSame(outputs.get(name)!, v.data);
}

/** The vector loops of the scheduled kernels that accumulate into a local row (`row[c] = f(row[c], ...)`), in loops. */
function laneAccumulations(caps: TargetCaps): number {
  const { program } = runPipeline(G, { caps });
  const locals = new Set(program.kernels.flatMap((k) => k.body).flatMap(function all(s: Stmt): Stmt[] { return s.k === 'for' ? [s, ...s.body.flatMap(all)] : [s]; })
    .flatMap((s) => (s.k === 'local' ? [s.name] : [])));
  let n = 0;
  const visit = (ss: readonly Stmt[], depth: number): void => {
    for (const s of ss) if (s.k === 'for') {
      const reads = (buf: string) => s.body.some((b) => (b.k === 'decl' || b.k === 'store') && someExpr(b.k === 'decl' ? b.init : b.value, (e) => e.k === 'load' && e.buf === buf));
      const acc = s.body.some((b) => b.k === 'store' && locals.has(b.buf) && reads(b.buf));
      if (s.kind === 'vector' && acc && depth >= 2) n++;
      visit(s.body, depth + 1);
    }
  };
  for (const k of program.kernels) visit(k.body, 0);
  return n;
}

describe('cpu-pool: channels as vector lanes', () => {
  it('every pooling window and reduction over outer axes accumulates channel vectors inside its window loops (llvm and wasm)', () => {
    // 7 windows and reductions: each a channel row of lanes inside its window's loops; on wasm the int8 max window
    // stays as lowered (SIMD128's i32 lanes render add, sub, mul and dot products, no compare: vectorLegal refuses)
    expect(laneAccumulations({ ...LLVM_CAPS, threads: 1 })).toBe(7);
    expect(laneAccumulations(WASM_CAPS)).toBe(6);
  });

  it('the loop interpreter on the llvm and wasm schedules equals the graph interpreter', () => {
    for (const caps of [{ ...LLVM_CAPS, threads: 1 }, WASM_CAPS]) expectInterpreter(runProgram(runPipeline(G, { caps }).program, { x: X }, {}).outputs);
  });

  it('wasm and llvm equal the graph interpreter', () => {
    const c = runPipeline(G, { caps: WASM_CAPS });
    expectInterpreter(new WasmRunner(c.program, renderWasm(c.program, c.memory)).run({ x: X }, {}).outputs);
    const dir = path.join(tmp, 'llvm');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: G, batchSize: 3 }], weights: [], threads: 1 });
    expectInterpreter(runMain(path.join(dir, 'model_main'), dir, G, { x: X }));
  }, 120_000);
});
