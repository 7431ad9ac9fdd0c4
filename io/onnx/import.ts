// ONNX import: an ONNX file as a kiln Model whose call runs the ONNX nodes through kiln's ops, so that it traces to
// graph IR and compiles to every target; float initializers become the model's weights, named as in the file.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DType, TypedArray } from '../../ir/types.js';
import { sizeOf, toTyped } from '../../ir/types.js';
import { apply } from '../../frontend/engine.js';
import * as ops from '../../frontend/ops.js';
import { type SymbolicShape, Tensor, Variable } from '../../frontend/tensor.js';
import { type AnyLayer, type CallOptions, Layer } from '../../frontend/layers/layer.js';
import { type InputSpec, Model } from '../../frontend/models/model.js';
import type { SummaryRow } from '../../frontend/models/summary.js';
import { traceModel } from '../../frontend/models/executor.js';
import { type AttributeProto, DataType, type GraphProto, type ModelProto, type TensorProto, type ValueInfoProto, dataTypeName, int, onnx } from './proto.js';

/** The oldest default-domain opset read: opset 13 moved Squeeze/Unsqueeze/ReduceSum axes to inputs and redefined Softmax. */
const MIN_OPSET = 13;

/** An ONNX node's attributes by name, decoded. */
type Attrs = ReadonlyMap<string, AttributeProto>;
/** One op: the node's inputs (undefined where an optional input is left out) and attributes, giving its outputs. */
type OpFn = (x: readonly (Tensor | undefined)[], a: Attrs, ctx: { opset: number; where: string; outputs: number }) => Tensor | Tensor[];

export class OnnxImportError extends Error {
  override name = 'OnnxImportError';
}

/** Loads an ONNX file as a model (see OnnxModel); every problem is an error naming the file, and the node where it is one. */
export function loadOnnx(file: string): OnnxModel {
  let proto: ModelProto;
  try {
    proto = onnx.ModelProto.decode(readFileSync(file));
  } catch (err) {
    throw new OnnxImportError(`${file}: not an ONNX model (${(err as Error).message})`);
  }
  return new OnnxModel(proto, path.basename(file).replace(/\.onnx$/i, '').replace(/[^A-Za-z0-9_]/g, '_') || 'onnx_model', file);
}

/** Holds the weights (the float initializers) of an imported model; it computes nothing itself. */
class OnnxInitializers extends Layer {
  constructor(vars: Variable[], name: string) {
    super({ name });
    this.ownWeights.push(...vars);
    this.built = true;
  }

  call(): Tensor {
    throw new Error('the initializers of an ONNX model are not called');
  }
}

/**
 * A model read from ONNX. Its call evaluates the graph's nodes with kiln's ops at the batch size it is traced at, so
 * shape computations (Shape, Gather, Concat on shapes ...) fold to constants. int64 tensors are int32 in kiln.
 */
export class OnnxModel extends Model {
  private readonly graph: GraphProto;
  private readonly opset: number;
  private readonly holder: OnnxInitializers;
  /** Initializers that are not weights (integer shapes, axes ...), and those that are, by name. */
  private readonly consts = new Map<string, Tensor>();
  private readonly specs: InputSpec[];
  private shapes: SymbolicShape[] | undefined;

  constructor(proto: ModelProto, name: string, private readonly file = name) {
    super({ name });
    const g = proto.graph;
    if (!g) throw new OnnxImportError(`${file}: the ONNX model has no graph`);
    this.graph = g;
    const opset = (proto.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
    this.opset = int(opset?.version);
    if (this.opset < MIN_OPSET) throw new OnnxImportError(`${file}: opset ${this.opset} is older than ${MIN_OPSET}, the oldest kiln reads; export it again with opset_version=${MIN_OPSET} or later`);
    this.checkOps();
    const vars: Variable[] = [];
    for (const t of g.initializer ?? []) {
      const v = readTensor(t, `${file}: initializer '${t.name}'`);
      if (v.dtype === 'float32') vars.push(new Variable(t.name!, 'float32', v.shape, v.data, true, t.name!));
      else this.consts.set(t.name!, v);
    }
    for (const v of vars) this.consts.set(v.path, v);
    this.holder = new OnnxInitializers(vars, `${name}_initializers`);
    this.specs = (g.input ?? []).filter((i) => !this.consts.has(i.name!)).map((i) => this.inputSpec(i));
    if (this.specs.length === 0) throw new OnnxImportError(`${file}: the graph has no inputs`);
    this.built = true;
  }

  /** Every node's op must be one kiln reads: one error lists those that are not, with their node names. */
  private checkOps(): void {
    const missing = new Map<string, string[]>();
    (this.graph.node ?? []).forEach((n, i) => {
      const domain = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : '';
      if (domain || !Object.hasOwn(OPS, n.opType!)) {
        const key = `${domain}${n.opType}`;
        missing.set(key, [...(missing.get(key) ?? []), n.name || `#${i}`]);
      }
    });
    if (missing.size) {
      const list = [...missing].map(([op, names]) => `${op} (${names.slice(0, 5).join(', ')}${names.length > 5 ? `, and ${names.length - 5} more` : ''})`);
      throw new OnnxImportError(`${this.file}: ${missing.size} unsupported ONNX op(s): ${list.join('; ')}`);
    }
  }

  private inputSpec(i: ValueInfoProto): InputSpec {
    const t = i.type?.tensorType;
    if (!t) throw new OnnxImportError(`${this.file}: input '${i.name}' is not a tensor`);
    const dtype = kilnDtype(t.elemType ?? 0, `${this.file}: input '${i.name}'`);
    const dims = t.shape?.dim ?? [];
    const shape = dims.map((d, k) => {
      const v = d.dimValue === undefined || d.dimValue === null ? 0 : int(d.dimValue);
      if (v > 0) return v;
      if (k === 0) return null; // the batch dimension
      throw new OnnxImportError(`${this.file}: input '${i.name}' has the symbolic dimension ${k} ('${d.dimParam ?? '?'}'); kiln needs every dimension but the first (the batch) fixed`);
    });
    return { name: i.name!, shape, dtype };
  }

  get layers(): AnyLayer[] {
    return [this.holder];
  }

  get inputSpecs(): InputSpec[] {
    return this.specs;
  }

  get outputNames(): string[] {
    return (this.graph.output ?? []).map((o) => o.name!);
  }

  /** Output shapes, from a trace at one row: the first dimension is the batch when the inputs have one. */
  get outputShapes(): SymbolicShape[] {
    if (!this.shapes) {
      const dynamic = this.specs.some((s) => s.shape[0] === null);
      this.shapes = traceModel(this, 1).graph.outputs.map((o) => o.node.type.shape.map((d, i) => (i === 0 && dynamic ? null : d)));
    }
    return this.shapes;
  }

  summaryRows(): SummaryRow[] {
    return [{ layer: this.holder, shapes: [], connectedTo: [] }];
  }

  override computeOutputShape(): SymbolicShape | SymbolicShape[] {
    return this.multiOutput ? this.outputShapes : this.outputShapes[0]!;
  }

  call(inputs: Tensor | Tensor[], _options: CallOptions): Tensor | Tensor[] {
    const values = new Map<string, Tensor>(this.consts);
    const list = Array.isArray(inputs) ? inputs : [inputs];
    this.specs.forEach((s, i) => {
      const rows = list[i]!.shape[0];
      if (s.shape[0] !== null && rows !== s.shape[0]) {
        throw new OnnxImportError(`${this.file}: input '${s.name}' has the fixed batch dimension ${s.shape[0]}, and kiln runs it with ${rows} rows; export it again with a dynamic batch (torch.onnx.export(..., dynamic_axes={'${s.name}': {0: 'batch'}}))`);
      }
      values.set(s.name, list[i]!);
    });
    (this.graph.node ?? []).forEach((n, i) => {
      const where = `${this.file}: node '${n.name || `#${i}`}' (${n.opType})`;
      const x = (n.input ?? []).map((name) => {
        if (name === '') return undefined;
        const v = values.get(name);
        if (!v) throw new OnnxImportError(`${where}: input '${name}' is not defined before it`);
        return v;
      });
      const attrs = new Map((n.attribute ?? []).map((a) => [a.name!, a]));
      let out: Tensor | Tensor[];
      try {
        out = OPS[n.opType!]!(x, attrs, { opset: this.opset, where, outputs: (n.output ?? []).length });
      } catch (err) {
        if (err instanceof OnnxImportError) throw err;
        throw new OnnxImportError(`${where}: ${(err as Error).message}`);
      }
      const outs = Array.isArray(out) ? out : [out];
      (n.output ?? []).forEach((name, k) => {
        if (name === '') return;
        if (!outs[k]) throw new OnnxImportError(`${where}: output ${k} ('${name}') is not supported`);
        values.set(name, outs[k]);
      });
    });
    const results = this.outputNames.map((name) => {
      const v = values.get(name);
      if (!v) throw new OnnxImportError(`${this.file}: graph output '${name}' is not computed by any node`);
      return v;
    });
    return results.length === 1 ? results[0]! : results;
  }

  override get multiOutput(): boolean {
    return this.outputNames.length > 1;
  }
}

// ---- tensors, dtypes and attributes ----

function kilnDtype(t: number, where: string): DType {
  switch (t) {
    case DataType.FLOAT: case DataType.DOUBLE: return 'float32';
    case DataType.INT32: case DataType.INT64: return 'int32';
    case DataType.BOOL: return 'bool';
    default: throw new OnnxImportError(`${where}: element type ${dataTypeName(t)} is not supported (float, double, int32, int64 and bool are)`);
  }
}

/** A TensorProto's values as a kiln tensor (int64 and double narrowed to int32 and float32). */
export function readTensor(t: TensorProto, where: string): Tensor {
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new OnnxImportError(`${where}: data stored outside the .onnx file is not supported`);
  const dtype = kilnDtype(t.dataType ?? 0, where);
  const shape = (t.dims ?? []).map((d) => int(d));
  const n = sizeOf(shape);
  const raw = t.rawData && t.rawData.length ? new Uint8Array(t.rawData) : undefined; // a copy: aligned, not a view of the file
  let values: ArrayLike<number>;
  switch (t.dataType) {
    case DataType.FLOAT: values = raw ? new Float32Array(raw.buffer) : t.floatData ?? []; break;
    case DataType.DOUBLE: values = raw ? new Float64Array(raw.buffer) : t.doubleData ?? []; break;
    case DataType.INT32: values = raw ? new Int32Array(raw.buffer) : t.int32Data ?? []; break;
    case DataType.INT64: values = raw ? Array.from(new BigInt64Array(raw.buffer), (v) => clampInt(Number(v))) : (t.int64Data ?? []).map((v) => clampInt(int(v))); break;
    default: values = raw ?? t.int32Data ?? []; break; // bool
  }
  if (values.length !== n) throw new OnnxImportError(`${where}: ${values.length} values for shape [${shape.join(',')}]`);
  return new Tensor(dtype, shape, toTyped(dtype, values));
}

/** int64 values into int32: ONNX's "to the end" markers (INT64_MAX, INT64_MIN) saturate. */
function clampInt(v: number): number {
  return Math.max(-2147483648, Math.min(2147483647, v));
}

function attrInt(a: Attrs, name: string, dflt?: number): number {
  const v = a.get(name);
  if (!v) {
    if (dflt === undefined) throw new Error(`attribute '${name}' is missing`);
    return dflt;
  }
  return int(v.i);
}

function attrInts(a: Attrs, name: string): number[] | undefined {
  const v = a.get(name);
  return v ? (v.ints ?? []).map((i) => int(i)) : undefined;
}

function attrFloat(a: Attrs, name: string, dflt: number): number {
  const v = a.get(name);
  return v ? v.f ?? 0 : dflt;
}

function attrString(a: Attrs, name: string, dflt: string): string {
  const v = a.get(name);
  return v?.s ? new TextDecoder().decode(v.s) : dflt;
}

/** The values of a tensor known when tracing (a constant, or computed from shapes); a value of the inputs is an error. */
function known(t: Tensor | undefined, what: string): number[] {
  if (!t) throw new Error(`${what} is missing`);
  if (t._node !== undefined || t instanceof Variable) throw new Error(`${what} must be known before the model runs (a constant or computed from shapes), not computed from the inputs or weights`);
  return Array.from(t.data as TypedArray);
}

function req(x: readonly (Tensor | undefined)[], i: number): Tensor {
  const t = x[i];
  if (!t) throw new Error(`input ${i} is missing`);
  return t;
}

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const constOf = (values: readonly number[], dtype: DType = 'int32') => new Tensor(dtype, [values.length], toTyped(dtype, values));

/** An elementwise op on every input, folded left to right (Max, Min, Sum take any number). */
function variadic(f: (a: Tensor, b: Tensor) => Tensor): OpFn {
  return (x) => x.filter((t): t is Tensor => t !== undefined).reduce((a, b) => f(a, b));
}

function unary(f: (a: Tensor) => Tensor): OpFn {
  return (x) => f(req(x, 0));
}

/** The axes of a reduction: the input (opset 13 ReduceSum, 18 all) or the attribute; none means all unless noop_with_empty_axes. */
function reduceAxes(x: readonly (Tensor | undefined)[], a: Attrs, rank: number): number[] | undefined {
  const axes = x[1] ? known(x[1], 'axes') : attrInts(a, 'axes');
  if (!axes || axes.length === 0) return attrInt(a, 'noop_with_empty_axes', 0) ? [] : undefined;
  return axes.map((v) => norm(v, rank));
}

function reduce(f: (t: Tensor, o: { axis?: number[]; keepdims: boolean }) => Tensor): OpFn {
  return (x, a) => {
    const t = req(x, 0), axes = reduceAxes(x, a, t.rank);
    if (axes && axes.length === 0) return t;
    return f(t, { axis: axes ?? range(0, t.rank), keepdims: attrInt(a, 'keepdims', 1) === 1 });
  };
}

/** x from NCHW-like (channels second) to channels last, as kiln's conv and pooling take it, and back. */
const toLast = (t: Tensor) => ops.transpose(t, [0, ...range(2, t.rank), 1]);
const toSecond = (t: Tensor) => ops.transpose(t, [0, t.rank - 1, ...range(1, t.rank - 1)]);

/** [low, high] padding per spatial axis from pads/auto_pad (SAME_UPPER puts the odd one at the end, as ONNX). */
function padsOf(a: Attrs, spatial: readonly number[], window: readonly number[], strides: readonly number[], dil: readonly number[]): [number, number][] {
  const auto = attrString(a, 'auto_pad', 'NOTSET');
  if (auto === 'NOTSET') {
    const p = attrInts(a, 'pads') ?? spatial.flatMap(() => [0, 0]);
    return spatial.map((_, i) => [p[i]!, p[i + spatial.length]!]);
  }
  if (auto === 'VALID') return spatial.map(() => [0, 0]);
  return spatial.map((n, i) => {
    const out = Math.ceil(n / strides[i]!), total = Math.max(0, (out - 1) * strides[i]! + (window[i]! - 1) * dil[i]! + 1 - n);
    const small = Math.floor(total / 2);
    return auto === 'SAME_LOWER' ? [total - small, small] : [small, total - small];
  });
}

function pool(kind: 'max' | 'avg'): OpFn {
  return (x, a) => {
    const t = req(x, 0), nsp = t.rank - 2, spatial = t.shape.slice(2);
    const window = attrInts(a, 'kernel_shape')!;
    const strides = attrInts(a, 'strides') ?? window.map(() => 1);
    if ((attrInts(a, 'dilations') ?? []).some((d) => d !== 1)) throw new Error('dilated pooling is not supported');
    const padding = padsOf(a, spatial, window, strides, window.map(() => 1));
    if (attrInt(a, 'ceil_mode', 0)) {
      const floorOut = spatial.map((n, i) => Math.floor((n + padding[i]![0] + padding[i]![1] - window[i]!) / strides[i]!));
      const ceilOut = spatial.map((n, i) => Math.ceil((n + padding[i]![0] + padding[i]![1] - window[i]!) / strides[i]!));
      if (floorOut.some((v, i) => v !== ceilOut[i])) throw new Error('ceil_mode=1 with a partial last window is not supported');
    }
    if (nsp < 1) throw new Error(`expects [N, C, ...spatial], got rank ${t.rank}`);
    const attrs = { window, strides, padding: padding.map((p) => [...p]) };
    const y = apply('reduce_window', [toLast(t)], { kind: kind === 'max' ? 'max' : 'sum', ...attrs });
    if (kind === 'max') return toSecond(y);
    // the average over the window, counting the padding only with count_include_pad
    const padded = padding.some((p) => p[0] || p[1]);
    if (!padded || attrInt(a, 'count_include_pad', 0)) return toSecond(ops.divide(y, window.reduce((p, w) => p * w, 1)));
    const ones = ops.ones([1, ...spatial, 1]);
    const counts = apply('reduce_window', [ones], { kind: 'sum', ...attrs });
    return toSecond(ops.divide(y, counts));
  };
}

function conv(x: readonly (Tensor | undefined)[], a: Attrs): Tensor {
  const t = req(x, 0), w = req(x, 1), nsp = t.rank - 2;
  const window = w.shape.slice(2);
  const strides = attrInts(a, 'strides') ?? window.map(() => 1);
  const dilation = attrInts(a, 'dilations') ?? window.map(() => 1);
  const padding = padsOf(a, t.shape.slice(2), window, strides, dilation);
  // kiln: input [N, ...spatial, C], kernel [...window, C/groups, M]; ONNX: [N, C, ...spatial], [M, C/groups, ...window]
  const kernel = ops.transpose(w, [...range(2, nsp + 2), 1, 0]);
  let y = apply('conv', [toLast(t), kernel], { strides, dilation, lhsDilation: window.map(() => 1), padding: padding.map((p) => [...p]), groups: attrInt(a, 'group', 1) });
  if (x[2]) y = ops.add(y, x[2]);
  return toSecond(y);
}

function gemm(x: readonly (Tensor | undefined)[], a: Attrs): Tensor {
  let A = req(x, 0), B = req(x, 1);
  if (attrInt(a, 'transA', 0)) A = ops.transpose(A, [1, 0]);
  if (attrInt(a, 'transB', 0)) B = ops.transpose(B, [1, 0]);
  const alpha = attrFloat(a, 'alpha', 1), beta = attrFloat(a, 'beta', 1);
  let y = ops.matmul(A, B);
  if (alpha !== 1) y = ops.multiply(y, alpha);
  if (x[2]) y = ops.add(y, beta === 1 ? x[2] : ops.multiply(x[2], beta));
  return y;
}

function reshape(x: readonly (Tensor | undefined)[], a: Attrs): Tensor {
  const t = req(x, 0), spec = known(x[1], 'the shape');
  const allowzero = attrInt(a, 'allowzero', 0) === 1;
  const shape = spec.map((d, i) => (d === 0 && !allowzero ? t.shape[i]! : d));
  const free = shape.indexOf(-1);
  if (free >= 0) shape[free] = sizeOf(t.shape) / -sizeOf(shape);
  return ops.reshape(t, shape);
}

function slice(x: readonly (Tensor | undefined)[]): Tensor {
  const t = req(x, 0);
  const starts = known(x[1], 'starts'), ends = known(x[2], 'ends');
  const axes = x[3] ? known(x[3], 'axes').map((v) => norm(v, t.rank)) : range(0, starts.length);
  const steps = x[4] ? known(x[4], 'steps') : starts.map(() => 1);
  const start = t.shape.map(() => 0), end = [...t.shape], step = t.shape.map(() => 1);
  axes.forEach((ax, i) => {
    const d = t.shape[ax]!, st = steps[i]!;
    if (st <= 0) throw new Error(`a step of ${st} is not supported (only positive steps)`);
    const clampIdx = (v: number) => Math.min(d, Math.max(0, v < 0 ? v + d : v));
    start[ax] = clampIdx(starts[i]!);
    end[ax] = Math.max(start[ax], clampIdx(ends[i]!));
    step[ax] = st;
  });
  return ops.stridedSlice(t, start, end, step);
}

function split(x: readonly (Tensor | undefined)[], a: Attrs, outputs: number): Tensor[] {
  const t = req(x, 0), axis = norm(attrInt(a, 'axis', 0), t.rank), d = t.shape[axis]!;
  let sizes = x[1] ? known(x[1], 'split') : attrInts(a, 'split');
  if (!sizes) {
    const n = attrInt(a, 'num_outputs', outputs), each = Math.ceil(d / n);
    sizes = range(0, n).map((i) => Math.min(each, d - i * each));
  }
  let at = 0;
  return sizes.map((s) => {
    const start = t.shape.map(() => 0), size = [...t.shape];
    start[axis] = at; size[axis] = s; at += s;
    return ops.slice(t, start, size);
  });
}

function cast(x: readonly (Tensor | undefined)[], a: Attrs, where: string): Tensor {
  return ops.cast(req(x, 0), kilnDtype(attrInt(a, 'to'), where));
}

function constant(a: Attrs, where: string): Tensor {
  const v = a.get('value');
  if (v?.t) return readTensor(v.t, where);
  const f = a.get('value_float'), fs = a.get('value_floats'), i = a.get('value_int'), is = a.get('value_ints');
  if (f) return new Tensor('float32', [], Float32Array.of(f.f ?? 0));
  if (fs) return constOf(fs.floats ?? [], 'float32');
  if (i) return new Tensor('int32', [], Int32Array.of(clampInt(int(i.i))));
  if (is) return constOf((is.ints ?? []).map((v) => clampInt(int(v))));
  throw new Error('only tensor, float(s) and int(s) values are supported');
}

function batchNorm(x: readonly (Tensor | undefined)[], a: Attrs): Tensor {
  const t = req(x, 0), eps = attrFloat(a, 'epsilon', 1e-5);
  if (attrInt(a, 'training_mode', 0)) throw new Error('training_mode=1 is not supported');
  const per = (v: Tensor) => ops.reshape(v, [v.shape[0]!, ...range(2, t.rank).map(() => 1)]);
  const scale = ops.multiply(per(req(x, 1)), ops.rsqrt(ops.add(per(req(x, 4)), eps)));
  return ops.add(ops.multiply(ops.subtract(t, per(req(x, 3))), scale), per(req(x, 2)));
}

function layerNorm(x: readonly (Tensor | undefined)[], a: Attrs): Tensor {
  const t = req(x, 0), axis = norm(attrInt(a, 'axis', -1), t.rank), eps = attrFloat(a, 'epsilon', 1e-5);
  const axes = range(axis, t.rank);
  const mean = ops.mean(t, { axis: axes, keepdims: true });
  const centered = ops.subtract(t, mean);
  const variance = ops.mean(ops.square(centered), { axis: axes, keepdims: true });
  let y = ops.multiply(centered, ops.rsqrt(ops.add(variance, eps)));
  y = ops.multiply(y, req(x, 1));
  return x[2] ? ops.add(y, x[2]) : y;
}

function argReduce(f: typeof ops.argmax): OpFn {
  return (x, a) => {
    const t = req(x, 0);
    if (attrInt(a, 'select_last_index', 0)) throw new Error('select_last_index=1 is not supported');
    return f(t, norm(attrInt(a, 'axis', 0), t.rank), attrInt(a, 'keepdims', 1) === 1);
  };
}

/** The ONNX ops kiln reads, by op type. */
const OPS: Readonly<Record<string, OpFn>> = {
  Identity: unary((t) => t),
  Dropout: unary((t) => t), // inference: the mask output is not supported
  Add: variadic(ops.add), Sub: variadic(ops.subtract), Mul: variadic(ops.multiply), Div: variadic(ops.divide), Pow: variadic(ops.power),
  Max: variadic(ops.maximum), Min: variadic(ops.minimum), Sum: variadic(ops.add),
  Mean: (x) => {
    const ts = x.filter((t): t is Tensor => t !== undefined);
    return ops.divide(ts.reduce((p, t) => ops.add(p, t)), ts.length);
  },
  Neg: unary(ops.negative), Abs: unary(ops.abs), Sign: unary(ops.sign), Floor: unary(ops.floor), Ceil: unary(ops.ceil),
  Round: unary(ops.round), Not: unary(ops.logicalNot), Exp: unary(ops.exp), Log: unary(ops.log), Sqrt: unary(ops.sqrt),
  Tanh: unary(ops.tanh), Erf: unary(ops.erf), Sin: unary(ops.sin), Cos: unary(ops.cos), Reciprocal: unary(ops.reciprocal),
  Relu: unary(ops.relu), Sigmoid: unary(ops.sigmoid), Softplus: unary(ops.softplus), Softsign: unary(ops.softsign),
  Softmax: (x, a) => ops.softmax(req(x, 0), attrInt(a, 'axis', -1)),
  LogSoftmax: (x, a) => ops.logSoftmax(req(x, 0), attrInt(a, 'axis', -1)),
  LeakyRelu: (x, a) => ops.leakyRelu(req(x, 0), attrFloat(a, 'alpha', 0.01)),
  Elu: (x, a) => ops.elu(req(x, 0), attrFloat(a, 'alpha', 1)),
  Selu: (x, a) => {
    const t = req(x, 0), alpha = attrFloat(a, 'alpha', 1.67326319217681884765625), gamma = attrFloat(a, 'gamma', 1.05070102214813232421875);
    return ops.multiply(ops.where(ops.greater(t, 0), t, ops.multiply(ops.expm1(t), alpha)), gamma);
  },
  HardSigmoid: (x, a) => ops.clip(ops.add(ops.multiply(req(x, 0), attrFloat(a, 'alpha', 0.2)), attrFloat(a, 'beta', 0.5)), 0, 1),
  HardSwish: unary((t) => ops.multiply(t, ops.clip(ops.add(ops.divide(t, 6), 0.5), 0, 1))),
  Gelu: (x, a) => ops.gelu(req(x, 0), attrString(a, 'approximate', 'none') === 'tanh'),
  Clip: (x) => {
    let t = req(x, 0);
    if (x[1]) t = ops.maximum(t, x[1]);
    if (x[2]) t = ops.minimum(t, x[2]);
    return t;
  },
  Equal: variadic(ops.equal), Less: variadic(ops.less), LessOrEqual: variadic(ops.lessEqual), Greater: variadic(ops.greater),
  GreaterOrEqual: variadic(ops.greaterEqual), And: variadic(ops.logicalAnd), Or: variadic(ops.logicalOr),
  Where: (x) => ops.where(req(x, 0), req(x, 1), req(x, 2)),
  MatMul: (x) => ops.matmul(req(x, 0), req(x, 1)),
  Gemm: gemm,
  Conv: conv,
  MaxPool: pool('max'), AveragePool: pool('avg'),
  GlobalAveragePool: unary((t) => ops.mean(t, { axis: range(2, t.rank), keepdims: true })),
  GlobalMaxPool: unary((t) => ops.max(t, { axis: range(2, t.rank), keepdims: true })),
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  Flatten: (x, a) => {
    const t = req(x, 0), axis = norm(attrInt(a, 'axis', 1), t.rank);
    return ops.reshape(t, [sizeOf(t.shape.slice(0, axis)), sizeOf(t.shape.slice(axis))]);
  },
  Reshape: reshape,
  Transpose: (x, a) => {
    const t = req(x, 0);
    return ops.transpose(t, attrInts(a, 'perm') ?? range(0, t.rank).reverse());
  },
  Expand: (x) => {
    const t = req(x, 0), shape = known(x[1], 'the shape');
    const r = Math.max(t.rank, shape.length), full = [...Array<number>(r - t.rank).fill(1), ...t.shape];
    const s = [...Array<number>(r - shape.length).fill(1), ...shape];
    return ops.broadcastTo(t, full.map((d, i) => (d === 1 ? s[i]! : d)));
  },
  Slice: slice,
  Pad: (x, a) => {
    const t = req(x, 0);
    if (attrString(a, 'mode', 'constant') !== 'constant') throw new Error(`mode '${attrString(a, 'mode', '')}' is not supported (only constant)`);
    const pads = known(x[1], 'pads'), value = x[2] ? known(x[2], 'the constant value')[0] ?? 0 : 0;
    const axes = x[3] ? known(x[3], 'axes').map((v) => norm(v, t.rank)) : range(0, t.rank);
    const padding = t.shape.map((): [number, number] => [0, 0]);
    axes.forEach((ax, i) => { padding[ax] = [pads[i]!, pads[i + axes.length]!]; });
    if (padding.some((p) => p[0] < 0 || p[1] < 0)) throw new Error('negative pads are not supported');
    return ops.pad(t, padding, value);
  },
  Concat: (x, a) => {
    const ts = x.filter((t): t is Tensor => t !== undefined);
    return ops.concatenate(ts, norm(attrInt(a, 'axis'), ts[0]!.rank));
  },
  Gather: (x, a) => ops.take(req(x, 0), req(x, 1), attrInt(a, 'axis', 0)),
  Squeeze: (x, a) => {
    const t = req(x, 0), axes = x[1] ? known(x[1], 'axes') : attrInts(a, 'axes');
    const drop = (axes ?? range(0, t.rank).filter((i) => t.shape[i] === 1)).map((v) => norm(v, t.rank));
    return ops.reshape(t, t.shape.filter((_, i) => !drop.includes(i)));
  },
  Unsqueeze: (x, a) => {
    const t = req(x, 0), axes = (x[1] ? known(x[1], 'axes') : attrInts(a, 'axes') ?? []);
    const r = t.rank + axes.length, at = axes.map((v) => norm(v, r));
    const shape: number[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) shape.push(at.includes(i) ? 1 : t.shape[k++]!);
    return ops.reshape(t, shape);
  },
  Shape: (x, a) => {
    const t = req(x, 0), r = t.rank;
    const clampR = (v: number) => Math.min(r, Math.max(0, v < 0 ? v + r : v));
    return constOf(t.shape.slice(clampR(attrInt(a, 'start', 0)), clampR(attrInt(a, 'end', r))));
  },
  Size: unary((t) => new Tensor('int32', [], Int32Array.of(t.size))),
  Cast: (x, a, c) => cast(x, a, c.where),
  CastLike: (x) => ops.cast(req(x, 0), req(x, 1).dtype),
  Constant: (_x, a, c) => constant(a, c.where),
  ConstantOfShape: (x, a, c) => {
    const v = a.get('value')?.t ? readTensor(a.get('value')!.t!, c.where) : new Tensor('float32', [1], Float32Array.of(0));
    return ops.full(known(x[0], 'the shape'), v.data[0]!, v.dtype);
  },
  Range: (x) => {
    const [s, l, d] = [0, 1, 2].map((i) => known(x[i], 'range bounds')[0]!) as [number, number, number];
    const dtype = req(x, 0).dtype;
    const n = Math.max(0, Math.ceil((l - s) / d));
    return new Tensor(dtype, [n], toTyped(dtype, range(0, n).map((i) => s + i * d)));
  },
  ReduceSum: reduce(ops.sum), ReduceMean: reduce(ops.mean), ReduceMax: reduce(ops.max), ReduceMin: reduce(ops.min), ReduceProd: reduce(ops.prod),
  ArgMax: argReduce(ops.argmax), ArgMin: argReduce(ops.argmin),
  Split: (x, a, c) => split(x, a, c.outputs),
};
