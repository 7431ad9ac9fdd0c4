// ONNX protobuf messages (the onnx-proto package, protobufjs) and the conversions kiln's importer and exporter share.
import onnxProto from 'onnx-proto';
import type { DType, TypedArray } from '../../ir/types.js';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.IModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const DataType = onnx.TensorProto.DataType;
export const AttrType = onnx.AttributeProto.AttributeType;

/** The ONNX opset kiln writes (and the oldest it reads: the attributes and inputs it knows are those of 13 and later). */
export const OPSET = 17;
/** IR version 8 goes with opset 17 (onnx/docs/Versioning.md). */
export const IR_VERSION = 8;

/** ONNX element type of each kiln dtype that ONNX files can hold. */
export const ONNX_DTYPE: Readonly<Partial<Record<DType, number>>> = {
  float32: DataType.FLOAT, int32: DataType.INT32, bool: DataType.BOOL,
};

/** A number from a protobuf int64 field (protobufjs gives a Long when the `long` package is installed). */
export function int(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Name of an ONNX element type for messages. */
export function dataTypeName(t: number): string {
  return (DataType as unknown as Record<number, string>)[t]?.toLowerCase() ?? `type ${t}`;
}

/** A TensorProto holding a kiln array (raw little-endian data, as ONNX writers do). */
export function tensorProto(name: string, dtype: DType, shape: readonly number[], data: TypedArray): TensorProto {
  const t = ONNX_DTYPE[dtype];
  if (t === undefined) throw new Error(`onnx: dtype ${dtype} cannot be written`);
  return { name, dims: [...shape], dataType: t, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() };
}

/** A 1-D int64 TensorProto (the shape, axes and index operands of ONNX ops). */
export function int64Proto(name: string, values: readonly number[]): TensorProto {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(data.buffer) };
}
