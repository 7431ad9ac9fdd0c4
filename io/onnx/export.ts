// ONNX export: a model's traced predict graph (graph IR) as an ONNX ModelProto of standard opset-17 ops, its weights as
// initializers named by their Keras paths, and a dynamic batch dimension.
import { type Graph, type Node, nodeName, topoSort } from '../../ir/graph.js';
import { attrsOf } from '../../ir/ops.js';
import { type DType, type TypedArray, formatType, shapesEqual, sizeOf, stridesOf, toTyped } from '../../ir/types.js';
import type { Model } from '../../frontend/models/model.js';
import { traceModel } from '../../frontend/models/executor.js';
import { unrollScans } from '../../passes/unroll_scan.js';
import {
  AttrType, type AttributeProto, DataType, IR_VERSION, type ModelProto, type NodeProto, ONNX_DTYPE, OPSET, type TensorProto,
  type ValueInfoProto, int64Proto, onnx, tensorProto,
} from './proto.js';

/** The batch sizes the model is traced at: the dimensions that differ between the two traces are the batch. */
const B1 = 2, B2 = 3;

/**
 * A dimension of a value: a number, or `{ k }` for k times the batch size. Found by tracing the model at two batch
 * sizes: a dimension that is d1 at B1 and d2 at B2 is k·batch when d1 = k·B1 and d2 = k·B2.
 */
type Dim = number | { readonly k: number };

class ExportError extends Error {
  override name = 'ExportError';
}

/** Exports a built model's predict graph; the batch dimension is dynamic ('batch') unless the model fixes it. */
export function exportOnnx(model: Model): Uint8Array {
  const fixed = model.inputSpecs.some((s) => s.shape[0] !== null);
  // ONNX gets recurrent layers unrolled (no loop op is exported)
  const g1 = unrollScans(traceModel(model, fixed ? 1 : B1).graph);
  const g2 = fixed ? undefined : unrollScans(traceModel(model, B2).graph);
  const values = new Map(model.weights.map((v) => [v.path, v]));
  const proto = graphToOnnx(g1, g2, model.name, (name) => {
    const v = values.get(name);
    if (!v) throw new ExportError(`weight '${name}' is not one of the model's weights`);
    return v.data;
  });
  return onnx.ModelProto.encode(onnx.ModelProto.create(proto)).finish();
}

/**
 * The ONNX model of graph g1 (traced at batch B1); with g2, the same graph traced at B2, the batch dimension is dynamic.
 * `weight(name)` gives a param's values.
 */
export function graphToOnnx(g1: Graph, g2: Graph | undefined, name: string, weight: (name: string) => TypedArray): ModelProto {
  return new Exporter(g1, g2, weight).model(name);
}

class Exporter {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly names = new Map<Node, string>();
  private readonly used = new Set<string>();
  /** The other trace's node at the same place, per node of g1 (undefined for a fixed batch). */
  private readonly twin = new Map<Node, Node>();
  private batchName: string | undefined;
  private readonly scalars = new Map<string, string>();

  constructor(private readonly g: Graph, g2: Graph | undefined, private readonly weight: (name: string) => TypedArray) {
    if (g2) this.pair(g2);
  }

  /** Pairs each node of g with g2's, checking the two traces have one structure. */
  private pair(g2: Graph): void {
    const a = topoSort(this.g), b = topoSort(g2);
    const differ = () => new ExportError('the model traces to different graphs at different batch sizes; it cannot be exported with a dynamic batch dimension');
    if (a.length !== b.length) throw differ();
    const index = new Map(a.map((n, i) => [n, i]));
    const indexB = new Map(b.map((n, i) => [n, i]));
    a.forEach((n, i) => {
      const m = b[i]!;
      if (n.op !== m.op || n.src.length !== m.src.length || n.src.some((s, j) => index.get(s) !== indexB.get(m.src[j]!))) throw differ();
      this.twin.set(n, m);
    });
  }

  /** The dims of node n's shape, with the batch-sized ones as { k }. */
  private dims(n: Node, shape = n.type.shape, other = this.twin.get(n)?.type.shape): Dim[] {
    return shape.map((d, i) => this.dim(n, d, other?.[i]));
  }

  private dim(n: Node, d1: number, d2: number | undefined): Dim {
    if (d2 === undefined || d1 === d2) return d1;
    const k = d1 / B1;
    if (!Number.isInteger(k) || d2 !== k * B2) throw new ExportError(`${n.op} ${formatType(n.type)}: a dimension (${d1} at batch ${B1}, ${d2} at ${B2}) is not a multiple of the batch size`);
    return { k };
  }

  /** An attribute list of n (ints) that must not depend on the batch size. */
  private staticInts(n: Node, key: string): number[] {
    const v = n.attrs[key] as readonly number[], w = this.twin.get(n)?.attrs[key] as readonly number[] | undefined;
    if (w && JSON.stringify(v) !== JSON.stringify(w)) throw new ExportError(`${n.op} ${formatType(n.type)}: attribute '${key}' depends on the batch size`);
    return [...v];
  }

  private fresh(base: string): string {
    let s = base, i = 1;
    while (this.used.has(s)) s = `${base}_${i++}`;
    this.used.add(s);
    return s;
  }

  private init(t: TensorProto): string {
    const name = this.fresh(t.name!);
    this.inits.push({ ...t, name });
    return name;
  }

  private emit(opType: string, inputs: readonly string[], attrs: AttributeProto[] = [], out?: string): string {
    const y = out ?? this.fresh(`${opType}_${this.nodes.length}`);
    this.nodes.push({ opType, input: [...inputs], output: [y], name: this.fresh(`${opType}_node_${this.nodes.length}`), attribute: attrs });
    return y;
  }

  /** An int64 1-D tensor of dims: an initializer, or computed from the batch size when some are { k }. */
  private shapeOf(dims: readonly Dim[]): string {
    if (dims.every((d) => typeof d === 'number')) return this.init(int64Proto('shape', dims as number[]));
    const parts = dims.map((d) => {
      if (typeof d === 'number') return this.init(int64Proto('dim', [d]));
      const b = this.batch();
      return d.k === 1 ? b : this.emit('Mul', [b, this.init(int64Proto('k', [d.k]))]);
    });
    return this.emit('Concat', parts, [int('axis', 0)]);
  }

  /** The batch size as an int64 [1], from the first input with a batch dimension. */
  private batch(): string {
    if (this.batchName) return this.batchName;
    const input = this.g.inputs.find((n) => typeof this.dims(n)[0] === 'object');
    if (!input) throw new ExportError('a value depends on the batch size but no input has a batch dimension');
    this.batchName = this.emit('Shape', [this.names.get(input)!], [int('start', 0), int('end', 1)]);
    return this.batchName;
  }

  private valueInfo(name: string, n: Node): ValueInfoProto {
    const dims = this.dims(n).map((d) => (typeof d === 'number' ? { dimValue: d } : d.k === 1 ? { dimParam: 'batch' } : { dimParam: `batch*${d.k}` }));
    return { name, type: { tensorType: { elemType: onnxType(n.type.dtype, n), shape: { dim: dims } } } };
  }

  model(name: string): ModelProto {
    const g = this.g;
    for (const n of [...g.inputs, ...g.params]) {
      const s = nodeName(n);
      if (this.used.has(s)) throw new ExportError(`two inputs or weights are named '${s}'`);
      this.used.add(s);
      this.names.set(n, s);
    }
    // an output takes its name from the node computing it when it can, else through an Identity
    const outputNames = new Set(g.outputs.map((o) => o.name));
    for (const s of outputNames) if (this.used.has(s)) throw new ExportError(`output '${s}' has the name of an input or weight`);
    for (const o of g.outputs) {
      if (!this.names.has(o.node) && o.node.op !== 'const' && o.node.op !== 'iota') {
        this.names.set(o.node, o.name);
        this.used.add(o.name);
      }
    }
    for (const s of outputNames) this.used.add(s);
    for (const p of g.params) this.inits.push(tensorProto(nodeName(p), p.type.dtype, p.type.shape, toTyped(p.type.dtype, this.weight(nodeName(p)))));
    const needed = this.needed();
    for (const n of topoSort(g)) {
      if (n.op === 'input' || n.op === 'param' || !needed.has(n)) continue;
      const x = this.operands(n).map((s) => ('scalar' in s ? this.scalar(s.scalar, s.dtype) : this.names.get(s)!));
      this.names.set(n, this.node(n, x, this.names.get(n)));
    }
    for (const o of g.outputs) if (this.names.get(o.node) !== o.name) this.emit('Identity', [this.names.get(o.node)!], [], o.name);
    return {
      irVersion: IR_VERSION,
      producerName: 'kiln',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name,
        node: this.nodes,
        initializer: this.inits,
        input: g.inputs.map((n) => this.valueInfo(nodeName(n), n)),
        output: g.outputs.map((o) => this.valueInfo(o.name, o.node)),
      },
    };
  }

  /**
   * The operands n is exported with. ONNX's elementwise ops broadcast as NumPy does, where kiln's graph spells each
   * broadcast out: when another operand has n's whole shape (so the result's shape stays), a broadcast operand is
   * its source and a constant splat is a scalar.
   */
  private operands(n: Node): (Node | { scalar: number; dtype: DType })[] {
    if (!BROADCASTING.has(n.op)) return [...n.src];
    const splat = (s: Node) => s.op === 'const' && attrsOf(s, 'const').value.length === 1;
    const anchor = n.src.findIndex((s) => s.op !== 'broadcast' && !splat(s) && shapesEqual(s.type.shape, n.type.shape));
    if (anchor < 0) return [...n.src];
    return n.src.map((s, i) => (i === anchor ? s : s.op === 'broadcast' ? s.src[0]! : splat(s) ? { scalar: attrsOf(s, 'const').value[0]!, dtype: s.type.dtype } : s));
  }

  /** The nodes the outputs need through their exported operands (a broadcast that every user skips is not written). */
  private needed(): Set<Node> {
    const seen = new Set<Node>(), stack = this.g.outputs.map((o) => o.node);
    while (stack.length) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      for (const s of this.operands(n)) if (!('scalar' in s)) stack.push(s);
    }
    return seen;
  }

  /** Emits the ONNX nodes of graph node n (its sources named x) and returns the name of its value. */
  private node(n: Node, x: string[], out: string | undefined): string {
    const x0 = x[0]!;
    const simple = SIMPLE[n.op];
    if (simple) return this.emit(simple, x, [], out);
    switch (n.op) {
      case 'const': {
        const { value } = attrsOf(n, 'const');
        const dims = this.dims(n);
        if (dims.every((d) => typeof d === 'number')) {
          const data = toTyped(n.type.dtype, value.length === 1 ? new Array<number>(sizeOf(n.type.shape)).fill(value[0]!) : value);
          return this.constant(tensorProto('const', n.type.dtype, n.type.shape, data), out);
        }
        if (value.length !== 1) throw new ExportError(`const ${formatType(n.type)}: a constant of batch size holding different values cannot be exported`);
        const v = tensorProto('value', n.type.dtype, [1], toTyped(n.type.dtype, value));
        return this.emit('ConstantOfShape', [this.shapeOf(dims)], [{ name: 'value', type: AttrType.TENSOR, t: v }], out);
      }
      case 'iota': {
        if (this.dims(n).some((d) => typeof d !== 'number')) throw new ExportError(`iota ${formatType(n.type)} over the batch dimension cannot be exported`);
        const { axis } = attrsOf(n, 'iota');
        const shape = n.type.shape, stride = stridesOf(shape)[axis]!;
        const data = Int32Array.from({ length: sizeOf(shape) }, (_, i) => Math.floor(i / stride) % shape[axis]!);
        return this.constant(tensorProto('iota', 'int32', shape, data), out);
      }
      case 'log1p': return this.emit('Log', [this.emit('Add', [x0, this.scalar(1, n.type.dtype)])], [], out);
      case 'rsqrt': return this.emit('Reciprocal', [this.emit('Sqrt', [x0])], [], out);
      case 'ne': return this.emit('Not', [this.emit('Equal', x)], [], out);
      case 'reduce_sum': case 'reduce_max': case 'reduce_min': case 'reduce_prod': {
        const { axes, keepdims } = attrsOf(n, ['reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod']);
        if (axes.length === 0) return this.emit('Identity', [x0], [], out);
        const op = { reduce_sum: 'ReduceSum', reduce_max: 'ReduceMax', reduce_min: 'ReduceMin', reduce_prod: 'ReduceProd' }[n.op];
        const keep = int('keepdims', keepdims ? 1 : 0);
        // opset 13 moved ReduceSum's axes to an input; the others follow at opset 18
        return n.op === 'reduce_sum' ? this.emit(op, [x0, this.init(int64Proto('axes', axes))], [keep], out) : this.emit(op, [x0], [ints('axes', axes), keep], out);
      }
      case 'argmax': case 'argmin': {
        const { axis, keepdims } = attrsOf(n, ['argmax', 'argmin']);
        const y = this.emit(n.op === 'argmax' ? 'ArgMax' : 'ArgMin', [x0], [int('axis', axis), int('keepdims', keepdims ? 1 : 0)]);
        return this.emit('Cast', [y], [int('to', DataType.INT32)], out);
      }
      case 'cast': return this.emit('Cast', [x0], [int('to', onnxType(attrsOf(n, 'cast').dtype, n))], out);
      case 'reshape': return this.emit('Reshape', [x0, this.shapeOf(this.dims(n))], [int('allowzero', 1)], out);
      case 'broadcast': return this.emit('Expand', [x0, this.shapeOf(this.dims(n))], [], out);
      case 'transpose': return this.emit('Transpose', [x0], [ints('perm', attrsOf(n, 'transpose').perm)], out);
      case 'slice': {
        const { start, step } = attrsOf(n, 'slice');
        const src = n.src[0]!, twin = this.twin.get(n)?.attrs['end'] as readonly number[] | undefined;
        const ends = attrsOf(n, 'slice').end.map((e, i) => this.dim(n, e, twin?.[i]));
        this.staticInts(n, 'start');
        this.staticInts(n, 'step');
        const axes = src.type.shape.map((_, i) => i);
        return this.emit('Slice', [x0, this.init(int64Proto('starts', start)), this.shapeOf(ends), this.init(int64Proto('axes', axes)), this.init(int64Proto('steps', step))], [], out);
      }
      case 'pad': {
        const { padding, value } = attrsOf(n, 'pad');
        this.staticInts(n, 'padding');
        const pads = [...padding.map((p) => p[0]), ...padding.map((p) => p[1])];
        return this.emit('Pad', [x0, this.init(int64Proto('pads', pads)), this.scalar(value, n.type.dtype)], [{ name: 'mode', type: AttrType.STRING, s: new TextEncoder().encode('constant') }], out);
      }
      case 'concat': return this.emit('Concat', x, [int('axis', attrsOf(n, 'concat').axis)], out);
      case 'gather': return this.emit('Gather', x, [int('axis', attrsOf(n, 'gather').axis)], out);
      case 'conv': {
        const { strides, dilation, lhsDilation, padding, groups } = attrsOf(n, 'conv');
        if (lhsDilation.some((d) => d !== 1)) throw new ExportError(`conv ${formatType(n.type)}: a transposed convolution (lhsDilation ${lhsDilation.join(',')}) has no export yet`);
        const r = n.type.shape.length;
        const w = this.emit('Transpose', [x[1]!], [ints('perm', [r - 1, r - 2, ...range(0, r - 2)])]);
        const y = this.emit('Conv', [this.toChannelsFirst(x0, r), w], [
          ints('strides', strides), ints('dilations', dilation), ints('pads', [...padding.map((p) => p[0]), ...padding.map((p) => p[1])]), int('group', groups),
        ]);
        return this.emit('Transpose', [y], [ints('perm', [0, ...range(2, r), 1])], out);
      }
      case 'reduce_window': {
        const { kind, window, strides, padding } = attrsOf(n, 'reduce_window');
        if (n.type.dtype !== 'float32') throw new ExportError(`reduce_window ${formatType(n.type)}: ONNX pools only floats`);
        const r = n.type.shape.length;
        const attrs = [ints('kernel_shape', window), ints('strides', strides), ints('pads', [...padding.map((p) => p[0]), ...padding.map((p) => p[1])])];
        // a sum window is the average over the window, padding included, times its size
        let y = kind === 'max' ? this.emit('MaxPool', [this.toChannelsFirst(x0, r)], attrs)
          : this.emit('AveragePool', [this.toChannelsFirst(x0, r)], [...attrs, int('count_include_pad', 1)]);
        if (kind === 'sum') y = this.emit('Mul', [y, this.scalar(sizeOf(window), 'float32')]);
        return this.emit('Transpose', [y], [ints('perm', [0, ...range(2, r), 1])], out);
      }
      case 'input': case 'param': case 'random_uniform':
      default:
        throw new ExportError(`${n.op} ${formatType(n.type)} has no ONNX export${n.op === 'random_uniform' ? ' (random ops run only in training)' : ''}`);
    }
  }

  private toChannelsFirst(x: string, r: number): string {
    return this.emit('Transpose', [x], [ints('perm', [0, r - 1, ...range(1, r - 1)])]);
  }

  private scalar(v: number, dtype: DType): string {
    const key = `${dtype} ${Object.is(v, -0) ? '-0' : v}`;
    let name = this.scalars.get(key);
    if (!name) this.scalars.set(key, (name = this.constant(tensorProto('scalar', dtype, [], toTyped(dtype, [v])))));
    return name;
  }

  /** A Constant node: the initializers are the weights alone, so that an importer can tell them apart. */
  private constant(t: TensorProto, out?: string): string {
    return this.emit('Constant', [], [{ name: 'value', type: AttrType.TENSOR, t }], out);
  }
}

/** Graph-IR ops whose ONNX ops broadcast their operands as NumPy does. */
const BROADCASTING: ReadonlySet<string> = new Set(['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or', 'select']);

/** Graph-IR ops that are one ONNX op of the same operands. */
const SIMPLE: Readonly<Partial<Record<Node['op'], string>>> = {
  neg: 'Neg', abs: 'Abs', sign: 'Sign', floor: 'Floor', ceil: 'Ceil', round: 'Round', not: 'Not', exp: 'Exp', log: 'Log',
  sqrt: 'Sqrt', tanh: 'Tanh', erf: 'Erf', sin: 'Sin', cos: 'Cos', recip: 'Reciprocal',
  add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div', pow: 'Pow', max: 'Max', min: 'Min',
  eq: 'Equal', lt: 'Less', le: 'LessOrEqual', gt: 'Greater', ge: 'GreaterOrEqual', and: 'And', or: 'Or',
  select: 'Where', matmul: 'MatMul',
};

function onnxType(dtype: DType, n: Node): number {
  const t = ONNX_DTYPE[dtype];
  if (t === undefined) throw new ExportError(`${n.op} ${formatType(n.type)}: dtype ${dtype} has no export`);
  return t;
}

function int(name: string, i: number): AttributeProto {
  return { name, type: AttrType.INT, i };
}

function ints(name: string, v: readonly number[]): AttributeProto {
  return { name, type: AttrType.INTS, ints: [...v] };
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
