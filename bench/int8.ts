// The int8 rows of `npm run bench:llvm`: the seed MLP (batch 256) and the seed CNN (batch 64), kiln float32 vs kiln
// int8 (`--quantize int8 --calibrate`) vs ONNX Runtime running the same quantized network as a QDQ model built here
// from kiln's int8 weights and its manifest's scales and zero points (ORT fuses the QDQ pairs into its int8 kernels:
// the op types of its optimized graph are listed with the rows).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AttrType, DataType, IR_VERSION, type NodeProto, OPSET, type TensorProto, onnx } from '../io/onnx/proto.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { readSafetensors } from '../runtime/safetensors.js';

export interface Timing { us: number; lo: number; hi: number; calls: number }

/** What bench/llvm.ts lends: its timing of kiln executables and of ORT sessions, and `kiln compile`. */
export interface Int8Bench {
  readonly root: string;
  readonly benchKiln: (exe: string, args: readonly string[], threads: number) => Timing;
  readonly benchOrt: (session: ort.InferenceSession, feeds: Record<string, ort.Tensor>) => Promise<Timing>;
  readonly ortOptions: (threads: number) => ort.InferenceSession.SessionOptions;
  readonly kilnCompile: (args: readonly string[]) => number;
  readonly log: (s: string) => void;
}

interface Quant { scale: number | number[]; zeroPoint: number | number[] }
type Manifest = { quantization: Record<string, Quant>; entries: Record<string, { inputs: { name: string }[]; outputs: { name: string }[] }> };

/** An ONNX graph being built: initializers and nodes. */
class Onnx {
  readonly inits: TensorProto[] = [];
  readonly nodes: NodeProto[] = [];
  private n = 0;
  constructor(private readonly weights: Map<string, { shape: number[]; data: ArrayLike<number> }>, private readonly q: Record<string, Quant>) {}

  private tensor(dataType: number, dims: number[], bytes: ArrayBufferView): string {
    const name = `c${this.n++}`;
    this.inits.push({ name, dims, dataType, rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice() });
    return name;
  }
  f32(v: number[], dims = v.length === 1 ? [] : [v.length]): string { return this.tensor(DataType.FLOAT, dims, Float32Array.from(v)); }
  i8(v: ArrayLike<number>, dims: number[]): string { return this.tensor(DataType.INT8, dims, Int8Array.from(v)); }
  i32(v: ArrayLike<number>, dims: number[]): string { return this.tensor(DataType.INT32, dims, Int32Array.from(v)); }

  node(op: string, inputs: string[], attrs: Record<string, number | number[]> = {}, domain?: string): string {
    const out = `t${this.n++}`;
    const attribute = Object.entries(attrs).map(([name, v]) => (Array.isArray(v) ? { name, type: AttrType.INTS, ints: v } : { name, type: AttrType.INT, i: v }));
    this.nodes.push({ opType: op, input: inputs, output: [out], attribute, ...(domain ? { domain } : {}) });
    return out;
  }

  /** Q then DQ with the per-tensor parameters kiln recorded under `name` (an int8 activation). */
  qdq(x: string, name: string): string {
    const { scale, zeroPoint } = this.q[name]!;
    const s = this.f32([scale as number]), z = this.i8([zeroPoint as number], []);
    return this.node('DequantizeLinear', [this.node('QuantizeLinear', [x, s, z]), s, z]);
  }

  /** kiln's int8 weight (per output channel, axis `axis` of `dims`) or int32 bias, dequantized by a DQ node. */
  weight(name: string, dims: number[], axis: number, data?: ArrayLike<number>): string {
    const w = this.weights.get(name)!, { scale } = this.q[name]!, sc = scale as number[];
    const int8 = name.endsWith('kernel'), v = data ?? w.data;
    const t = int8 ? this.i8(v, dims) : this.i32(v, dims);
    const z = int8 ? this.i8(new Array(sc.length).fill(0), [sc.length]) : this.i32(new Array(sc.length).fill(0), [sc.length]);
    return this.node('DequantizeLinear', [t, this.f32(sc, [sc.length]), z], { axis });
  }

  model(input: string, shape: number[], output: string, outShape: number[]): Uint8Array {
    const vi = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
    const last = this.nodes[this.nodes.length - 1]!;
    last.output = [output];
    const graph = { name: 'int8', node: this.nodes, initializer: this.inits, input: [vi(input, shape)], output: [vi(output, outShape)] };
    return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: IR_VERSION, opsetImport: [{ domain: '', version: OPSET }], graph })).finish();
  }
}

/** The seed MLP as QDQ: Q/DQ of the input, Gemm with DQ'd int8 kernel and int32 bias, Q/DQ (ReLU is the Q's zero point -128), again, Softmax. */
function mlpQdq(g: Onnx, input: string): string {
  let h = g.qdq(input, 'dense/input');
  h = g.qdq(g.node('Gemm', [h, g.weight('dense/kernel', [784, 64], 1), g.weight('dense/bias', [64], 0)]), 'dense/output');
  h = g.qdq(g.node('Gemm', [h, g.weight('dense_1/kernel', [64, 10], 1), g.weight('dense_1/bias', [10], 0)]), 'dense_1/output');
  return g.node('Softmax', [h], { axis: -1 });
}

/** [kh, kw, cin, cout] (Keras) as [cout, cin, kh, kw] (ONNX). */
function oihw(w: ArrayLike<number>, [kh, kw, ci, co]: readonly [number, number, number, number]): number[] {
  const out = new Array<number>(w.length);
  for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) out[((o * ci + c) * kh + a) * kw + b] = w[((a * kw + b) * ci + c) * co + o]!;
  return out;
}

/** The seed CNN as QDQ in NCHW (its one input channel makes NHWC and NCHW the same bytes). */
function cnnQdq(g: Onnx, input: string, weights: Map<string, { shape: number[]; data: ArrayLike<number> }>): string {
  const conv = (x: string, name: string, pads: number[]) => {
    const s = weights.get(`${name}/kernel`)!.shape, [kh, kw, ci, co] = s as [number, number, number, number];
    const w = g.weight(`${name}/kernel`, [co, ci, kh, kw], 0, oihw(weights.get(`${name}/kernel`)!.data, [kh, kw, ci, co]));
    return g.qdq(g.node('Conv', [x, w, g.weight(`${name}/bias`, [co], 0)], { pads, kernel_shape: [kh, kw] }), `${name}/output`);
  };
  let h = conv(g.qdq(input, 'conv2d/input'), 'conv2d', [1, 1, 1, 1]);
  h = g.qdq(g.node('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] }), 'conv2d/output');
  h = conv(h, 'conv2d_1', [0, 0, 0, 0]);
  h = g.qdq(g.node('Flatten', [g.node('GlobalAveragePool', [h])], { axis: 1 }), 'dense/input');
  h = g.qdq(g.node('Gemm', [h, g.weight('dense/kernel', [16, 10], 1), g.weight('dense/bias', [10], 0)]), 'dense/output');
  return g.node('Softmax', [h], { axis: -1 });
}

interface Row { model: string; batch: number; threads: number; f32: Timing; int8: Timing; ort: Timing; ortF32?: Timing }

const fmt = (t: Timing): string => (t.us >= 1000 ? t.us.toFixed(0) : t.us.toFixed(1));
const x = (a: Timing, b: Timing): string => `${(a.us / b.us).toFixed(2)}x`;

/**
 * The -mcpu of both kiln builds: a CPU LLVM 14 knows with AVX-512 VNNI where this machine has it (int8 kernels as
 * vpdpbusd byte quads: the default, the host's x86-64 level, has no VNNI), else the default.
 */
function vnniCpu(): string | undefined {
  let flags = '';
  try { flags = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux */ }
  return /\bavx512_vnni\b/.test(flags) && /\bavx512vl\b/.test(flags) ? 'icelake-server' : undefined;
}

/** Compiles, checks and times both models; returns the markdown section and its checks. */
export async function int8Rows(tmp: string, b: Int8Bench, rand: () => number): Promise<string[]> {
  const rows: Row[] = [], notes: string[] = [];
  const cpu = vnniCpu();
  notes.push(cpu ? `both kiln builds with \`--cpu ${cpu}\` (this CPU has AVX-512 VNNI: int8 kernels as vpdpbusd where the rows are u8)` : 'kiln builds for the host\'s x86-64 level (no AVX-512 VNNI here: int8 kernels as pmaddwd pairs)');
  const cases = [
    { model: 'seed MLP', file: 'examples/seed/sequential.ts', batch: 256, shape: [784], ortShape: [256, 784] },
    { model: 'seed CNN', file: 'examples/seed/cnn.ts', batch: 64, shape: [28, 28, 1], ortShape: [64, 1, 28, 28] },
  ];
  for (const c of cases) {
    const n = c.batch * c.shape.reduce((a, d) => a * d, 1);
    const data = Float32Array.from({ length: n }, () => rand());
    const dir = path.join(tmp, `int8_${c.model.replace(/\W/g, '')}`), xf = path.join(tmp, `int8_${c.batch}_x.npy`);
    writeFileSync(xf, writeNpy('float32', [c.batch, ...c.shape], data));
    b.log(`int8: ${c.model}, batch ${c.batch}: compiling float32 and int8 (calibrated on the same ${c.batch} rows)`);
    // --max-batch: an artifact runs whole chunks of its max batch (256 by default, the rest zero rows): timed at 64
    // rows it would compute 256, ORT 64
    const src = path.join(b.root, c.file), bs = ['--batch-size', String(c.batch), '--max-batch', String(c.batch), ...(cpu ? ['--cpu', cpu] : [])];
    b.kilnCompile([src, '--target', 'llvm', ...bs, '-o', `${dir}_f32`]);
    b.kilnCompile([src, '--target', 'llvm', ...bs, '--quantize', 'int8', '--calibrate', xf, '-o', dir]);
    const man = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    const { tensors } = readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'weights.safetensors'))));
    const weights = new Map(tensors.map((t) => [t.name, { shape: t.shape as number[], data: t.data as ArrayLike<number> }]));
    const inName = man.entries['predict']!.inputs[0]!.name, outName = man.entries['predict']!.outputs[0]!.name;
    const g = new Onnx(weights, man.quantization);
    if (c.model === 'seed MLP') mlpQdq(g, inName);
    else cnnQdq(g, inName, weights);
    const onnxBytes = g.model(inName, c.ortShape, outName, [c.batch, 10]);
    writeFileSync(path.join(dir, 'int8.onnx'), onnxBytes);
    const feeds = { [inName]: new ort.Tensor('float32', data, c.ortShape) };
    const optimized = path.join(dir, 'int8.ort.onnx');
    for (const threads of [1, 2]) {
      const session = await ort.InferenceSession.create(onnxBytes, { ...b.ortOptions(threads), ...(threads === 1 ? { optimizedModelFilePath: optimized } : {}) });
      const ortOut = (await session.run(feeds))[outName]!.data as Float32Array;
      if (threads === 1) {
        const ops = onnx.ModelProto.decode(readFileSync(optimized)).graph?.node?.map((nd) => nd.opType) ?? [];
        notes.push(`${c.model}: ORT's optimized graph runs ${[...new Set(ops)].join(', ')}`);
        execFileSync(path.join(dir, 'model_main'), [xf, '--out', path.join(dir, 'out')], { cwd: dir });
        const k = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${outName.replace(/\//g, '_')}.npy`)))).data as Float32Array;
        let d = 0, agree = 0;
        for (let i = 0; i < k.length; i++) d = Math.max(d, Math.abs(k[i]! - ortOut[i]!));
        const rowsN = c.batch, cls = k.length / rowsN;
        for (let r = 0; r < rowsN; r++) {
          const am = (v: Float32Array) => { let m = 0; for (let j = 1; j < cls; j++) if (v[r * cls + j]! > v[r * cls + m]!) m = j; return m; };
          if (am(k) === am(ortOut)) agree++;
        }
        notes.push(`${c.model}: max |kiln int8 − ORT int8| = ${d.toExponential(2)} over ${k.length} probabilities; argmax agrees on ${agree}/${rowsN} rows (ORT requantizes in float, kiln in TFLite's fixed point)`);
      }
      b.log(`int8: ${c.model}, ${threads} thread(s)`);
      const args = [xf, '--out', path.join(dir, 'out')];
      const f32 = b.benchKiln(path.join(`${dir}_f32`, 'model_main'), [xf, '--out', path.join(`${dir}_f32`, 'out')], threads);
      const int8 = b.benchKiln(path.join(dir, 'model_main'), args, threads);
      const ortT = await b.benchOrt(session, feeds);
      await session.release();
      rows.push({ model: c.model, batch: c.batch, threads, f32, int8, ort: ortT });
      b.log(`  kiln f32 ${fmt(f32)} us, kiln int8 ${fmt(int8)} us, ORT int8 ${fmt(ortT)} us`);
    }
  }
  const L = ['## int8 inference (`--quantize int8`): kiln float32, kiln int8, ORT int8', ''];
  L.push('kiln int8: `kiln compile --quantize int8 --calibrate x.npy` on the rows it is timed on. ORT int8: a QDQ model of the same network built by `bench/int8.ts` from kiln\'s int8 weights (per output channel) and int32 biases and the manifest\'s activation scales and zero points (QuantizeLinear/DequantizeLinear around Gemm / Conv / MaxPool / GlobalAveragePool; ReLU is the zero point -128 of the Q after it), which ORT\'s graph optimizer turns into its int8 kernels. Same thread counts; kiln timed as above (its executable), ORT from Node as above.', '');
  L.push('| model | batch | threads | kiln f32 (µs) | kiln int8 (µs) | ORT int8 (µs) | kiln f32 / int8 | ORT int8 / kiln int8 | kiln int8 range (µs) |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) L.push(`| ${r.model} | ${r.batch} | ${r.threads} | ${fmt(r.f32)} | ${fmt(r.int8)} | ${fmt(r.ort)} | ${x(r.f32, r.int8)} | ${x(r.ort, r.int8)} | ${r.int8.lo.toFixed(1)}–${r.int8.hi.toFixed(1)} |`);
  L.push('');
  for (const nt of notes) L.push(`- ${nt}`);
  L.push('');
  return L;
}
