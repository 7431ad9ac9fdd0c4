// A convolution whose packed groups slide along its positions (pair_dot.ts slides): group g + 1 at position p is
// group g at p + 1 (the seed CNN's first conv: one input channel, a quad the three taps of one window column,
// stride 1), so its packing nest packs group 0 alone over a last dimension longer by K2 - 1 and the micro-kernel reads
// group g at p + g. Checked: which convolutions slide (the proof refuses strides, groups that mix window columns, and
// more channels), their packing buffer's size, and their values bit for bit against the graph interpreter on the loop
// interpreter (llvm's schedules with byte quads and with pairs, wasm's) and on llvm.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm, llvmCaps } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { expectSame, rng } from '../ir/helpers.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-slide-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Conv { readonly h: number; readonly w: number; readonly cin: number; readonly kh: number; readonly kw: number; readonly pad: number; readonly stride: number; readonly pool?: boolean }

/** quantize -> qconv (-> 2x2/2 max pooling) -> dequantize: random weights, biases and multipliers; 2 images. */
function conv(c: Conv, seed: number): { g: Graph; inputs: Record<string, TypedArray>; params: Record<string, TypedArray> } {
  const r = rng(seed), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1)), n = 2, cout = 8;
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [n, c.h, c.w, c.cin] });
  const w = b.param('w', { dtype: 'int8', shape: [c.kh, c.kw, c.cin, cout] }), bias = b.param('bias', { dtype: 'int32', shape: [cout] });
  const mult = b.constant(Array.from({ length: cout }, () => int(2 ** 29, 2 ** 31 - 1)), 'int32', [cout]);
  const shift = b.constant(Array.from({ length: cout }, () => int(-10, -5)), 'int32', [cout]);
  const xq = b.emit('quantize', [x], { scale: 0.02, zeroPoint: -128 });
  let y = b.emit('qconv', [xq, w, bias, mult, shift], { strides: [c.stride, c.stride], dilation: [1, 1], lhsDilation: [1, 1],
    padding: [[c.pad, c.pad], [c.pad, c.pad]], groups: 1, xZero: -128, outZero: -128, lo: -128, hi: 127 });
  if (c.pool) y = b.emit('reduce_window', [y], { kind: 'max', window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] });
  const g = b.finish('conv', [{ name: 'y', node: b.emit('dequantize', [y], { scale: 0.1, zeroPoint: -128 }) }]);
  const inputs = { x: Float32Array.from({ length: n * c.h * c.w * c.cin }, () => 3 * r() - 0.5) };
  const params = { w: Int8Array.from({ length: c.kh * c.kw * c.cin * cout }, () => int(-127, 127)), bias: Int32Array.from({ length: cout }, () => int(-3000, 3000)) };
  return { g, inputs, params };
}

const seed: Conv = { h: 10, w: 9, cin: 1, kh: 3, kw: 3, pad: 1, stride: 1 };
/** Each convolution, and whether its quads (VNNI's schedule) slide. */
const CASES: Record<string, [Conv, boolean]> = {
  'the seed CNN\'s first conv (3x3 same, 1 channel)': [seed, true],
  'pooled 2x2/2 after it (one kernel)': [{ ...seed, h: 12, w: 12, pool: true }, true],
  'valid 3x3': [{ ...seed, pad: 0 }, true],
  '3x1 taps (one group)': [{ ...seed, kw: 1 }, false],
  '2x3 taps (a quad mixes window columns)': [{ ...seed, kh: 2 }, false],
  '5x5 same (quads mix window columns)': [{ ...seed, kh: 5, kw: 5, pad: 2, h: 9, w: 11 }, false],
  'stride 2': [{ ...seed, stride: 2, h: 11, w: 11 }, false],
  '2 input channels': [{ ...seed, cin: 2 }, false],
};

/** The size of the buffer the first packing nest stores to (`pairs_...`), in words. */
function pairsSize(g: Graph, caps: Parameters<typeof runPipeline>[1]['caps']): { size: number; program: ReturnType<typeof runPipeline>['program'] } {
  const { program } = runPipeline(g, { caps });
  const b = program.buffers.find((x) => x.name.startsWith('pairs_'));
  return { size: b?.size ?? 0, program };
}

const VNNI = { ...llvmCaps('icelake-server'), threads: 2 }, PAIRS = { ...llvmCaps('x86-64-v3'), threads: 1 };

describe('convolution groups that slide along the positions', () => {
  it.each(Object.keys(CASES))('%s', (name) => {
    const [c, slides] = CASES[name]!;
    const { g, inputs, params } = conv(c, 7);
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs.get('y')!.data;
    const K = c.kh * c.kw * c.cin, K2 = Math.ceil(K / 4), oh = (c.h + 2 * c.pad - c.kh) / c.stride + 1, ow = (c.w + 2 * c.pad - c.kw) / c.stride + 1;
    const ohw = [Math.floor(oh), Math.floor(ow)];
    const { size, program } = pairsSize(g, VNNI);
    // sliding: [image][rows][columns + K2 - 1] (group 0 alone, K2 - 1 more columns); else [image][K2][rows][columns]
    expect(size).toBe(slides ? 2 * ohw[0]! * (ohw[1]! + K2 - 1) : 2 * K2 * ohw[0]! * ohw[1]!);
    expectSame(runProgram(program, inputs, params, { reverse: true }).outputs.get('y')!, want);
    for (const caps of [PAIRS, WASM_CAPS]) expectSame(runProgram(runPipeline(g, { caps }).program, inputs, params).outputs.get('y')!, want);
  });

  it('the seed conv, pooled and not, on llvm (icelake-server where this CPU has VNNI) equals the interpreter', () => {
    const vnni = /\bavx512_vnni\b/.test(readCpuinfo());
    for (const c of [seed, { ...seed, h: 12, w: 12, pool: true }]) {
      const { g, inputs, params } = conv(c, 9);
      const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs.get('y')!.data;
      const dir = path.join(tmp, c.pool ? 'pooled' : 'conv');
      compileLlvm({ outDir: dir, cpu: vnni ? 'icelake-server' : 'x86-64-v3', threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 2 }], weights: weightsOf(g, params) });
      expectSame(runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' }).get('y')!, want);
    }
  });
});

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}
