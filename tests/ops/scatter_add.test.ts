// scatter_add (ir/ops.ts): its type rule, the interpreter against a plain loop, its gradient and gather's by finite
// differences, and every target (loop interpreter on CPU and GPU schedules, wasm, llvm, cuda emulated, freestanding C)
// bit for bit against the interpreter, with repeated, out-of-range and no indices and rows no index reaches.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { DEFAULT_CAPS } from '../../codegen/loop/schedule.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder, type Graph, type Node, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { printGraph } from '../../ir/printer.js';
import { ShapeError, inferType } from '../../ir/ops.js';
import { type TypedArray, toTyped } from '../../ir/types.js';
import { verify } from '../../ir/verifier.js';
import { gradients } from '../../passes/autodiff.js';
import { root } from '../built.js';
import { runMain } from '../native.js';
import { type Data, runBoth } from '../passes/differential.js';
import { rng } from '../passes/random_graphs.js';

const topoOps = (g: Graph) => topoSort(g).map((n) => n.op);
const f32 = (...shape: number[]) => ({ dtype: 'float32' as const, shape });
const i32 = (...shape: number[]) => ({ dtype: 'int32' as const, shape });

/** Values whose sums depend on their order in float32 (magnitudes 2^-12 to 2^12), with -0 and NaN where asked. */
function values(n: number, seed: number, special = false): Float32Array {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * 2 ** Math.floor(r() * 24 - 12);
  if (special && n > 3) { out[1] = -0; out[n - 2] = NaN; }
  return out;
}

/** Indices in [-2, size + 2): repeated, and some out of range (clamped). */
function indices(n: number, size: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * (size + 4)) - 2);
}

interface Case {
  readonly name: string;
  /** src, idx and the attributes of the scatter */
  readonly src: { dtype: 'float32' | 'int32'; shape: number[] };
  readonly idx: number[];
  readonly axis: number;
  readonly size: number;
}

// axis 0 (an embedding's gradient), an inner axis with 2-D indices, the last axis (slices of one element), int32,
// one index (rank 0), no indices at all, and an empty slice
const CASES: readonly Case[] = [
  { name: 'rows', src: f32(40, 8), idx: [40], axis: 0, size: 9 },
  { name: 'inner', src: f32(2, 3, 4, 3), idx: [3, 4], axis: 1, size: 5 },
  { name: 'last', src: f32(4, 6), idx: [6], axis: 1, size: 3 },
  { name: 'int', src: i32(12, 5), idx: [12], axis: 0, size: 4 },
  { name: 'scalar-index', src: f32(3, 4), idx: [], axis: 1, size: 2 },
  { name: 'no-index', src: f32(0, 4), idx: [0], axis: 0, size: 3 },
  { name: 'empty-slice', src: f32(5, 0), idx: [5], axis: 0, size: 2 },
];

/** All cases in one graph: each scatter of an input, and of a computed value (src * 2) read again by a later op. */
function casesGraph(): Graph {
  const b = new Builder();
  const outs: { name: string; node: Node }[] = [];
  for (const c of CASES) {
    const src = b.input(`${c.name}/src`, c.src), idx = b.input(`${c.name}/idx`, i32(...c.idx));
    const s = b.emit('scatter_add', [src, idx], { axis: c.axis, size: c.size });
    outs.push({ name: `${c.name}/y`, node: s });
    if (c.src.dtype === 'float32') {
      const again = b.emit('scatter_add', [b.emit('add', [src, src]), idx], { axis: c.axis, size: c.size });
      outs.push({ name: `${c.name}/z`, node: b.emit('mul', [again, again]) });
    }
  }
  return b.finish('scatter', outs);
}

function caseInputs(special = false): Data {
  const data: Data = {};
  CASES.forEach((c, i) => {
    const n = c.src.shape.reduce((a, d) => a * d, 1), m = c.idx.reduce((a, d) => a * d, 1);
    const v = values(n, 10 + i, special);
    data[`${c.name}/src`] = c.src.dtype === 'int32' ? toTyped('int32', Array.from(v, (x) => Math.trunc(x * 1000) | 0)) : v;
    data[`${c.name}/idx`] = indices(m, c.size, 30 + i);
  });
  return data;
}

/** The scatter by its definition, one element at a time (row-major over idx, clamped). */
function reference(c: Case, src: TypedArray, idx: Int32Array): Float64Array | Float32Array | Int32Array {
  const pre = c.src.shape.slice(0, c.axis).reduce((a, d) => a * d, 1);
  const post = c.src.shape.slice(c.axis + c.idx.length).reduce((a, d) => a * d, 1);
  const out = c.src.dtype === 'int32' ? new Int32Array(pre * c.size * post) : new Float32Array(pre * c.size * post);
  for (let p = 0; p < pre; p++) {
    idx.forEach((k, j) => {
      const r = Math.min(c.size - 1, Math.max(0, k));
      for (let q = 0; q < post; q++) out[(p * c.size + r) * post + q]! += src[(p * idx.length + j) * post + q]!;
    });
  }
  return out;
}

/** Elements that differ from the interpreter's in any bit (NaN equals NaN), at most 4 lines. */
function bitDiffs(g: Graph, inputs: Data, got: ReadonlyMap<string, ArrayLike<number>>, label: string): string[] {
  const bad: string[] = [];
  for (const [k, v] of interpret(g, inputs).outputs) {
    v.data.forEach((w, i) => { if (!Object.is(w, got.get(k)![i]) && bad.length < 4) bad.push(`${k}[${i}]: ${label} ${got.get(k)![i]}, interpreter ${w}`); });
  }
  return bad;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-scatter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scatter_add in the graph IR', () => {
  it('infers [...pre, size, ...post] and refuses what it cannot add', () => {
    expect(inferType('scatter_add', [f32(2, 3, 4, 5), i32(3, 4)], { axis: 1, size: 7 })).toEqual(f32(2, 7, 5));
    expect(inferType('scatter_add', [f32(0, 4), i32(0)], { axis: 0, size: 0 })).toEqual(f32(0, 4));
    const bad: [Parameters<typeof inferType>[1], Record<string, number>, RegExp][] = [
      [[f32(3, 4), f32(3)], { axis: 0, size: 2 }, /indices must be int32/],
      [[f32(3, 4), i32(4)], { axis: 0, size: 2 }, /does not hold indices i32\[4\] at axis 0/],
      [[f32(3, 4), i32(3, 4, 1)], { axis: 0, size: 2 }, /does not hold/],
      [[f32(3, 4), i32(3)], { axis: 0, size: 0 }, /size 0 must be >= 1/],
      [[{ dtype: 'bool', shape: [3] }, i32(3)], { axis: 0, size: 2 }, /adds float32 or int32 values/],
      [[f32(3, 4), i32(3)], { axis: 0 }, /attribute 'size' must be an integer/],
    ];
    for (const [srcs, attrs, msg] of bad) expect(() => inferType('scatter_add', srcs, attrs)).toThrow(ShapeError), expect(() => inferType('scatter_add', srcs, attrs)).toThrow(msg);
  });

  it('prints and parses back, and verifies', () => {
    const g = verify(casesGraph());
    expect(printGraph(parseGraph(printGraph(g)))).toBe(printGraph(g));
  });

  it('the interpreter adds rows in increasing index order (a plain loop gives every bit)', () => {
    const g = casesGraph(), data = caseInputs(true), outs = interpret(g, data).outputs;
    for (const c of CASES) {
      const want = reference(c, data[`${c.name}/src`]!, data[`${c.name}/idx`] as Int32Array);
      expect(Array.from(outs.get(`${c.name}/y`)!.data), c.name).toEqual(Array.from(want));
    }
    // rows no index reaches are +0, and a NaN reaches only its own row
    const y = outs.get('rows/y')!.data, idx = data['rows/idx'] as Int32Array;
    const hit = new Set(Array.from(idx, (k) => Math.min(8, Math.max(0, k))));
    for (let r = 0; r < 9; r++) if (!hit.has(r)) expect(Array.from(y.subarray(r * 8, r * 8 + 8)).every((v) => Object.is(v, 0)), `row ${r}`).toBe(true);
  });
});

/** Central differences of sum(w * f(x)) in x, against the graph's gradient (eps 1e-2 on values near 1, f32). */
function checkGrad(build: (b: Builder, x: Node) => Node, xType: { dtype: 'float32'; shape: number[] }, seed: number): void {
  const b = new Builder(), x = b.input('x', xType), y = build(b, x);
  const w = b.input('w', f32(...y.type.shape));
  const loss = b.emit('reduce_sum', [b.emit('mul', [w, y])], { axes: y.type.shape.map((_, i) => i) });
  const [dx] = gradients(b, loss, [x]);
  const g = b.finish('grad', [{ name: 'loss', node: loss }, { name: 'dx', node: dx! }]);
  const r = rng(seed), xs = Float32Array.from({ length: xType.shape.reduce((a, d) => a * d, 1) }, () => r() + 0.5);
  const ws = Float32Array.from({ length: y.type.shape.reduce((a, d) => a * d, 1) }, () => r() + 0.5);
  const got = interpret(g, { x: xs, w: ws }).outputs.get('dx')!.data;
  const lossAt = (v: Float32Array) => interpret(g, { x: v, w: ws }).outputs.get('loss')!.data[0]!;
  const eps = 1e-2;
  xs.forEach((v, i) => {
    const up = xs.slice(), dn = xs.slice();
    up[i] = v + eps; dn[i] = v - eps;
    const fd = (lossAt(up) - lossAt(dn)) / (2 * eps);
    expect(Math.abs(got[i]! - fd), `d/dx[${i}]: graph ${got[i]}, finite differences ${fd}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)) * 4);
  });
}

describe('gradients', () => {
  it('of scatter_add (a gather of dy) and of gather (a scatter_add of dy) agree with finite differences', () => {
    const idx = [4, -1, 0, 4, 7, 2]; // repeated and clamped (-1 -> 0, 7 -> 4)
    checkGrad((b, x) => b.emit('scatter_add', [x, b.constant(idx, 'int32', [6])], { axis: 1, size: 5 }), f32(2, 6, 3), 1);
    checkGrad((b, x) => b.emit('gather', [x, b.constant(idx, 'int32', [2, 3])], { axis: 0 }), f32(5, 3), 2);
    checkGrad((b, x) => b.emit('gather', [x, b.constant(idx, 'int32', [6])], { axis: 1 }), f32(2, 5, 3), 3);
  });
});

describe("an Embedding's gradient", () => {
  it('equals the one-hot matmul it replaces (onehot(idx)^T @ dy) within float tolerance', () => {
    const V = 50, F = 6, B = 3, T = 7;
    const b = new Builder(), table = b.input('table', f32(V, F)), idx = b.input('idx', i32(B, T)), w = b.input('w', f32(B, T, F));
    const emb = b.emit('gather', [table, idx], { axis: 0 });
    const loss = b.emit('reduce_sum', [b.emit('mul', [w, b.emit('tanh', [emb])])], { axes: [0, 1, 2] });
    const [dTable] = gradients(b, loss, [table]);
    // the old rule, by hand: dy = w * (1 - tanh^2), rows summed by a one-hot matmul
    const th = b.emit('tanh', [emb]);
    const dy = b.emit('mul', [w, b.emit('sub', [b.constant(1, 'float32', [B, T, F]), b.emit('mul', [th, th])])]);
    const flat = b.emit('reshape', [idx], { shape: [B * T, 1] });
    const oh = b.emit('cast', [b.emit('eq', [b.emit('broadcast', [flat], { shape: [B * T, V] }), b.iota([B * T, V], 1)])], { dtype: 'float32' });
    const old = b.emit('matmul', [b.emit('transpose', [oh], { perm: [1, 0] }), b.emit('reshape', [dy], { shape: [B * T, F] })]);
    const g = b.finish('emb', [{ name: 'new', node: dTable! }, { name: 'old', node: old }]);
    expect(topoOps(g)).toContain('scatter_add');
    const r = rng(5), ids = Int32Array.from({ length: B * T }, () => Math.floor(r() * 8)); // few rows: many repeats
    const out = interpret(g, { table: values(V * F, 6), idx: ids, w: values(B * T * F, 7) }).outputs;
    const got = out.get('new')!.data, want = out.get('old')!.data;
    want.forEach((v, i) => expect(Math.abs(got[i]! - v), `[${i}]: ${got[i]} vs ${v}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v))));
  });
});

describe('scatter_add on every target, bit for bit', () => {
  const g = casesGraph(), data = caseInputs(true);

  it('loop interpreter: CPU and GPU schedules (GPU loops also reversed)', () => {
    expect(runBoth(g, data, {}).diffs).toEqual([]);
    expect(runBoth(g, data, {}, { ...DEFAULT_CAPS, threads: 4, parallelGrain: 1 }).diffs).toEqual([]);
    expect(runBoth(g, data, {}, { ...DEFAULT_CAPS, gpu: H100 }).diffs).toEqual([]);
  });

  it('wasm', () => {
    const p = runPipeline(g);
    const got = new WasmRunner(p.program, renderWasm(p.program, p.memory)).run(data, {});
    expect(bitDiffs(g, data, got.outputs, 'wasm')).toEqual([]);
  });

  it('llvm, cuda (emulated) and freestanding C', () => {
    const llvm = path.join(tmp, 'llvm'), cuda = path.join(tmp, 'cuda'), fs = path.join(tmp, 'fs');
    compileLlvm({ outDir: llvm, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], threads: 1 });
    expect(bitDiffs(g, data, runMain(path.join(llvm, 'model_main'), llvm, g, data), 'llvm')).toEqual([]);
    compileCuda({ outDir: cuda, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], nvcc: false });
    expect(bitDiffs(g, data, runMain(path.join(cuda, 'model_main_emu'), cuda, g, data), 'cuda (emulated)')).toEqual([]);
    compileLlvm({ outDir: fs, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], runtime: 'freestanding', embedWeights: true });
    copyFileSync(path.join(root, 'tests/embedded/fs_main.c'), path.join(fs, 'fs_main.c'));
    execFileSync('gcc', ['-O2', '-std=c99', '-DKILN_FREESTANDING', 'fs_main.c', 'kiln_core.c', 'kiln_math.c', 'model_desc.c', 'model.o', '-lm', '-o', 'fs_main'], { cwd: fs });
    g.inputs.forEach((n, i) => {
      const a = data[String(n.attrs['name'])]!;
      writeFileSync(path.join(fs, `in${i}.bin`), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    });
    execFileSync(path.join(fs, 'fs_main'), { cwd: fs });
    const outputs = new Map<string, TypedArray>(g.outputs.map((o, i) => {
      const bytes = readFileSync(path.join(fs, `out${i}.bin`));
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      return [o.name, o.node.type.dtype === 'int32' ? new Int32Array(buf) : new Float32Array(buf)];
    }));
    expect(bitDiffs(g, data, outputs, 'freestanding')).toEqual([]);
  });
});

describe('scatter_add fuzzed', () => {
  it('runs after the nest computing a one-element operand (a tiny value, which other nests recompute inline)', () => {
    // the fuzzer's seed 2079201, shrunk: the scatter's kernel ran before exp's, reading tmp_2 unwritten
    const b = new Builder(), src = b.input('src', f32(1)), idx = b.input('idx', i32());
    const s = b.emit('scatter_add', [b.emit('exp', [src]), idx], { axis: 1, size: 2 });
    const g = b.finish('tiny', [{ name: 'y', node: b.emit('add', [s, s]) }, { name: 's', node: s }]);
    for (const k of [0, 1, 5]) expect(runBoth(g, { src: Float32Array.of(0.5), idx: Int32Array.of(k) }, {}).diffs).toEqual([]);
  });

  // fresh seeds every day (printed on failure: rerun one with KILN_SCATTER_SEED=s, more with KILN_SCATTER_COUNT=n); random ranks, axes, index shapes,
  // sizes (with out-of-range and repeated indices), through the pipeline on CPU and GPU schedules
  const first = Number(process.env['KILN_SCATTER_SEED'] ?? Math.floor(Date.now() / 86_400_000) * 100);
  const count = Number(process.env['KILN_SCATTER_COUNT'] ?? (process.env['KILN_SCATTER_SEED'] ? 1 : 40));
  it(`${count} random scatters from seed ${first} equal the interpreter bit for bit`, () => {
    for (let seed = first; seed < first + count; seed++) {
      const r = rng(seed), dim = () => Math.floor(r() * 4) + (r() < 0.1 ? 0 : 1);
      const pre = Array.from({ length: Math.floor(r() * 2) }, dim), idxShape = Array.from({ length: Math.floor(r() * 3) }, () => dim() + 1);
      const post = Array.from({ length: Math.floor(r() * 3) }, dim), size = Math.floor(r() * 5) + 1;
      const b = new Builder(), src = b.input('src', f32(...pre, ...idxShape, ...post)), idx = b.input('idx', i32(...idxShape));
      const s = b.emit('scatter_add', [b.emit('exp', [src]), idx], { axis: pre.length, size });
      const g = b.finish('fuzz', [{ name: 'y', node: b.emit('add', [s, s]) }, { name: 's', node: s }]);
      const n = src.type.shape.reduce((a, d) => a * d, 1), m = idxShape.reduce((a, d) => a * d, 1);
      const data = { src: values(n, seed, true), idx: indices(m, size, seed + 1) };
      for (const caps of [undefined, { ...DEFAULT_CAPS, gpu: H100 }]) {
        expect(runBoth(g, data, {}, caps).diffs, `seed ${seed} ${printGraph(g)}`).toEqual([]);
      }
    }
  });
});
