// The safetensors format: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
import { DTYPES, type DType, type TypedArray } from '../ir/types.js';

export interface NamedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

/** The dtypes kiln reads and writes, by their code in the format (DTYPES' safetensors names). */
const FROM_CODE = new Map(Object.entries(DTYPES).flatMap(([d, info]) => (info.names ? [[info.names.safetensors, d as DType] as const] : [])));

/** Serializes tensors (in order) with optional string metadata. */
export function writeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const code = DTYPES[t.dtype]?.names?.safetensors;
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

/** Every dtype of the format (the reference parser's) with its bits per element; kiln reads F32, I32, BOOL and I8. */
const SAFETENSORS_BITS: Record<string, number> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32, F64: 64, I64: 64, U64: 64, C64: 64,
};
/** The reference parser's limit on the header's length. */
const MAX_HEADER = 100_000_000;

/** What a reader expects of one tensor (a manifest's param). */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const show = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));

/** The first key that one JSON object of valid JSON text holds twice (JSON.parse silently keeps the last). */
export function duplicateKey(text: string): string | undefined {
  const objects: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(null);
    else if (c === '}' || c === ']') objects.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (' \t\n\r'.includes(text[k]!)) k++;
      if (text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1)) as string, keys = objects[objects.length - 1]!;
        if (keys.has(key)) return key;
        keys.add(key);
      }
      i = j;
    }
  }
  return undefined;
}

/**
 * The numbers of each tensor's shape and data_offsets as the JSON text writes them, by tensor name: JSON.parse
 * reads `1.0`, `1e0` and `-0` as integers, which the reference parser (serde, into usize) refuses.
 */
export function indexTexts(text: string): Map<string, Record<string, string[]>> {
  const out = new Map<string, Record<string, string[]>>();
  const keys: (string | undefined)[] = []; // the key each open object or array is the value of
  let key: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '{' || c === '[') {
      keys.push(key);
      key = undefined;
    } else if (c === '}' || c === ']') {
      keys.pop();
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (' \t\n\r'.includes(text[k]!)) k++;
      if (text[k] === ':') key = JSON.parse(text.slice(i, j + 1)) as string;
      i = j;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(text)![0];
      const [, name, field] = keys;
      if (keys.length === 3 && name !== undefined && (field === 'shape' || field === 'data_offsets')) {
        const fields = out.get(name) ?? {};
        out.set(name, fields);
        (fields[field] ??= []).push(token);
      }
      i += token.length - 1;
    }
  }
  return out;
}

const NUMBER = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
/** A number as JSON writes a non-negative integer: no sign, fraction or exponent. */
const plainIndex = (token: string): boolean => /^(0|[1-9][0-9]*)$/.test(token);

/**
 * Parses safetensors bytes as the reference parser (huggingface/safetensors) does, and more strictly: the header
 * a JSON object of at most 100 MB without repeated keys, string-valued __metadata__, each tensor { dtype, shape,
 * data_offsets } (other fields ignored, as there and in the C runtime) with a known dtype and non-negative integer
 * dimensions and offsets (written as integers), offsets covering the data exactly in order from 0 (no gaps, overlaps
 * or trailing bytes), byte sizes = dtype size x product(shape). With `expected` every listed tensor must be there with
 * that dtype and shape. The tensors of the dtypes kiln reads come back in file order (others, an F16 copy or an I64
 * step counter, are checked and ignored, as the C runtime does); errors are one line naming the tensor.
 */
export function readSafetensors(bytes: Uint8Array, expected?: readonly TensorSpec[]): { tensors: NamedTensor[]; metadata: Record<string, string> } {
  const fail = (what: string): never => { throw new Error(`safetensors: ${what}`); };
  if (bytes.length < 8) fail(`file of ${bytes.length} bytes is shorter than its 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is over the format's limit of ${MAX_HEADER} bytes`);
  const n = Number(n64);
  if (n > bytes.length - 8) fail(`header of ${n} bytes runs past the end of the file (${bytes.length} bytes)`);
  let text = '', header: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('header is not UTF-8 text');
  }
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail(`header is not a JSON object but ${show(header)}`);
  const dup = duplicateKey(text);
  if (dup !== undefined) fail(`header has the key ${show(dup)} twice`);
  const fields = header as Record<string, unknown>;
  const metadata = (fields['__metadata__'] ?? {}) as Record<string, unknown>;
  if (typeof metadata !== 'object' || Array.isArray(metadata) || Object.values(metadata).some((v) => typeof v !== 'string')) fail('__metadata__ must map names to strings');
  const entries: { name: string; code: string; dtype: DType | undefined; shape: number[]; begin: number; end: number }[] = [];
  const texts = indexTexts(text);
  for (const [name, h] of Object.entries(fields)) {
    if (name === '__metadata__') continue;
    const bad = (what: string): never => fail(`tensor ${show(name)} ${what}`);
    if (typeof h !== 'object' || h === null || Array.isArray(h)) return bad(`is ${show(h)}, not { dtype, shape, data_offsets }`);
    const info = h as Record<string, unknown>;
    const code = info['dtype'], shape = info['shape'], off = info['data_offsets'];
    if (typeof code !== 'string' || !Object.hasOwn(SAFETENSORS_BITS, code)) return bad(`has an unknown dtype ${show(code)}`);
    const raw = texts.get(name) ?? {};
    if (!Array.isArray(shape) || !shape.every(isIndex)) return bad(`has an invalid shape ${show(shape)}: dimensions are non-negative integers`);
    const shapeText = raw['shape']?.find((t) => !plainIndex(t));
    if (shapeText !== undefined) bad(`has an invalid shape: ${shapeText} is not written as a non-negative integer`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isIndex)) return bad(`has invalid data_offsets ${show(off)}: [begin, end], non-negative integers`);
    const offText = raw['data_offsets']?.find((t) => !plainIndex(t));
    if (offText !== undefined) bad(`has invalid data_offsets: ${offText} is not written as a non-negative integer`);
    entries.push({ name, code, dtype: FROM_CODE.get(code), shape, begin: off[0]!, end: off[1]! });
  }
  const size = bytes.length - 8 - n;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    const bad = (what: string): never => fail(`tensor ${show(e.name)} ${what}`);
    if (e.end < e.begin) bad(`has data_offsets [${e.begin}, ${e.end}] that end before they begin`);
    if (e.end > size) bad(`has data_offsets [${e.begin}, ${e.end}] past the end of the data (${size} bytes)`);
    if (e.begin !== at) bad(`has data_offsets [${e.begin}, ${e.end}] but ${at === 0 ? 'the data begins at 0' : `the tensor before it ends at ${at}`}: tensors cover the data in order, without gaps or overlaps`);
    const bits = e.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_BITS[e.code]!;
    if (bits % 8 !== 0) bad(`of dtype ${e.code} and shape [${e.shape}] does not fill whole bytes`);
    if (bits / 8 !== e.end - e.begin) bad(`has ${e.end - e.begin} bytes of data, but ${e.code} of shape [${e.shape}] takes ${bits / 8}`);
    at = e.end;
  }
  if (at !== size) fail(`${size - at} bytes of data follow the last tensor`);
  for (const p of expected ?? []) {
    const e = entries.find((x) => x.name === p.name) ?? fail(`has no tensor ${show(p.name)}`);
    if (e.dtype !== p.dtype) fail(`tensor ${show(p.name)} is ${e.code}, the model expects ${DTYPES[p.dtype]?.names?.safetensors ?? p.dtype}`);
    if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i])) fail(`tensor ${show(p.name)} has shape [${e.shape}], the model expects [${p.shape}]`);
  }
  const base = 8 + n;
  const tensors = entries.flatMap((e): NamedTensor[] => {
    if (e.dtype === undefined) return [];
    // a copy (a Node Buffer's slice is a view of a larger pool), aligned for the typed array
    const raw = Uint8Array.prototype.slice.call(bytes, base + e.begin, base + e.end);
    const data = e.dtype === 'float32' ? new Float32Array(raw.buffer) : e.dtype === 'int32' ? new Int32Array(raw.buffer) : e.dtype === 'int8' ? new Int8Array(raw.buffer) : new Uint8Array(raw.buffer);
    return [{ name: e.name, dtype: e.dtype, shape: e.shape, data }];
  });
  return { tensors, metadata: metadata as Record<string, string> };
}
