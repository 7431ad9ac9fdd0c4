// Hostile safetensors files against both readers (runtime/safetensors.ts and the wasm loader's, runtime/wasm/model.mjs):
// each is rejected with one plain Error line naming the problem and the tensor, as the reference parser
// (huggingface/safetensors) rejects them; valid files read back what was written.
import { describe, expect, it } from 'vitest';
import { type NamedTensor, type TensorSpec, readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';
// @ts-expect-error: the loader is plain JavaScript, copied into artifacts
import * as loader from '../../runtime/wasm/model.mjs';

interface LoaderTensor { name: string; dtype: string; shape: number[]; bytes: Uint8Array }
const loaderRead = loader.readSafetensors as (file: Uint8Array, where?: string) => { tensors: LoaderTensor[]; metadata: Record<string, string> };
const loaderParams = loader.paramTensors as (file: Uint8Array, params: readonly TensorSpec[], where?: string) => Map<string, Uint8Array>;

/** A file: the 8-byte length (given, or the header's), the header text and `data` bytes. */
function file(header: string | object, data: number | Uint8Array = 0, length?: bigint): Uint8Array {
  const head = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + head.length + body.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(head.length), true);
  out.set(head, 8);
  out.set(body, 8 + head.length);
  return out;
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

/** Runs a reader, returning its error (undefined when it accepted the file). */
function errorOf(read: () => unknown): Error | undefined {
  try {
    read();
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

/** Both readers reject the file with exactly this message (after their prefixes), as a plain one-line Error. */
function expectRejected(bytes: Uint8Array, message: string, expected?: TensorSpec[]): void {
  const ts = errorOf(() => readSafetensors(bytes, expected));
  const js = errorOf(() => (expected ? loaderParams(bytes, expected) : loaderRead(bytes)));
  for (const [e, prefix] of [[ts, 'safetensors: '], [js, 'kiln: weights: ']] as const) {
    expect(e, `${prefix}${message}`).toBeDefined();
    expect(e!.constructor).toBe(Error); // never a raw RangeError, TypeError or SyntaxError
    expect(e!.message).toBe(`${prefix}${message}`);
  }
}

const hostile: [string, Uint8Array, string][] = [
  ['shorter than the length field', new Uint8Array(5), 'file of 5 bytes is shorter than its 8-byte header length'],
  ['a header length of 2^64 - 1', file('{}', 0, 0xffffffffffffffffn), "header length 18446744073709551615 is over the format's limit of 100000000 bytes"],
  ['a header past the end', file('{}', 0, 100n), 'header of 100 bytes runs past the end of the file (10 bytes)'],
  ['a header that is not UTF-8', file('{x}').fill(0xff, 9, 10), 'header is not UTF-8 text'],
  ['a header that is not JSON', file('{"a": '), 'header is not JSON: Unexpected end of JSON input'],
  ['a JSON array', file('[]'), 'header is not a JSON object but []'],
  ['JSON null', file('null'), 'header is not a JSON object but null'],
  ['a key twice', file(`{"w":${JSON.stringify(f32([1], 0, 4))},"w":${JSON.stringify(f32([1], 4, 8))}}`, 8), 'header has the key "w" twice'],
  ['a field twice', file('{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', 4), 'header has the key "dtype" twice'],
  ['a metadata key twice', file('{"__metadata__":{"a":"1","a":"2"}}'), 'header has the key "a" twice'],
  ['escaped keys that are equal', file('{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"\\u0077":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}', 8), 'header has the key "w" twice'],
  ['metadata that is not a string', file({ __metadata__: { format: 1 } }), '__metadata__ must map names to strings'],
  ['an entry that is not an object', file({ w: 5 }), 'tensor "w" is 5, not { dtype, shape, data_offsets }'],
  ['an unknown dtype', file({ w: { ...f32([1], 0, 4), dtype: 'X99' } }, 4), 'tensor "w" has an unknown dtype "X99"'],
  ['a dtype that is not a string', file({ w: { ...f32([1], 0, 4), dtype: 7 } }, 4), 'tensor "w" has an unknown dtype 7'],
  ['an F16 tensor of the wrong size (checked with 16 bits)', file({ w: { ...f32([3], 0, 4), dtype: 'F16' } }, 4), 'tensor "w" has 4 bytes of data, but F16 of shape [3] takes 6'],
  ['an I64 tensor of the wrong size (checked with 64 bits)', file({ w: { ...f32([1], 0, 4), dtype: 'I64' } }, 4), 'tensor "w" has 4 bytes of data, but I64 of shape [1] takes 8'],
  ['F4 elements that do not fill whole bytes', file({ w: { ...f32([3], 0, 2), dtype: 'F4' } }, 2), 'tensor "w" of dtype F4 and shape [3] does not fill whole bytes'],
  ['F6 elements that do not fill whole bytes', file({ w: { ...f32([2], 0, 2), dtype: 'F6_E2M3' } }, 2), 'tensor "w" of dtype F6_E2M3 and shape [2] does not fill whole bytes'],
  ['a negative dimension', file({ w: f32([-1, 2], 0, 8) }, 8), 'tensor "w" has an invalid shape [-1,2]: dimensions are non-negative integers'],
  ['a fractional dimension', file({ w: f32([1.5, 2], 0, 12) }, 12), 'tensor "w" has an invalid shape [1.5,2]: dimensions are non-negative integers'],
  ['a dimension as a string', file({ w: f32(['2'] as never, 0, 8) }, 8), 'tensor "w" has an invalid shape ["2"]: dimensions are non-negative integers'],
  ['no shape', file({ w: { dtype: 'F32', data_offsets: [0, 4] } }, 4), 'tensor "w" has an invalid shape undefined: dimensions are non-negative integers'],
  ['three offsets', file({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 8), 'tensor "w" has invalid data_offsets [0,4,8]: [begin, end], non-negative integers'],
  ['a dimension written 1.0', file('{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 4), 'tensor "w" has an invalid shape: 1.0 is not written as a non-negative integer'],
  ['a dimension written 1e0', file('{"w":{"dtype":"F32","shape":[2, 1e0],"data_offsets":[0,8]}}', 8), 'tensor "w" has an invalid shape: 1e0 is not written as a non-negative integer'],
  ['a dimension written -0', file('{"w":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}'), 'tensor "w" has an invalid shape: -0 is not written as a non-negative integer'],
  ['an offset written 4.0', file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', 4), 'tensor "w" has invalid data_offsets: 4.0 is not written as a non-negative integer'],
  ['an offset written 0E5', file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0E5,4]}}', 4), 'tensor "w" has invalid data_offsets: 0E5 is not written as a non-negative integer'],
  ['an offset written -0', file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-0,4]}}', 4), 'tensor "w" has invalid data_offsets: -0 is not written as a non-negative integer'],
  ['a negative offset', file({ w: f32([1], -4, 0) }, 4), 'tensor "w" has invalid data_offsets [-4,0]: [begin, end], non-negative integers'],
  ['a fractional offset', file({ w: f32([1], 0, 4.5) }, 4), 'tensor "w" has invalid data_offsets [0,4.5]: [begin, end], non-negative integers'],
  ['offsets that end before they begin', file({ w: f32([1], 4, 0) }, 4), 'tensor "w" has data_offsets [4, 0] that end before they begin'],
  ['offsets past the data', file({ w: f32([4], 0, 16) }, 8), 'tensor "w" has data_offsets [0, 16] past the end of the data (8 bytes)'],
  ['offsets past 2^53', file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}}', 4), 'tensor "w" has invalid data_offsets [0,18446744073709552000]: [begin, end], non-negative integers'],
  ['a gap before the first tensor', file({ w: f32([1], 4, 8) }, 8), 'tensor "w" has data_offsets [4, 8] but the data begins at 0: tensors cover the data in order, without gaps or overlaps'],
  ['a gap between tensors', file({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, 12), 'tensor "b" has data_offsets [8, 12] but the tensor before it ends at 4: tensors cover the data in order, without gaps or overlaps'],
  ['overlapping tensors', file({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12), 'tensor "b" has data_offsets [4, 12] but the tensor before it ends at 8: tensors cover the data in order, without gaps or overlaps'],
  ['two tensors on the same bytes', file({ a: f32([1], 0, 4), b: f32([1], 0, 4) }, 4), 'tensor "b" has data_offsets [0, 4] but the tensor before it ends at 4: tensors cover the data in order, without gaps or overlaps'],
  ['trailing bytes', file({ w: f32([1], 0, 4) }, 8), '4 bytes of data follow the last tensor'],
  ['data and no tensors', file({}, 4), '4 bytes of data follow the last tensor'],
  ['a size that does not match the shape', file({ w: f32([3], 0, 8) }, 8), 'tensor "w" has 8 bytes of data, but F32 of shape [3] takes 12'],
  ['a shape whose size overflows', file({ w: f32([2 ** 40, 2 ** 40, 2 ** 40], 0, 4) }, 4), 'tensor "w" has 4 bytes of data, but F32 of shape [1099511627776,1099511627776,1099511627776] takes 5.316911983139664e+36'],
  ['a BOOL of the wrong size', file({ m: { dtype: 'BOOL', shape: [3], data_offsets: [0, 12] } }, 12), 'tensor "m" has 12 bytes of data, but BOOL of shape [3] takes 3'],
  ['a name with a newline', file({ 'a\nb': f32([2], 0, 4) }, 4), 'tensor "a\\nb" has 4 bytes of data, but F32 of shape [2] takes 8'],
];

describe('hostile safetensors files are rejected by both readers, in one line naming the tensor', () => {
  it.each(hostile)('%s', (_, bytes, message) => expectRejected(bytes, message));

  const good = file({ __metadata__: { format: 'kiln' }, w: f32([2, 1], 0, 8), b: { dtype: 'I32', shape: [], data_offsets: [8, 12] } }, new Uint8Array(new Float32Array([1.5, -2, 3]).buffer));
  it.each([
    ['a missing tensor', [{ name: 'k', dtype: 'float32', shape: [2, 1] }], 'has no tensor "k"'],
    ['a dtype that differs from the manifest', [{ name: 'b', dtype: 'float32', shape: [] }], 'tensor "b" is I32, the model expects F32'],
    ['a shape that differs from the manifest (same size)', [{ name: 'w', dtype: 'float32', shape: [1, 2] }], 'tensor "w" has shape [2,1], the model expects [1,2]'],
  ] as [string, TensorSpec[], string][])('%s', (_, expected, message) => expectRejected(good, message, expected));

  it('a param in a dtype kiln does not read (F16) is refused by name', () => {
    const bytes = file({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4);
    expectRejected(bytes, 'tensor "w" is F16, the model expects F32', [{ name: 'w', dtype: 'float32', shape: [2] }]);
  });
});

describe('valid files', () => {
  it('read back what was written, in order, with metadata, by both readers; the manifest check passes', () => {
    const tensors: NamedTensor[] = [
      { name: 'dense/kernel', dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, -2.5, 3, NaN, Infinity, -0) },
      { name: 'empty', dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
      { name: 'adam/iteration', dtype: 'int32', shape: [], data: Int32Array.of(-7) },
      { name: 'mask', dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) },
    ];
    const bytes = writeSafetensors(tensors, { format: 'kiln' });
    const back = readSafetensors(bytes, tensors);
    expect(back.metadata).toEqual({ format: 'kiln' });
    expect(back.tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(t.data)])).toEqual(tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(t.data)]));
    const js = loaderRead(bytes);
    expect(js.metadata).toEqual({ format: 'kiln' });
    expect(js.tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(t.bytes)])).toEqual(tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(new Uint8Array(t.data.buffer))]));
    expect([...loaderParams(bytes, tensors).keys()]).toEqual(tensors.map((t) => t.name));
  });

  it('as the reference parser (and the C runtime): the empty file, metadata only, tensors listed out of file order, an absent or null __metadata__, fields other than dtype, shape and data_offsets', () => {
    for (const bytes of [file('{}'), file('{}  '), file({ __metadata__: { a: 'b' } }), file({ __metadata__: null }),
      file({ w: { ...f32([1], 0, 4), extra: { any: [1, null] } } }, 4),
      file({ b: f32([1], 4, 8), a: f32([1], 0, 4) }, new Uint8Array(new Float32Array([1, 2]).buffer))]) {
      expect(() => readSafetensors(bytes)).not.toThrow();
      expect(() => loaderRead(bytes)).not.toThrow();
    }
    const out = readSafetensors(file({ b: f32([1], 4, 8), a: f32([1], 0, 4) }, new Uint8Array(new Float32Array([1, 2]).buffer)));
    expect(out.tensors.map((t) => [t.name, t.data[0]])).toEqual([['a', 1], ['b', 2]]); // file order
  });

  it('tensors of every other dtype of the format (an F16 copy, an I64 counter, F4 ...) are checked with their bits and ignored', () => {
    // bytes of 3 elements ([3]) or, for the sub-byte dtypes, of 4 ([4]); w (F32), the param, after them all
    const others: [string, number[], number][] = [['U8', [3], 3], ['F8_E5M2', [3], 3], ['F8_E4M3', [3], 3], ['F8_E8M0', [3], 3],
      ['I16', [3], 6], ['U16', [3], 6], ['F16', [3], 6], ['BF16', [3], 6], ['U32', [3], 12], ['F64', [3], 24], ['I64', [3], 24], ['U64', [3], 24],
      ['C64', [3], 24], ['F4', [4], 2], ['F6_E2M3', [4], 3], ['F6_E3M2', [4], 3]];
    const header: Record<string, unknown> = {};
    let at = 0;
    for (const [code, shape, bytes] of others) {
      header[`x_${code}`] = { dtype: code, shape, data_offsets: [at, at + bytes] };
      at += bytes;
    }
    header['w'] = f32([2], at, at + 8);
    const data = new Uint8Array(at + 8);
    data.set(new Uint8Array(Float32Array.of(1.5, -2).buffer), at);
    const bytes = file(header, data);
    const w: TensorSpec[] = [{ name: 'w', dtype: 'float32', shape: [2] }];
    expect(readSafetensors(bytes, w).tensors.map((t) => [t.name, t.dtype, Array.from(t.data)])).toEqual([['w', 'float32', [1.5, -2]]]);
    expect(loaderRead(bytes).tensors.map((t) => t.name)).toEqual(['w']);
    expect(Array.from(new Float32Array(loaderParams(bytes, w).get('w')!.slice().buffer))).toEqual([1.5, -2]);
  });

  it('I8 tensors (int8 quantized weights) are read as int8', () => {
    const bytes = file({ q: { dtype: 'I8', shape: [3], data_offsets: [0, 3] } }, Uint8Array.of(0x80, 0xff, 0x7f));
    expect(readSafetensors(bytes, [{ name: 'q', dtype: 'int8', shape: [3] }]).tensors.map((t) => [t.dtype, Array.from(t.data)])).toEqual([['int8', [-128, -1, 127]]]);
    expect(loaderRead(bytes).tensors.map((t) => t.name)).toEqual(['q']);
  });

  it('integers written plainly, also inside fields the readers ignore (1.0 there is not an error)', () => {
    const bytes = file('{"w":{"dtype":"F32","shape":[ 2 ,1 ],"data_offsets":[0, 8],"extra":{"shape":[1.0],"data_offsets":[-0,1e0]}},"__metadata__":{"n":"1.0"}}', 8);
    expect(readSafetensors(bytes).tensors.map((t) => t.shape)).toEqual([[2, 1]]);
    expect(loaderRead(bytes).tensors.map((t) => t.shape)).toEqual([[2, 1]]);
  });

  it('damaged copies of a valid file: both readers agree, and every rejection is a one-line Error', () => {
    const base = writeSafetensors([
      { name: 'k', dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) },
      { name: 'i', dtype: 'int32', shape: [1], data: Int32Array.of(5) },
    ], { format: 'kiln' });
    let s = 12345;
    const rand = (n: number) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s % n; };
    let rejected = 0;
    for (let trial = 0; trial < 400; trial++) {
      const bytes = base.slice(0, trial % 5 === 0 ? rand(base.length) : base.length);
      for (let flips = 1 + rand(3); flips > 0 && bytes.length; flips--) bytes[rand(bytes.length)] = rand(256);
      const ts = errorOf(() => readSafetensors(bytes)), js = errorOf(() => loaderRead(bytes));
      expect(ts === undefined, `trial ${trial}: ${ts?.message} / ${js?.message}`).toBe(js === undefined);
      if (ts && js) {
        rejected++;
        expect([ts.constructor, js.constructor]).toEqual([Error, Error]);
        expect(js.message).toBe(ts.message.replace(/^safetensors: /, 'kiln: weights: '));
        expect(ts.message).not.toContain('\n');
      }
    }
    expect(rejected).toBeGreaterThan(100);
  });
});
