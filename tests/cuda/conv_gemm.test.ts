// Implicit-GEMM convs on the GPU schedule (schedules/gpu_conv.ts, flatten.ts, merge.ts): a conv nest (forward, and
// the data gradient of a training step) is tiled as a matmul (register tiles, the input's im2col tile and the taps'
// conditions in shared memory beside the kernel's tile); the loop interpreter (both orders) and the emulated CUDA
// build equal the graph interpreter bit for bit, a tap outside the input still adding nothing (an infinite weight
// there gives no NaN).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda } from '../../codegen/cuda/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import type { Program } from '../../codegen/loop/ir.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { E, S } from '../../codegen/loop/ir.js';
import { dropDeadDecls, flatten, merge, schedule } from '../../codegen/loop/schedules/index.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { cudaLowered, expectMatchesGraph, kernelText } from '../loop/schedules/gpu_helpers.js';
import { runMain, weightsOf } from '../native.js';
import { expectSame, f32, load, matmulProgram, program, sched, text, v } from '../loop/schedules/helpers.js';
import { differences } from '../passes/differential.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-convgemm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Conv { n: number; h: number; c: number; co: number; k: number; pad?: number; stride?: number; dilation?: number; groups?: number; relu?: boolean }

/** y = conv(x, w) [+ b, relu], NHWC. */
function convGraph(s: Conv): Graph {
  const { n, h, c, co, k } = s, pad = s.pad ?? 0, st = s.stride ?? 1, dil = s.dilation ?? 1, groups = s.groups ?? 1;
  const oh = Math.floor((h + 2 * pad - dil * (k - 1) - 1) / st) + 1, out = `f32[${n},${oh},${oh},${co}]`;
  const relu = s.relu ? `
  %3 = param {name="b"} : f32[${co}]
  %4 = broadcast %3 {shape=[${n}, ${oh}, ${oh}, ${co}]} : ${out}
  %5 = add %2, %4 : ${out}
  %6 = const {value=[0.0]} : f32[]
  %7 = broadcast %6 {shape=[${n}, ${oh}, ${oh}, ${co}]} : ${out}
  %8 = max %5, %7 : ${out}
  output "y" = %8` : '\n  output "y" = %2';
  return parseGraph(`graph @c {
  %0 = input {name="x"} : f32[${n},${h},${h},${c}]
  %1 = param {name="w"} : f32[${k},${k},${c / groups},${co}]
  %2 = conv %0, %1 {dilation=[${dil}, ${dil}], groups=${groups}, lhsDilation=[1, 1], padding=[[${pad}, ${pad}], [${pad}, ${pad}]], strides=[${st}, ${st}]} : ${out}${relu}
}`);
}

const scheduled = (g: Graph): Program => schedule(cudaLowered(g), CUDA_CAPS);
/** Whether kernel k runs as a tiled matmul: a register tile and A's and B's shared tiles. */
const tiled = (p: Program, k = 0) => {
  const t = kernelText(p, k);
  return /local \w+: f32\[\d+\] register/.test(t) && (t.match(/local \w+: f32\[\d+\] shared/g) ?? []).length === 2;
};
/** Whether kernel k stages a tile of the taps' conditions (a conv without padding has none: every tap reads). */
const conditionTile = (p: Program, k = 0) => /local \w+: bool\[\d+\] shared/.test(kernelText(p, k));

describe('convs as implicit GEMM on the GPU schedule', () => {
  it.each<[string, Conv]>([
    ['3x3 same, bias and relu', { n: 2, h: 6, c: 3, co: 8, k: 3, pad: 1, relu: true }],
    ['3x3 valid, 10 channels (N padded)', { n: 4, h: 12, c: 4, co: 10, k: 3 }],
    ['stride 2', { n: 4, h: 17, c: 2, co: 8, k: 3, pad: 1, stride: 2 }],
    ['dilation 2', { n: 1, h: 9, c: 3, co: 6, k: 3, pad: 2, dilation: 2 }],
    ['5x5, one input channel', { n: 4, h: 8, c: 1, co: 16, k: 5, pad: 2 }],
  ])('%s: tiled, bit for bit in both loop orders', (_, spec) => {
    const g = convGraph(spec), p = scheduled(g);
    expect(tiled(p), printProgram(p)).toBe(true);
    expect(conditionTile(p), printProgram(p)).toBe((spec.pad ?? 0) > 0);
    expectMatchesGraph(g, p);
  });

  it('a grouped conv (the input channel read depends on the output channel) keeps its direct loops, bit for bit', () => {
    const g = convGraph({ n: 2, h: 5, c: 4, co: 4, k: 3, pad: 1, groups: 2 }), p = scheduled(g);
    expect(tiled(p)).toBe(false);
    expectMatchesGraph(g, p);
  });

  it('a tap outside the input adds nothing: an infinite weight there leaves the edge outputs finite', () => {
    const g = convGraph({ n: 4, h: 10, c: 2, co: 8, k: 3, pad: 1 }), p = scheduled(g);
    expect(tiled(p)).toBe(true);
    const x = Float32Array.from({ length: 800 }, (_, i) => 0.5 + (i % 7) / 8);
    const w = Float32Array.from({ length: 144 }, (_, i) => (i % 5) / 4 - 0.5);
    w[0] = Infinity; // tap (0, 0), channel 0, output channel 0: outside the input for the first row and column
    const ref = interpret(g, { x }, { w });
    const y = ref.outputs.get('y')!.data;
    expect(Number.isFinite(y[0]!) && !Number.isFinite(y[(10 + 1) * 8]!)).toBe(true);
    for (const reverse of [false, true]) expect(differences(ref, runProgram(p, { x }, { w }, { reverse }))).toEqual([]);
  });

  it('a CNN training step: the forward convs and the data gradient are tiled, every update bit for bit', () => {
    keras.utils.setRandomSeed(3);
    const model = keras.Sequential([
      keras.layers.Conv2D(4, 3, { activation: 'relu', padding: 'same', inputShape: [8, 8, 2] }),
      keras.layers.Conv2D(6, 3, { activation: 'relu' }),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(3, { activation: 'softmax' }),
    ]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const g = updatesAsOutputs(traceTrainStep(model, c, [[4, 8, 8, 2]], [[4]]).graph), p = scheduled(g);
    // the two forward convs and the second conv's data gradient
    expect(p.kernels.filter((kn, k) => kn.ops.includes('conv') && tiled(p, k)).length, printProgram(p)).toBe(3);
    expectMatchesGraph(g, p);
  });

  it('the emulated CUDA build equals the interpreter bit for bit (bias, relu, padded N, an infinite weight)', () => {
    const g = convGraph({ n: 3, h: 10, c: 3, co: 10, k: 3, pad: 1, relu: true });
    const x = Float32Array.from({ length: 900 }, (_, i) => Math.sin(i * 0.37) * 2);
    const w = Float32Array.from({ length: 270 }, (_, i) => Math.cos(i * 0.11) / 3);
    const b = Float32Array.from({ length: 10 }, (_, i) => i / 10 - 0.5);
    w[1] = Infinity;
    const dir = path.join(tmp, 'emu');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 3 }], weights: weightsOf(g, { w, b }), nvcc: false });
    expect(readFileSync(path.join(dir, 'model.cu'), 'utf8')).toMatch(/KILN_SHARED\(unsigned char, Cs\d+, /); // the conditions in bytes
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, { x }).get('y')!, want = interpret(g, { x }, { w, b }).outputs.get('y')!.data;
    expect(want.some((v) => Number.isNaN(v))).toBe(true);
    expect(Array.from(got)).toEqual(Array.from(want));
  }, 120_000);
});

describe('the primitives implicit GEMM adds', () => {
  it('flatten: a row-major index becomes the flat variable, another use a digit; same results', () => {
    const p = matmulProgram(6, 4, 5), s = sched(p);
    s.apply(flatten, { loops: ['i', 'j'], name: 'f' });
    // out[i*4 + j] -> out[f]; a[i*5 + k] -> a[f // 4 * 5 + k]; b[k*4 + j] -> b[k*4 + f % 4]
    expect(text(s)).toMatch(/out\[f\] = /);
    expect(text(s)).toMatch(/a\[f \/\/ 4 \* 5 \+ k\]/);
    expectSame(p, s.program);
    expect(sched(p).check(flatten, { loops: ['i', 'j'], name: 'k' })).toBe("'k' is declared in the kernel already");
    expect(sched(p).check(flatten, { loops: ['j', 'k'], name: 'f' })).toMatch(/not perfectly nested/);
  });

  it('merge: sibling loops fuse and a repeated decl is read once; loops that share a written array merge only where each iteration keeps to its element', () => {
    const body = (w: string, out: string, from: string, at = v(w)) => S.for(w, 8, [
      S.decl(`e${w}`, 'i32', E.binary('min', E.mul(v(w), E.i32(3)), E.i32(20))),
      S.store(out, at, E.binary('add', load(from, v(`e${w}`), 'f32'), E.f32(1))),
    ]);
    const p = program([f32('x', 24, 'input'), f32('y', 8, 'output'), f32('z', 8, 'output')], [body('a', 'y', 'x'), body('b', 'z', 'x')]);
    const s = sched(p);
    s.apply(merge, { loops: ['a', 'b'] });
    expect(text(s).match(/decl/g)?.length).toBe(1);
    expectSame(p, s.program);
    // both store y[i]: iteration i of the merged loop writes y[i] twice, the second last, as the loops did
    const same = program([f32('x', 24, 'input'), f32('y', 8, 'output')], [body('a', 'y', 'x'), body('b', 'y', 'x')]), t = sched(same);
    t.apply(merge, { loops: ['a', 'b'] });
    expectSame(same, t.program);
    // the second stores y[7 - i]: iteration i would overwrite what a later one writes first
    const q = program([f32('x', 24, 'input'), f32('y', 8, 'output')], [body('a', 'y', 'x'), body('b', 'y', 'x', E.binary('sub', E.i32(7), v('b')))]);
    expect(sched(q).check(merge, { loops: ['a', 'b'] })).toBe("both loops access 'y', which one writes, beyond a slab per iteration");
  });

  it('dropDeadDecls: a decl nothing reads goes, with the decls only it read', () => {
    const p = program([f32('x', 8, 'input'), f32('y', 8, 'output')], [S.for('i', 8, [
      S.decl('d0', 'i32', E.add(v('i'), E.i32(1))),
      S.decl('d1', 'f32', load('x', E.binary('min', v('d0'), E.i32(7)), 'f32')),
      S.store('y', v('i'), load('x', v('i'), 'f32')),
    ])]);
    const s = sched(p);
    s.apply(dropDeadDecls, { loop: 'i' });
    expect(text(s)).not.toMatch(/decl/);
    expectSame(p, s.program);
    expect(s.check(dropDeadDecls, { loop: 'i' })).toBe("no dead decl in loop 'i'");
  });
});
