// A minimal ONNX writer for the benchmarks: just enough of the protobuf wire format (varints and length-delimited
// fields) to write a ModelProto with float32 initializers, fixed-shape float32 inputs/outputs and attribute-free nodes.
// Field numbers follow onnx/onnx.proto (proto2; repeated scalars written unpacked, which every parser accepts).

/** A protobuf message being written: fields in the order they are added. */
class Message {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  private varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`onnx: varint ${v} is not a non-negative safe integer`);
    const out: number[] = [];
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: 0 | 2): void {
    this.varint(field * 8 + wire);
  }

  /** int32, int64 or enum (non-negative values only, which is all ONNX needs here). */
  int(field: number, v: number): this {
    this.key(field, 0);
    this.varint(v);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Message): this {
    return this.bytes(field, m.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export interface OnnxTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface OnnxValue {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxTensor[];
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
}

function valueInfo(v: OnnxValue): Message {
  const shape = new Message();
  for (const d of v.shape) shape.message(1, new Message().int(1, d)); // TensorShapeProto.dim { dim_value }
  const tensorType = new Message().int(1, FLOAT).message(2, shape); // TypeProto.Tensor { elem_type, shape }
  return new Message().string(1, v.name).message(2, new Message().message(1, tensorType)); // ValueInfoProto { name, type }
}

/** A ModelProto (IR version 8, default-domain opset 17) holding one graph; float32 only. */
export function encodeOnnx(g: OnnxGraph): Uint8Array {
  const graph = new Message();
  g.nodes.forEach((n, i) => {
    const node = new Message();
    for (const x of n.inputs) node.string(1, x);
    for (const y of n.outputs) node.string(2, y);
    node.string(3, `${n.op}_${i}`).string(4, n.op);
    graph.message(1, node); // GraphProto.node
  });
  graph.string(2, g.name);
  for (const t of g.initializers) {
    const tensor = new Message();
    for (const d of t.shape) tensor.int(1, d); // dims
    tensor.int(2, FLOAT).string(8, t.name);
    tensor.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)); // raw_data, little-endian
    graph.message(5, tensor); // GraphProto.initializer
  }
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  return new Message()
    .int(1, 8) // ir_version
    .string(2, 'kiln-bench') // producer_name
    .message(7, graph)
    .message(8, new Message().string(1, '').int(2, 17)) // opset_import { domain: "", version: 17 }
    .finish();
}
