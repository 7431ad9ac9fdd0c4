// The max pooling gradient on the GPU (schedules/gpu_parity.ts): where windows do not overlap (stride = window),
// the nest computing each input's gradient from every candidate window runs m x m inputs an iteration, one copy per
// offset in the window with the candidates that offset rules out folded away, so each input loads its own window's
// values only. Checked bit for bit against the graph interpreter (the loop interpreter in both block orders, the
// emulated CUDA build) on inputs full of ties (the first maximum of a window gets the gradient), -0 and NaN.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { launchShapes } from '../../codegen/loop/gpu.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { gradients } from '../../passes/autodiff.js';
import { Schedule, parity } from '../../codegen/loop/schedules/index.js';
import type { Stmt } from '../../codegen/loop/ir.js';
import { parseGraph } from '../../ir/parser.js';
import { cudaLowered } from '../loop/schedules/gpu_helpers.js';
import { differences } from '../passes/differential.js';
import { expectNvccClean, runMain } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-poolgrad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** d(sum(maxpool(x) * t))/dx for x: f32[n, h, h, c], windows of `win` by `stride` (and `pad` on each side). */
function poolGrad(n: number, h: number, c: number, win: number, stride: number, pad = 0): Graph {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [n, h, h, c] });
  const pool = b.emit('reduce_window', [x], { kind: 'max', window: [win, win], strides: [stride, stride], padding: [[pad, pad], [pad, pad]] });
  const t = b.input('t', { dtype: 'float32', shape: pool.type.shape });
  const loss = b.emit('reduce_sum', [b.emit('mul', [pool, t])], { axes: [0, 1, 2, 3], keepdims: false });
  const [dx] = gradients(b, loss, [x]);
  return b.finish('pool_grad', [{ name: 'dx', node: dx! }]);
}

/** Values from a few levels (most windows hold ties), a -0 and a +0 in one window, a NaN in another. */
function inputs(g: Graph): Record<string, Float32Array> {
  const [xs, ts] = g.inputs.map((i) => i.type.shape.reduce((a, d) => a * d, 1));
  const x = Float32Array.from({ length: xs! }, (_, i) => [0, 1, 1, 2, -1, 0][(i * 7 + (i >> 3)) % 6]!);
  x[0] = -0; x[1] = 0; x[2] = -0; x[3] = -0;
  x[x.length - 5] = Number.NaN;
  const t = Float32Array.from({ length: ts! }, (_, i) => (i % 5 === 0 ? -0 : Math.sin(i) * 3));
  return { x, t };
}

/** The gradient kernel's program text, and every evaluator against the graph interpreter, bit for bit. */
function check(g: Graph, name: string, nvcc = false): string {
  const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program, text = printProgram(p);
  expect(verifyProgram(p)).toEqual([]);
  const data = inputs(g), ref = interpret(g, data, {});
  for (const reverse of [false, true]) expect(differences(ref, runProgram(p, data, {}, { reverse })), `reverse: ${reverse}`).toEqual([]);
  const dir = path.join(tmp, name);
  compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: g.inputs[0]!.type.shape[0]! }], weights: [], nvcc: false });
  const got = runMain(path.join(dir, 'model_main_emu'), dir, g, data).get('dx')!;
  const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));
  expect(bits(got)).toEqual(bits(ref.outputs.get('dx')!.data));
  if (nvcc && hasNvcc()) expectNvccClean(dir); // sm_90, -Xptxas -v: no warnings, no spills
  return text;
}

/** A random pooling gradient: windows of m by m (2 or 3) at stride m over f32[n, m*a, m*b, c] after relu, neg or nothing. */
function randomPoolGrad(seed: number): { g: Graph; specialized: boolean } {
  let state = seed * 2654435761 >>> 0;
  const int = (lo: number, hi: number) => { state = (Math.imul(state, 1103515245) + 12345) >>> 0; return lo + (state >>> 8) % (hi - lo + 1); };
  const m = int(2, 3), n = int(1, 2), rows = m * int(1, 4), cols = m * int(1, 4), c = int(1, 4), pre = int(0, 2);
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [n, rows, cols, c] });
  const v = pre === 0 ? x : pre === 1 ? b.emit('max', [x, b.constant(0, 'float32', x.type.shape)]) : b.emit('neg', [x]);
  const pool = b.emit('reduce_window', [v], { kind: 'max', window: [m, m], strides: [m, m], padding: [[0, 0], [0, 0]] });
  const t = b.input('t', { dtype: 'float32', shape: pool.type.shape });
  const loss = b.emit('reduce_sum', [b.emit('mul', [pool, t])], { axes: [0, 1, 2, 3], keepdims: false });
  const [dx] = gradients(b, loss, [x]);
  // a dimension of one window has no offset to tell apart: parity splits the others
  return { g: b.finish(`pool_grad_${seed}`, [{ name: 'dx', node: dx! }]), specialized: rows > m || cols > m };
}

describe('the max pooling gradient by window parity (cuda)', () => {
  it('random window sizes, shapes and activations before the pooling: bit for bit in both loop orders', () => {
    let specialized = 0;
    for (let seed = 1; seed <= 16; seed++) {
      const { g, specialized: split } = randomPoolGrad(seed);
      const p = runPipeline(g, { caps: CUDA_CAPS }).program, text = printProgram(p);
      expect(verifyProgram(p)).toEqual([]);
      if (split && /for \w+p\d* in 0\.\.[23] unroll/.test(text)) specialized++;
      const data = inputs(g), ref = interpret(g, data, {});
      for (const reverse of [false, true]) expect(differences(ref, runProgram(p, data, {}, { reverse })), `${g.name} reverse: ${reverse}`).toEqual([]);
    }
    // (where fusion splits the gradient over several kernels, small shapes, no nest holds the candidates' selects)
    expect(specialized).toBeGreaterThan(8);
  }, 60_000);

  it.each([
    ['2x2 windows, stride 2', 2, 8, 3, 2, 2],
    ['3x3 windows, stride 3', 2, 9, 2, 3, 3],
  ])('%s: one window\'s loads an input, bit for bit (loop interpreter both orders, emulated build)', (name, n, h, c, win, stride) => {
    const g = poolGrad(n, h, c, win, stride), text = check(g, `w${win}`, true);
    // the stores of the m x m copies, in unrolled loops over the offsets
    expect(text).toMatch(new RegExp(`for \\w+p\\d* in 0\\.\\.${win} unroll \\{\\n\\s+for \\w+p\\d* in 0\\.\\.${win} unroll`));
    // threads: one a window position of each image and channel (h/win x h/win x c x n), not one an input
    expect(launchShapes(runPipeline(g, { caps: CUDA_CAPS }).program).some((l) => l.grid * l.block === n * (h / win) ** 2 * c)).toBe(true);
  }, 60_000);

  it('parity refuses a nest it would not make load less, and one whose loops do not split', () => {
    const g = parseGraph(`graph @twice {
  %0 = input {name="x"} : f32[2,8,8,3]
  %1 = add %0, %0 : f32[2,8,8,3]
  output "y" = %1
}`);
    const s = new Schedule(cudaLowered(g), 0);
    const loops: string[] = [];
    for (let l = s.body.find((x) => x.k === 'for') as Extract<Stmt, { k: 'for' }> | undefined; l; l = l.body[0]?.k === 'for' ? l.body[0] : undefined) loops.push(l.v);
    expect(loops).toHaveLength(4);
    expect(s.check(parity, { nest: loops[0]!, loops: [loops[1]!, loops[2]!], m: 2 })).toMatch(/load as much as its iterations/);
    expect(s.check(parity, { nest: loops[0]!, loops: [loops[3]!], m: 2 })).toMatch(/do not split by 2/);
    expect(s.check(parity, { nest: 'nope', loops: [], m: 2 })).toMatch(/no top-level serial nest/);
  });

  it.each([
    ['odd rows (7x7, windows of 2: the last row takes none)', 1, 7, 2, 2, 2, 0],
    ['overlapping windows (3x3 by 2, padded)', 1, 8, 2, 3, 2, 1],
  ])('%s: left as it is or specialized, bit for bit', (name, n, h, c, win, stride, pad) => {
    check(poolGrad(n, h, c, win, stride, pad), `o${h}${win}`);
  }, 60_000);
});
