// NumPy .npy files (version 1.0, little-endian, C order) for float32, int32, bool and int8 arrays.
import { DTYPES, type DType, type TypedArray } from '../ir/types.js';

/** The dtypes a .npy file may hold, by their descr (DTYPES' npy names). */
const FROM_DESCR = new Map(Object.entries(DTYPES).flatMap(([d, info]) => (info.names ? [[info.names.npy, d as DType] as const] : [])));

export function writeNpy(dtype: DType, shape: readonly number[], data: TypedArray): Uint8Array {
  const descr = DTYPES[dtype]?.names?.npy; // (a dtype from untyped callers may be any string)
  if (!descr) throw new Error(`npy: dtype ${dtype} is not supported`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n'; // data 64-byte aligned
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0); // \x93NUMPY v1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export function readNpy(bytes: Uint8Array): { dtype: DType; shape: number[]; data: TypedArray } {
  if (bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') throw new Error('npy: not a .npy file');
  const v = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const hlen = v === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = v === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  if (/'fortran_order':\s*True/.test(header)) throw new Error('npy: Fortran-order arrays are not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const dtype = descr === undefined ? undefined : FROM_DESCR.get(descr);
  if (!dtype) throw new Error(`npy: dtype ${descr} is not supported`);
  const n = shape.reduce((a, b) => a * b, 1);
  // a copy (a Node Buffer's slice is a view of a larger pool)
  const raw = Uint8Array.prototype.slice.call(bytes, start + hlen, start + hlen + n * DTYPES[dtype].bytes);
  // int8 (quantized weights) signed: a Uint8Array would read -1 as 255
  const data = dtype === 'float32' ? new Float32Array(raw.buffer) : dtype === 'int32' ? new Int32Array(raw.buffer) : dtype === 'int8' ? new Int8Array(raw.buffer) : new Uint8Array(raw.buffer);
  if (data.length !== n) throw new Error('npy: file is truncated');
  return { dtype, shape, data };
}
