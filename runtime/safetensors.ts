// The safetensors format: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
import type { DType, TypedArray } from '../ir/types.js';

export interface NamedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

const CODES: Partial<Record<DType, string>> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };
const FROM_CODE: Record<string, DType> = { F32: 'float32', I32: 'int32', BOOL: 'bool' };

/** Serializes tensors (in order) with optional string metadata. */
export function writeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const code = CODES[t.dtype];
    if (!code) throw new Error(`safetensors: dtype ${t.dtype} of '${t.name}' is not supported`);
    header[t.name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // data starts 8-byte aligned
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Parses safetensors bytes with strict bounds checks; tensors come back in file order. */
export function readSafetensors(bytes: Uint8Array): { tensors: NamedTensor[]; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error('safetensors: file is shorter than its 8-byte header length');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) throw new Error(`safetensors: header of ${n} bytes runs past the end of the file`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const tensors: NamedTensor[] = [];
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = FROM_CODE[h.dtype];
    if (!dtype) throw new Error(`safetensors: '${name}' has unsupported dtype ${h.dtype}`);
    const [a, b] = h.data_offsets;
    const count = h.shape.reduce((x, y) => x * y, 1);
    const width = dtype === 'bool' ? 1 : 4;
    if (!(a >= 0 && b >= a && base + b <= bytes.length) || b - a !== count * width) {
      throw new Error(`safetensors: '${name}' has data offsets [${a}, ${b}] that do not fit its shape [${h.shape}] or the file`);
    }
    // a copy (a Node Buffer's slice is a view of a larger pool)
    const raw = Uint8Array.prototype.slice.call(bytes, base + a, base + b);
    const data = dtype === 'float32' ? new Float32Array(raw.buffer) : dtype === 'int32' ? new Int32Array(raw.buffer) : new Uint8Array(raw.buffer);
    tensors.push({ name, dtype, shape: h.shape, data });
  }
  return { tensors, metadata: (header['__metadata__'] as unknown as Record<string, string>) ?? {} };
}
