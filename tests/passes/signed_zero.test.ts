// The sign of zero, compared exactly (Object.is): the -0 vs +0 differences random graphs found (canonicalize's
// x+0 -> x), and every op that makes, keeps or drops a -0, on the loop IR under every schedule, on wasm, on llvm
// and on the emulated CUDA build.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda } from '../../codegen/cuda/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { LLVM_CAPS, compileLlvm } from '../../codegen/llvm/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import type { Graph } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { runPipeline } from '../../driver/pipeline.js';
import { runMain } from '../native.js';
import { type Data, differences, runBoth } from './differential.js';
import { randomBindings, randomGraph } from './random_graphs.js';

const CAPS: readonly [string, TargetCaps | undefined][] = [
  ['plain schedule', undefined], ['wasm schedule', WASM_CAPS], ['llvm schedule', LLVM_CAPS], ['CUDA schedule', CUDA_CAPS],
];

/** Differences between the interpreter and the wasm module compiled for WASM_CAPS, exact. */
function wasmDiffs(g: Graph, inputs: Data): string[] {
  const c = runPipeline(g, { caps: WASM_CAPS });
  const got = new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, {});
  return differences(interpret(g, inputs), got);
}

/** Zeros of both signs among ordinary values, a tie of halves (round), a value below one (floor, ceil) and NaN. */
const X = Float32Array.of(-0, 0, -0.3, 0.3, -0.5, 0.5, -2, NaN);

const MIN = {
  // x+0, 0+x and x-(-0) of x = -0 are +0; x+(-0) and x-0 are x (canonicalize removed all five until this fix)
  zeroSums: `graph @zero_sums {
  %0 = input {name="x"} : f32[8]
  %1 = const {value=[0]} : f32[8]
  %2 = const {value=[-0]} : f32[8]
  %3 = add %0, %1 : f32[8]
  %4 = add %1, %0 : f32[8]
  %5 = sub %0, %2 : f32[8]
  %6 = add %0, %2 : f32[8]
  %7 = sub %0, %1 : f32[8]
  output "x_plus_0" = %3
  output "0_plus_x" = %4
  output "x_minus_neg0" = %5
  output "x_plus_neg0" = %6
  output "x_minus_0" = %7
}`,
  // the form random graph 2026866 took: a negative times 0 is -0, plus 0 is +0
  zeroProduct: `graph @zero_product {
  %0 = input {name="x"} : f32[8]
  %1 = const {value=[0]} : f32[8]
  %2 = mul %0, %1 : f32[8]
  %3 = add %2, %1 : f32[8]
  output "y" = %3
}`,
  // the form random graph 2048796 took: 0 + max(-relu(x), -1), where -relu(x) is -0 for x <= 0
  negatedRelu: `graph @negated_relu {
  %0 = input {name="x"} : f32[8]
  %1 = const {value=[0]} : f32[8]
  %2 = max %0, %1 : f32[8]
  %3 = neg %2 : f32[8]
  %4 = const {value=[-1]} : f32[8]
  %5 = max %3, %4 : f32[8]
  %6 = add %1, %5 : f32[8]
  output "y" = %6
}`,
  // every elementwise op on zeros of both signs; max/min of +0 and -0 both ways round (-0 < +0, as Math.max and
  // IEEE 754-2019 maximum), sums, products and extrema of signed zeros, a matmul of -0 products, pad with -0
  everyOp: `graph @every_op {
  %0 = input {name="x"} : f32[8]
  %1 = neg %0 : f32[8]
  %2 = abs %0 : f32[8]
  %3 = sign %0 : f32[8]
  %4 = sqrt %0 : f32[8]
  %5 = tanh %0 : f32[8]
  %6 = erf %0 : f32[8]
  %7 = sin %0 : f32[8]
  %8 = floor %0 : f32[8]
  %9 = ceil %0 : f32[8]
  %10 = round %0 : f32[8]
  %11 = recip %0 : f32[8]
  %12 = rsqrt %0 : f32[8]
  %13 = log %0 : f32[8]
  %14 = max %0, %1 : f32[8]
  %15 = min %0, %1 : f32[8]
  %16 = max %1, %0 : f32[8]
  %17 = min %1, %0 : f32[8]
  %18 = mul %0, %1 : f32[8]
  %19 = div %0, %1 : f32[8]
  %20 = sub %0, %0 : f32[8]
  %21 = const {value=[3]} : f32[8]
  %22 = pow %0, %21 : f32[8]
  %23 = cast %0 {dtype="int32"} : i32[8]
  %24 = cast %23 {dtype="float32"} : f32[8]
  %25 = reshape %0 {shape=[4, 2]} : f32[4,2]
  %26 = reduce_sum %25 {axes=[1]} : f32[4]
  %27 = reduce_prod %25 {axes=[1]} : f32[4]
  %28 = reduce_max %25 {axes=[1]} : f32[4]
  %29 = reduce_min %25 {axes=[1]} : f32[4]
  %30 = reshape %1 {shape=[2, 4]} : f32[2,4]
  %31 = matmul %25, %30 : f32[4,4]
  %32 = pad %0 {padding=[[1, 1]], value=-0} : f32[10]
  %33 = eq %0, %1 : bool[8]
  %34 = select %33, %1, %0 : f32[8]
  output "neg" = %1
  output "abs" = %2
  output "sign" = %3
  output "sqrt" = %4
  output "tanh" = %5
  output "erf" = %6
  output "sin" = %7
  output "floor" = %8
  output "ceil" = %9
  output "round" = %10
  output "recip" = %11
  output "rsqrt" = %12
  output "log" = %13
  output "max" = %14
  output "min" = %15
  output "max_swapped" = %16
  output "min_swapped" = %17
  output "mul" = %18
  output "div" = %19
  output "sub" = %20
  output "pow" = %22
  output "cast" = %24
  output "reduce_sum" = %26
  output "reduce_prod" = %27
  output "reduce_max" = %28
  output "reduce_min" = %29
  output "matmul" = %31
  output "pad" = %32
  output "select" = %34
}`,
};

describe.each(CAPS)('the sign of zero: loop IR equals the graph interpreter exactly (%s)', (_, caps) => {
  for (const [name, text] of Object.entries(MIN)) {
    it(`${name} on zeros of both signs`, () => {
      expect(runBoth(parseGraph(text), { x: X }, {}, caps).diffs).toEqual([]);
    });
  }

  // random graphs whose loop programs gave -0 where the interpreter gives +0 (canonicalize's x+0 -> x and 0+x -> x)
  it.each([2026866, 2047484, 2048796])('random graph %i', (seed) => {
    const rg = randomGraph(seed);
    const [inputs, ps] = randomBindings(rg.graph, seed);
    const { diffs } = runBoth(rg.graph, Object.fromEntries(inputs), Object.fromEntries(ps), caps);
    expect(diffs, `random graph ${seed} (steps: ${rg.steps.join(', ')})`).toEqual([]);
  });
});

describe('the sign of zero: wasm equals the graph interpreter exactly', () => {
  for (const [name, text] of Object.entries(MIN)) {
    it(`${name} on zeros of both signs`, () => {
      expect(wasmDiffs(parseGraph(text), { x: X })).toEqual([]);
    });
  }
});

it('the minimal graphs make signed zeros where the interpreter says (the reference is IEEE 754, as NumPy)', () => {
  const out = interpret(parseGraph(MIN.zeroSums), { x: X }).outputs;
  const signs = (k: string) => [...out.get(k)!.data.slice(0, 3)].map((v) => (Object.is(v, -0) ? '-0' : String(v)));
  expect(signs('x_plus_0')).toEqual(['0', '0', '-0.30000001192092896']);
  expect(signs('0_plus_x')).toEqual(['0', '0', '-0.30000001192092896']);
  expect(signs('x_minus_neg0')).toEqual(['0', '0', '-0.30000001192092896']);
  expect(signs('x_plus_neg0')).toEqual(['-0', '0', '-0.30000001192092896']);
  expect(signs('x_minus_0')).toEqual(['-0', '0', '-0.30000001192092896']);
});

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-signed-zero-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Native outputs against the interpreter: a zero on either side must be the same zero; other values within
 * rtol 1e-5 + atol 1e-6 (libm's tanhf may differ from the interpreter's in the last place), NaN matching NaN.
 */
function signDiffs(g: Graph, inputs: Data, got: ReadonlyMap<string, TypedArray>): string[] {
  const bad: string[] = [];
  const show = (v: number) => (Object.is(v, -0) ? '-0' : String(v));
  for (const [k, v] of interpret(g, inputs).outputs) {
    v.data.forEach((w, i) => {
      const h = got.get(k)![i]!;
      const ok = w === 0 || h === 0 ? Object.is(w, h) : Number.isNaN(w) ? Number.isNaN(h) : w === h || Math.abs(w - h) <= 1e-6 + 1e-5 * Math.abs(w);
      if (!ok) bad.push(`${k}[${i}]: got ${show(h)}, interpreter ${show(w)}`);
    });
  }
  return bad;
}

// llvm: max/min picked the second operand on a tie (max(+0, -0) was -0) and the vector tanh gave tanh(-0) = +0;
// the CUDA runtime's kiln_fmax/kiln_fmin picked the second operand too
describe.each(['llvm', 'cuda (emulated)'])('the sign of zero on %s', (target) => {
  it('every op on zeros of both signs', () => {
    const dir = path.join(tmp, target === 'llvm' ? 'llvm' : 'cuda'), g = parseGraph(MIN.everyOp);
    const entries = [{ name: 'predict' as const, graph: g, batchSize: 1 }];
    if (target === 'llvm') compileLlvm({ outDir: dir, entries, weights: [], threads: 1 });
    else compileCuda({ outDir: dir, entries, weights: [], nvcc: false });
    const exe = path.join(dir, target === 'llvm' ? 'model_main' : 'model_main_emu');
    expect(signDiffs(g, { x: X }, runMain(exe, dir, g, { x: X }))).toEqual([]);
  });
});
