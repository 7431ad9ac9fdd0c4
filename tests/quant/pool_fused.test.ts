// An int8 conv and the max pooling after it as one kernel (fuse.ts pooledQconv, lower.ts, pair_dot.ts, pool_tile.ts):
// the pool takes the max of the conv's int32 accumulators and requantizes once per pooled output, where the graph
// (the interpreter, the oracle) requantizes every conv output and pools the int8 values. Requantize is
// non-decreasing for a multiplier >= 0 and a shift <= 0, so the two agree bit for bit: checked on the loop
// interpreter (the scheduled programs of llvm with and without VNNI, and of wasm), on llvm and on wasm, over windows
// with padding, odd sizes, the seed CNN's 2x2/2 and 3x3/3; and not fused where they would not agree, or where
// windows overlap (each shared conv output would be computed once per window).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm, llvmCaps } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import type { Program, Stmt } from '../../codegen/loop/ir.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { multiplyByQuantizedMultiplier } from '../../ir/quant.js';
import type { TypedArray } from '../../ir/types.js';
import { expectSame, rng } from '../ir/helpers.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Chain {
  readonly hw: number; readonly cin: number; readonly cout: number; readonly k: number; readonly convPad: number; readonly convStride: number;
  readonly win: number; readonly stride: number; readonly pad: number;
  /** the input's zero point (-128: u8 rows, dot4 on VNNI) and the conv's output zero point (-128: a ReLU's) */
  readonly xZero: number; readonly outZero: number;
  /** the conv's low clamp (default -128) */
  readonly lo?: number;
  /** the shifts (default -10..-4); a positive one is a left shift, which may wrap */
  readonly shifts?: readonly number[];
}

/** quantize -> qconv -> max reduce_window -> dequantize, random weights, biases and multipliers. */
function chain(c: Chain, seed: number): { g: Graph; inputs: Record<string, TypedArray>; params: Record<string, TypedArray> } {
  const r = rng(seed), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const b = new Builder(), n = 2;
  const x = b.input('x', { dtype: 'float32', shape: [n, c.hw, c.hw, c.cin] });
  const w = b.param('w', { dtype: 'int8', shape: [c.k, c.k, c.cin, c.cout] }), bias = b.param('bias', { dtype: 'int32', shape: [c.cout] });
  const mult = b.constant(Array.from({ length: c.cout }, () => int(2 ** 29, 2 ** 31 - 1)), 'int32', [c.cout]);
  const shift = b.constant(Array.from({ length: c.cout }, (_, i) => c.shifts?.[i % c.shifts.length] ?? int(-10, -4)), 'int32', [c.cout]);
  const xq = b.emit('quantize', [x], { scale: 0.02, zeroPoint: c.xZero });
  const q = b.emit('qconv', [xq, w, bias, mult, shift], { strides: [c.convStride, c.convStride], dilation: [1, 1], lhsDilation: [1, 1],
    padding: [[c.convPad, c.convPad], [c.convPad, c.convPad]], groups: 1, xZero: c.xZero, outZero: c.outZero, lo: c.lo ?? -128, hi: 127 });
  const p = b.emit('reduce_window', [q], { kind: 'max', window: [c.win, c.win], strides: [c.stride, c.stride], padding: [[c.pad, c.pad], [c.pad, c.pad]] });
  const g = b.finish('pool', [{ name: 'y', node: b.emit('dequantize', [p], { scale: 0.1, zeroPoint: c.outZero }) }]);
  const inputs = { x: Float32Array.from({ length: n * c.hw * c.hw * c.cin }, () => 3 * r() - 0.5) };
  const params = { w: Int8Array.from({ length: c.k * c.k * c.cin * c.cout }, () => int(-127, 127)), bias: Int32Array.from({ length: c.cout }, () => int(-3000, 3000)) };
  return { g, inputs, params };
}

const base: Chain = { hw: 12, cin: 1, cout: 8, k: 3, convPad: 1, convStride: 1, win: 2, stride: 2, pad: 0, xZero: -128, outZero: -128 };
/**
 * The seed CNN's first layer (2x2/2 after a 'same' 3x3), odd sizes, padded windows, windows longer than their stride
 * apart (3x3/3), several input channels (4: read in place, no im2col), a strided conv.
 */
const CHAINS: Record<string, Chain> = {
  'seed 2x2/2': base,
  'odd 13x13, 2x2/2 (a last row and column left over)': { ...base, hw: 13 },
  '3x3/3 windows, 11x11, 16 channels': { ...base, hw: 11, win: 3, stride: 3, cout: 16 },
  '3x3/3 windows padded 1': { ...base, hw: 10, win: 3, stride: 3, pad: 1 },
  '2x2/2 windows padded 1, signed rows, a zero point not ReLU\'s': { ...base, hw: 7, pad: 1, xZero: 5, outZero: 3 },
  '2x2/2, 4 input channels, valid conv (in place)': { ...base, hw: 9, cin: 4, convPad: 0 },
  'conv stride 2, 5x5 kernel, 2x2/2': { ...base, hw: 15, k: 5, convStride: 2, convPad: 2 },
};

/** The kernel that writes the pooled tensor (the graph's only reduce_window), its requantize statements, its stores of the output. */
function poolKernel(p: Program): { ops: readonly string[]; qmulhi: number; stores: number } {
  const k = p.kernels.find((x) => x.ops.includes('reduce_window'))!;
  const text = JSON.stringify(k.body), qmulhi = text.split('"op":"qmulhi"').length - 1;
  // the pooled tensor's stores (dequantized in the kernel: the output's), by how many times each runs (the loops
  // around it, a vector loop's lanes included)
  const out = p.outputs.find((o) => o.name === 'y')!.buffer;
  let stores = 0;
  const walk = (ss: readonly Stmt[], times: number): void => {
    for (const s of ss) {
      if (s.k === 'for') walk(s.body, times * s.extent);
      else if (s.k === 'store' && s.buf === out) stores += times;
    }
  };
  walk(k.body, 1);
  return { ops: k.ops, qmulhi, stores };
}

const CAPS = { 'llvm icelake-server (dot4)': { ...llvmCaps('icelake-server'), threads: 2 }, 'llvm x86-64-v3 (dot2)': { ...llvmCaps('x86-64-v3'), threads: 1 }, wasm: WASM_CAPS };

describe('int8 conv + max pooling as one kernel', () => {
  it.each(Object.keys(CHAINS))('%s: one kernel, one requantize per pooled output, bit for bit on the loop interpreter', (name) => {
    const { g, inputs, params } = chain(CHAINS[name]!, 11);
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs.get('y')!.data;
    const pooled = g.outputs[0]!.node.src[0]!.type.shape.reduce((a, d) => a * d, 1);
    for (const [target, caps] of Object.entries(CAPS)) {
      const steps = new Set<string>();
      const p = runPipeline(g, { caps, trace: (step) => steps.add(step) }).program;
      expect(steps, target).toContain('poolTile'); // the register tile (pool_tile.ts), not the lowered nest
      const k = poolKernel(p);
      expect(k.ops, target).toContain('qconv');
      // the pooled outputs each stored once, one requantize statement (vector lanes) computing them, and the conv's
      // outputs nowhere: no buffer of its shape
      expect(k.stores, target).toBe(pooled);
      expect(k.qmulhi, target).toBe(1);
      const conv = g.outputs[0]!.node.src[0]!.src[0]!.type.shape.reduce((a, d) => a * d, 1);
      expect(p.buffers.filter((b) => b.size === conv && b.dtype === 'int8'), target).toEqual([]);
      expectSame(runProgram(p, inputs, params, { reverse: true }).outputs.get('y')!, want);
    }
  });

  it('the seed chain, a padded 3x3/3 one and an odd one on llvm (icelake-server: vpdpbusd where this CPU has it, else x86-64-v3) and wasm equal the interpreter', () => {
    const vnni = /\bavx512_vnni\b/.test(readCpuinfo());
    for (const name of ['seed 2x2/2', '3x3/3 windows padded 1', 'odd 13x13, 2x2/2 (a last row and column left over)']) {
      const { g, inputs, params } = chain(CHAINS[name]!, 5);
      const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs.get('y')!.data;
      const dir = path.join(tmp, name.replace(/\W+/g, '_'));
      compileLlvm({ outDir: dir, cpu: vnni ? 'icelake-server' : 'x86-64-v3', threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 2 }], weights: weightsOf(g, params) });
      expectSame(runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' }).get('y')!, want);
      const c = runPipeline(g, { caps: WASM_CAPS });
      expectSame(new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, params).outputs.get('y')!, want);
    }
  });

  it('not fused where pooling before requantizing would differ (a left shift: it wraps; a window of padding alone) or repeat conv outputs (overlapping windows)', () => {
    // a left shift by 20 wraps large accumulators: requantize is then not monotonic, and the max taken first differs
    const wrap = { ...base, hw: 8, shifts: [20, -6] };
    const { g, inputs, params } = chain(wrap, 3);
    const [q0, q1] = [992, 4096].map((a) => multiplyByQuantizedMultiplier(a, 2 ** 30, 20));
    expect(q0).toBeGreaterThan(q1!); // the larger accumulator requantizes to the smaller value (4096 << 20 wraps to 0)
    // the window of padding alone: 1x1 windows of stride 3 padded 2 (the first window reads only padding): the
    // identity -128 there, where requantize's least value is the clamp's -100
    const lone = chain({ ...base, hw: 8, win: 1, stride: 3, pad: 2, outZero: 3, lo: -100 }, 3);
    // windows that overlap, 3x3/2 and 2x2/1 (the seed CNN's first conv pooled 2x2/1 would compute each output 4 times)
    const overlap = [chain({ ...base, hw: 9, win: 3, pad: 1 }, 4), chain({ ...base, hw: 7, stride: 1 }, 4)];
    for (const c of [{ g, inputs, params }, lone, ...overlap]) {
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs.get('y')!.data;
      const p = runPipeline(c.g, { caps: CAPS['llvm icelake-server (dot4)'] }).program;
      expect(poolKernel(p).ops).not.toContain('qconv');
      expectSame(runProgram(p, c.inputs, c.params, { reverse: true }).outputs.get('y')!, want);
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
