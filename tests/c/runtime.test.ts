// The C runtime (runtime/c) with a hand-written fake model: .npy I/O, safetensors load/save, the thread pool, model_main,
// model_train; every program built with ASan and UBSan, hostile files included, and any sanitizer report fails.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NamedTensor, type TensorSpec, readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';

const root = path.resolve(import.meta.dirname, '../..');
const rt = path.join(root, 'runtime/c');
const tc = path.join(root, 'tests/c');
const CFLAGS = ['-O2', '-g', '-std=c99', '-Wall', '-Wextra', '-Werror', '-pthread', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'];
/** The temp folder, or /tmp where some folder above it is closed to others: some tests run programs as nobody. */
function reachableTmp(): string {
  for (let d = os.tmpdir(); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return '/tmp';
    if (path.dirname(d) === d) return os.tmpdir();
  }
}
const tmp = mkdtempSync(path.join(reachableTmp(), 'kiln-c-'));
const bin = path.join(tmp, 'bin');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Result { code: number | null; signal: string | null; out: string; err: string }

/** Runs a program; a sanitizer report (ASan, LSan, UBSan) anywhere in its stderr fails the test. */
function sh(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Result {
  // model_main and model_train keep their buffers until they exit, which LeakSanitizer would report; the library
  // calls themselves are leak-checked through npy_tool and init_tool
  const lsan = /model_(main|train)$/.test(cmd) ? { ASAN_OPTIONS: 'detect_leaks=0' } : {};
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? tmp, env: { ...process.env, ...lsan, ...opts.env } });
  if (/Sanitizer|runtime error:/.test(r.stderr)) throw new Error(`${path.basename(cmd)} ${args.join(' ')}: sanitizer report\n${r.stderr}`);
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function gcc(args: string[]): void {
  const link = args.includes('-c') ? [] : ['-lm'];
  const r = spawnSync('gcc', [...CFLAGS, '-I', tc, '-I', rt, ...args, ...link], { encoding: 'utf8', cwd: tmp });
  if (r.status !== 0) throw new Error(`gcc ${args.join(' ')}\n${r.stderr}`);
}

/** A program's clear failure: exit 1, no signal, one line on stderr matching `re`. */
function expectFailure(r: Result, re: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).toBe(1);
  expect(r.err.trim().split('\n')).toHaveLength(1);
  expect(r.err).toMatch(re);
}

// ---- .npy bytes, written by hand as NumPy writes them (format 1.0, header padded to 64 bytes)

function npyHeader(descr: string, shape: readonly number[], fortran = false): string {
  let h = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  if (shape.length > 0) h += ' '.repeat(21 - String(shape[0]).length);
  return h + ' '.repeat(64 - ((10 + h.length + 1) % 64)) + '\n';
}

function npy(descr: string, shape: readonly number[], data: ArrayBufferView, fortran = false, version = 1): Uint8Array {
  const h = new TextEncoder().encode(npyHeader(descr, shape, fortran));
  const pre = version === 1 ? [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8] : [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0, h.length & 0xff, h.length >> 8, 0, 0];
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(pre.length + h.length + body.length);
  out.set(pre, 0);
  out.set(h, pre.length);
  out.set(body, pre.length + h.length);
  return out;
}

/** A .npy file with the given header text (to build broken files). */
function rawNpy(header: string): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(10 + h.length + 64);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8], 0);
  out.set(h, 10);
  return out;
}

/** A small .npy parser: '<f4', '<i4', '|b1', C order. */
function parseNpy(bytes: Uint8Array): { descr: string; shape: number[]; data: Float32Array | Int32Array | Uint8Array } {
  expect(Array.from(bytes.subarray(0, 6))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
  expect(bytes[6]).toBe(1);
  const n = bytes[8]! | (bytes[9]! << 8);
  const h = new TextDecoder().decode(bytes.subarray(10, 10 + n));
  expect((10 + n) % 64).toBe(0);
  expect(h.endsWith('\n')).toBe(true);
  const descr = /'descr': '([^']+)'/.exec(h)![1]!;
  expect(h).toContain("'fortran_order': False");
  const shape = /'shape': \(([^)]*)\)/.exec(h)![1]!.split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const raw = bytes.slice(10 + n);
  const data = descr === '<f4' ? new Float32Array(raw.buffer) : descr === '<i4' ? new Int32Array(raw.buffer) : new Uint8Array(raw.buffer);
  expect(data.length).toBe(shape.reduce((a, b) => a * b, 1));
  return { descr, shape, data };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-6);
}

// ---- the fake model (tests/c/fake_model.c): predict y = 2x + w, pos = #(x > 0) + flags; trainStep learns w

const W = Float32Array.of(0.5, -0.5, 0.25);
const weights = (w: Float32Array = W): NamedTensor[] => [
  { name: 'fake/w', dtype: 'float32', shape: [3], data: w },
  { name: 'fake/flags', dtype: 'bool', shape: [2], data: Uint8Array.of(1, 0) },
  { name: 'optimizer/iterations', dtype: 'int32', shape: [], data: Int32Array.of(0) },
  { name: 'fake/last_rng', dtype: 'int32', shape: [], data: Int32Array.of(0) },
];
const X = Float32Array.of(1, -2, 3, 0.5, 0, -1);
const expectedY = (w: Float32Array): number[] => Array.from(X, (v, i) => 2 * v + w[i % 3]!);

/** Safetensors bytes with a header written by hand (to build broken files), its bytes optionally edited. */
function rawSafetensors(header: string, data: Uint8Array, declaredLength?: number, edit = (h: Uint8Array): Uint8Array => h): Uint8Array {
  const h = edit(new TextEncoder().encode(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

beforeAll(() => {
  mkdirSync(path.join(bin, 'embedded'), { recursive: true });
  gcc(['-c', path.join(tc, 'fake_model.c'), '-o', path.join(bin, 'model.o')]);
  gcc(['-c', '-DFAKE_EMBED', path.join(tc, 'fake_model.c'), '-o', path.join(bin, 'model_embedded.o')]);
  const runtime = path.join(bin, 'kiln_runtime.o');
  gcc(['-c', path.join(rt, 'kiln_runtime.c'), '-o', runtime]);
  const rows = path.join(bin, 'kiln_rows.o');
  gcc(['-c', path.join(rt, 'kiln_rows.c'), '-o', rows]);
  gcc([path.join(rt, 'model_main.c'), runtime, rows, path.join(bin, 'model.o'), '-o', path.join(bin, 'model_main')]);
  gcc([path.join(rt, 'model_train.c'), runtime, rows, path.join(bin, 'model.o'), '-o', path.join(bin, 'model_train')]);
  gcc([path.join(rt, 'model_main.c'), runtime, rows, path.join(bin, 'model_embedded.o'), '-o', path.join(bin, 'embedded', 'model_main')]);
  gcc([path.join(tc, 'npy_tool.c'), runtime, '-o', path.join(bin, 'npy_tool')]);
  gcc([path.join(tc, 'pool_test.c'), runtime, '-o', path.join(bin, 'pool_test')]);
  gcc([path.join(tc, 'init_tool.c'), path.join(bin, 'model.o'), runtime, '-o', path.join(bin, 'init_tool')]);
  gcc([path.join(tc, 'cpus_test.c'), '-o', path.join(bin, 'cpus_test')]);
  writeFileSync(path.join(bin, 'weights.safetensors'), writeSafetensors(weights(), { format: 'kiln' }));
  writeFileSync(path.join(tmp, 'x.npy'), npy('<f4', [2, 3], X));
});

describe('C runtime: .npy', () => {
  const roundTrip = (file: string, bytes: Uint8Array): Result => {
    writeFileSync(path.join(tmp, file), bytes);
    return sh(path.join(bin, 'npy_tool'), [file, `back-${file}`]);
  };

  it('reads and writes NumPy-format files byte for byte', () => {
    const f4 = npy('<f4', [2, 3], X);
    // the exact header NumPy 2 writes for a (2, 3) float32 array
    expect(Array.from(f4.subarray(0, 10))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]);
    expect(new TextDecoder().decode(f4.subarray(10, 128))).toBe(`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }${' '.repeat(58)}\n`);
    const cases: [string, Uint8Array, string][] = [
      ['f4.npy', f4, 'float32 [2, 3] 1 -2 3 0.5 0 -1'],
      ['i4.npy', npy('<i4', [5], Int32Array.of(1, -2, 3, 2147483647, -2147483648)), 'int32 [5] 1 -2 3 2147483647 -2147483648'],
      ['b1.npy', npy('|b1', [2, 2], Uint8Array.of(1, 0, 0, 1)), 'bool [2, 2] 1 0 0 1'],
      ['scalar.npy', npy('<f4', [], Float32Array.of(1.5)), 'float32 [] 1.5'],
      ['empty.npy', npy('<i4', [0, 3], new Int32Array(0)), 'int32 [0, 3]'],
      ['rank3.npy', npy('<f4', [1, 2, 1], Float32Array.of(7, 8)), 'float32 [1, 2, 1] 7 8'],
    ];
    for (const [file, bytes, printed] of cases) {
      const r = roundTrip(file, bytes);
      expect(r.err).toBe('');
      expect(r.out.trim()).toBe(printed);
      expect(readFileSync(path.join(tmp, `back-${file}`))).toEqual(Buffer.from(bytes));
    }
  });

  it('converts <f8 and <i8, reads format 2.0 and 1-D Fortran order', () => {
    const cases: [string, Uint8Array, Uint8Array][] = [
      ['f8.npy', npy('<f8', [2, 3], Float64Array.from(X)), npy('<f4', [2, 3], X)],
      ['i8.npy', npy('<i8', [3], BigInt64Array.of(-5n, 0n, 2147483647n)), npy('<i4', [3], Int32Array.of(-5, 0, 2147483647))],
      ['v2.npy', npy('<f4', [2, 3], X, false, 2), npy('<f4', [2, 3], X)],
      ['f1d.npy', npy('<f4', [3], Float32Array.of(1, 2, 3), true), npy('<f4', [3], Float32Array.of(1, 2, 3))],
    ];
    for (const [file, bytes, want] of cases) {
      const r = roundTrip(file, bytes);
      expect(r.code).toBe(0);
      expect(readFileSync(path.join(tmp, `back-${file}`))).toEqual(Buffer.from(want));
      expect(parseNpy(new Uint8Array(readFileSync(path.join(tmp, `back-${file}`)))).descr).toBe(parseNpy(want).descr);
    }
  });

  it('rejects hostile .npy files (header, dtype, shape, data size, Fortran order) with one line, exit 1', () => {
    const good = npy('<f4', [2, 3], X);
    const version = (major: number, minor: number): Uint8Array => { const b = good.slice(); b[6] = major; b[7] = minor; return b; };
    const longHeader = good.slice();
    longHeader[8] = 0xff;
    longHeader[9] = 0xff;
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty.npy', new Uint8Array(0), /empty\.npy: not a \.npy file/],
      ['v1.1.npy', version(1, 1), /v1\.1\.npy: unsupported \.npy version 1\.1/],
      ['v4.npy', version(4, 0), /v4\.npy: unsupported \.npy version 4\.0/],
      ['long-header.npy', longHeader, /long-header\.npy: truncated \.npy header/],
      ['twice.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'descr': '<i4', 'shape': (1,), }\n"), /twice\.npy: key 'descr' appears twice in the \.npy header/],
      ['after.npy', rawNpy(`${header} x\n`), /after\.npy: unexpected text after the \.npy header dict/],
      ['unknown-key.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n"), /unknown-key\.npy: unexpected key 'x' in \.npy header/],
      ['negative.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n"), /negative\.npy: malformed shape in \.npy header/],
      ['fraction.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }\n"), /fraction\.npy: malformed shape in \.npy header/],
      ['huge-dim.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n"), /huge-dim\.npy: dimension too large in \.npy header/],
      ['huge.npy', rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"), /huge\.npy: array too large/],
      ['fortran-int.npy', rawNpy("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }\n"), /fortran-int\.npy: malformed fortran_order in \.npy header/],
      ['not-dict.npy', rawNpy('[1, 2]\n'), /not-dict\.npy: \.npy header is not a dict/],
      ['extra-data.npy', npy('<f4', [2, 3], Float32Array.of(...X, 7)), /extra-data\.npy: data is followed by extra bytes: shape \[2, 3\] of <f4 needs 24 bytes, the file has 28/],
      ['fortran.npy', npy('<f4', [2, 3], X, true), /fortran\.npy: Fortran-order arrays are not supported/],
      ['big.npy', npy('>f4', [2, 3], X), /big\.npy: unsupported dtype '>f4'/],
      ['u8.npy', npy('|u1', [2], Uint8Array.of(1, 2)), /unsupported dtype '\|u1'/],
      ['short.npy', good.subarray(0, good.length - 1), /short\.npy: data is truncated: shape \[2, 3\] of <f4 needs 24 bytes, the file has 23/],
      ['head.npy', good.subarray(0, 40), /head\.npy: truncated \.npy header/],
      ['magic.npy', new TextEncoder().encode('hello world, not numpy'), /magic\.npy: not a \.npy file/],
      ['wide.npy', npy('<i8', [1], BigInt64Array.of(1n << 40n)), /does not fit int32/],
      ['structured.npy', rawNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n"), /structured\.npy: \.npy descr is not a simple dtype string/],
      ['nokey.npy', rawNpy("{'descr': '<f4', 'shape': (1,), }\n"), /nokey\.npy: \.npy header lacks descr, fortran_order or shape/],
      ['rank33.npy', rawNpy(`{'descr': '<f4', 'fortran_order': False, 'shape': (${Array(33).fill(1).join(', ')}), }\n`), /more than 32 dimensions/],
    ];
    for (const [file, bytes, re] of cases) {
      const r = roundTrip(file, bytes);
      expect(r.code, file).toBe(1);
      expect(r.signal, file).toBeNull();
      expect(r.err, file).toMatch(re);
      expect(r.err.trim().split('\n'), file).toHaveLength(1);
    }
    mkdirSync(path.join(tmp, 'dir.npy'), { recursive: true });
    expectFailure(sh(path.join(bin, 'npy_tool'), ['dir.npy', 'back.npy']), /dir\.npy: cannot read: it is a directory/);
  });
});

describe('C runtime: model_main', () => {
  it('writes one .npy per output, named after the output, equal to the model', () => {
    const elsewhere = mkdtempSync(path.join(tmp, 'cwd-'));
    writeFileSync(path.join(elsewhere, 'x.npy'), npy('<f4', [2, 3], X));
    // weights.safetensors is found next to the executable, not in the working directory
    const r = sh(path.join(bin, 'model_main'), ['x.npy', '--out', 'out'], { cwd: elsewhere });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const y = parseNpy(new Uint8Array(readFileSync(path.join(elsewhere, 'out', 'out_y.npy'))));
    expect(y.descr).toBe('<f4');
    expect(y.shape).toEqual([2, 3]);
    close(y.data, expectedY(W));
    const pos = parseNpy(new Uint8Array(readFileSync(path.join(elsewhere, 'out', 'pos.npy'))));
    expect(pos.descr).toBe('<i4');
    expect(Array.from(pos.data)).toEqual([3, 1]);

    // --weights, and float64 inputs converted to float32
    const w2 = Float32Array.of(10, 20, 30);
    writeFileSync(path.join(elsewhere, 'w2.safetensors'), writeSafetensors(weights(w2)));
    writeFileSync(path.join(elsewhere, 'x64.npy'), npy('<f8', [2, 3], Float64Array.from(X)));
    expect(sh(path.join(bin, 'model_main'), ['--weights', 'w2.safetensors', '--out', 'out2', 'x64.npy'], { cwd: elsewhere }).code).toBe(0);
    close(parseNpy(new Uint8Array(readFileSync(path.join(elsewhere, 'out2', 'out_y.npy')))).data, expectedY(w2));
  });

  it('runs with embedded weights and no weights file', () => {
    const out = path.join(tmp, 'out-embedded');
    const r = sh(path.join(bin, 'embedded', 'model_main'), ['--out', out, 'x.npy']);
    expect(r.err).toBe('');
    close(parseNpy(new Uint8Array(readFileSync(path.join(out, 'out_y.npy')))).data, expectedY(W));
  });

  it('--bench N prints the median microseconds per call', () => {
    const r = sh(path.join(bin, 'model_main'), ['--bench', '200', 'x.npy', '--out', path.join(tmp, 'out-bench')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^median \d+\.\d+ us\n$/);
  });

  it('fails with one clear line on bad inputs', () => {
    const write = (f: string, b: Uint8Array): string => {
      writeFileSync(path.join(tmp, f), b);
      return f;
    };
    const main = (...args: string[]): Result => sh(path.join(bin, 'model_main'), args);
    expectFailure(main(write('xi.npy', npy('<i4', [2, 3], Int32Array.from(X)))), /xi\.npy: dtype int32, but input 'x' is float32/);
    expectFailure(main(write('xb.npy', npy('<f4', [5, 3], new Float32Array(15)))), /xb\.npy: batch dimension is 5, but 'predict' takes exactly 2 rows: a fake model \(input 'x' has shape \[2, 3\]\)/);
    expectFailure(main(write('xs.npy', npy('<f4', [2, 4], new Float32Array(8)))), /xs\.npy: shape \[2, 4\], but input 'x' has shape \[2, 3\]/);
    expectFailure(main(write('xf.npy', npy('<f4', [2, 3], X, true))), /Fortran-order/);
    expectFailure(main('x.npy', 'x.npy'), /predict takes 1 input \.npy file\(s\) in this order: x; got 2/);
    expectFailure(main(), /predict takes 1 input/);
    expectFailure(main('missing.npy'), /missing\.npy: cannot open/);
    expectFailure(main('--frobnicate', 'x.npy'), /unknown or incomplete option --frobnicate/);
    expectFailure(main('--bench', 'many', 'x.npy'), /--bench needs an integer from 1 to 1000000000/);
    // past LONG_MAX (strtol saturates), and past the count whose timings' size wraps to a small malloc
    expectFailure(main('--bench', '99999999999999999999', 'x.npy'), /--bench needs an integer from 1 to 1000000000/);
    expectFailure(main('--bench', '2305843009213693953', 'x.npy'), /--bench needs an integer from 1 to 1000000000/);
    expectFailure(main('--weights', 'nowhere.safetensors', 'x.npy'), /nowhere\.safetensors: cannot open weights/);
  });
});

describe('C runtime: safetensors', () => {
  const good = (): Uint8Array => writeSafetensors(weights(), { format: 'kiln' });
  const data = (extra = 0): Uint8Array => { const g = good(); const d = new Uint8Array(22 + extra); d.set(g.subarray(g.length - 22)); return d; };
  /** The fake weights' header with fake/w's entry replaced, the others at offset `shift` + their usual place. */
  const header = (w: string, shift = 0, more = ''): string =>
    `{"fake/w":${w},"fake/flags":{"dtype":"BOOL","shape":[2],"data_offsets":[${12 + shift},${14 + shift}]},"optimizer/iterations":{"dtype":"I32","shape":[],"data_offsets":[${14 + shift},${18 + shift}]},"fake/last_rng":{"dtype":"I32","shape":[],"data_offsets":[${18 + shift},${22 + shift}]}${more}}`;
  const W12 = '{"dtype":"F32","shape":[3],"data_offsets":[0,12]}';
  const specs: TensorSpec[] = weights().map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  const withW = (w: NamedTensor): Uint8Array => writeSafetensors([w, ...weights().slice(1)]);
  const run = (name: string, bytes: Uint8Array): Result => {
    writeFileSync(path.join(tmp, `${name}.st`), bytes);
    return sh(path.join(bin, 'model_main'), ['--weights', `${name}.st`, 'x.npy', '--out', path.join(tmp, 'out-st')]);
  };

  it('rejects hostile weight files, each with one line naming the file and the tensor, exit 1, no crash', () => {
    const g = good();
    const lying = (n: bigint): Uint8Array => { const b = g.slice(); new DataView(b.buffer).setBigUint64(0, n, true); return b; };
    const deep = `{"dtype":"F32","x":${'['.repeat(100)}${']'.repeat(100)},"shape":[3],"data_offsets":[0,12]}`;
    const cases: [string, Uint8Array, RegExp][] = [
      // the 8-byte length and the header's bytes
      ['empty', new Uint8Array(0), /empty\.st: file is shorter than its 8-byte header length \(0 bytes\)/],
      ['truncated', g.subarray(0, 5), /truncated\.st: file is shorter than its 8-byte header length/],
      ['header-past-end', lying(BigInt(g.length)), /header-past-end\.st: header of \d+ bytes runs past the end of the file/],
      ['huge-length', lying(0xffffffffffffffffn), /huge-length\.st: header of 18446744073709551615 bytes runs past the end of the file/],
      ['not-utf8', rawSafetensors(header(W12).replace('fake/w', 'fake/\u00ff'), data(), undefined, (h) => h.map((b, i) => (b === 0xc3 && h[i + 1] === 0xbf ? 0xff : b))), /not-utf8\.st: header is not valid UTF-8 \(byte 7\)/],
      ['bad-json', rawSafetensors('{"fake/w": {"dtype": "F32", "shape": [3', new Uint8Array(0)), /bad-json\.st: tensor 'fake\/w': malformed header JSON at byte 39: expected '\]'/],
      ['not-object', rawSafetensors('[1, 2, 3]', new Uint8Array(0)), /not-object\.st: malformed header JSON at byte 0: expected '\{'/],
      ['trailing-text', rawSafetensors(`${header(W12)} x`, data()), /trailing-text\.st: malformed header JSON at byte \d+: unexpected text after the header object/],
      // __metadata__: one object of strings
      ['metadata-number', rawSafetensors(header(W12, 0, ',"__metadata__":{"format":1}'), data()), /metadata-number\.st: malformed header JSON at byte \d+: __metadata__ values must be strings/],
      ['metadata-array', rawSafetensors(header(W12, 0, ',"__metadata__":["a"]'), data()), /__metadata__ must be an object of strings/],
      ['metadata-twice', rawSafetensors(header(W12, 0, ',"__metadata__":{},"__metadata__":{}'), data()), /duplicate key "__metadata__"/],
      // one tensor entry
      ['negative', rawSafetensors(header('{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}'), data()), /negative\.st: tensor 'fake\/w': malformed header JSON at byte \d+: expected a non-negative integer/],
      ['fraction', rawSafetensors(header('{"dtype":"F32","shape":[3.5],"data_offsets":[0,12]}'), data()), /fraction\.st: tensor 'fake\/w': malformed header JSON at byte \d+: expected an integer/],
      ['float-integer', rawSafetensors(header('{"dtype":"F32","shape":[3.0],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*expected an integer/],
      ['exponent', rawSafetensors(header('{"dtype":"F32","shape":[3e0],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*expected an integer/],
      ['minus-zero', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[-0,12]}'), data()), /tensor 'fake\/w': .*expected a non-negative integer/],
      ['float-offset', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[0,12.0]}'), data()), /tensor 'fake\/w': .*expected an integer/],
      ['leading-zero', rawSafetensors(header('{"dtype":"F32","shape":[03],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*integer with a leading zero/],
      ['string-dim', rawSafetensors(header('{"dtype":"F32","shape":["3"],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*expected a non-negative integer/],
      ['huge-dim', rawSafetensors(header('{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*integer too large/],
      ['rank33', rawSafetensors(header(`{"dtype":"F32","shape":[${Array(32).fill(1).join(',')},3],"data_offsets":[0,12]}`), data()), /tensor 'fake\/w': .*shape has too many dimensions/],
      ['dtype-number', rawSafetensors(header('{"dtype":32,"shape":[3],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*dtype must be a string/],
      ['dtype-twice', rawSafetensors(header('{"dtype":"F32","dtype":"F32","shape":[3],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*duplicate key "dtype"/],
      ['no-dtype', rawSafetensors(header('{"shape":[3],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w': .*tensor entry needs dtype, shape and data_offsets/],
      ['three-offsets', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[0,12,12]}'), data()), /tensor 'fake\/w': .*too many values in an array/],
      ['one-offset', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[12]}'), data()), /tensor 'fake\/w': .*data_offsets must have two values/],
      ['deep', rawSafetensors(header(deep), data()), /tensor 'fake\/w': .*nested too deeply/],
      // each tensor's dtype, size and offsets
      ['unknown-dtype', rawSafetensors(header('{"dtype":"F17","shape":[3],"data_offsets":[0,12]}'), data()), /unknown-dtype\.st: tensor 'fake\/w' has unknown dtype 'F17'/],
      ['lowercase-dtype', rawSafetensors(header('{"dtype":"f32","shape":[3],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w' has unknown dtype 'f32'/],
      ['offsets-out-of-range', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[0,4096]}'), data()), /offsets-out-of-range\.st: tensor 'fake\/w' has data offsets \[0, 4096\] outside the data section of 22 bytes/],
      ['offsets-reversed', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[12,0]}'), data()), /tensor 'fake\/w' has data offsets \[12, 0\] outside the data section/],
      ['offsets-wrong-size', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), data()), /tensor 'fake\/w' has data offsets \[0, 8\] \(8 bytes\), but shape \[3\] of F32 needs 12 bytes/],
      ['too-many-elements', rawSafetensors(header('{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,12]}'), data()), /tensor 'fake\/w' has shape \[4294967296, 4294967296\]: too many elements/],
      ['half-byte', rawSafetensors(header(W12, 0, ',"nibbles":{"dtype":"F4","shape":[3],"data_offsets":[22,22]}'), data()), /tensor 'nibbles' of shape \[3\] and dtype F4 does not fill whole bytes/],
      ['cut-data', g.subarray(0, g.length - 3), /tensor 'fake\/last_rng' has data offsets \[18, 22\] outside the data section of 19 bytes/],
      // the data section as a whole: contiguous from 0, no overlaps, gaps or trailing bytes, unique names
      ['gap', rawSafetensors(header(W12, 1), data(1)), /gap\.st: tensor 'fake\/flags' has data offsets \[13, 15\], but the tensors before it end at byte 12 \(offsets must be contiguous from 0/],
      ['not-from-0', rawSafetensors(header('{"dtype":"F32","shape":[3],"data_offsets":[1,13]}', 1), data(1)), /not-from-0\.st: tensor 'fake\/w' has data offsets \[1, 13\], but the tensors before it end at byte 0/],
      ['overlap', rawSafetensors(header(W12, 0, ',"extra":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}'), data()), /overlap\.st: tensor 'extra' has data offsets \[8, 12\], but the tensors before it end at byte 12/],
      ['trailing-bytes', rawSafetensors(header(W12), data(5)), /trailing-bytes\.st: the data section has 27 bytes, but the tensors cover only 22/],
      ['duplicate', rawSafetensors(header(W12).replace('{"fake/w"', '{"fake/last_rng":{"dtype":"I32","shape":[],"data_offsets":[18,22]},"fake/w"'), data()), /duplicate\.st: tensor 'fake\/last_rng' appears twice in the header/],
      ['control-name', rawSafetensors(header(W12, 0, ',"a\\nb":{"dtype":"Q8","shape":[],"data_offsets":[22,22]}'), data()), /control-name\.st: tensor 'a\\x0ab' has unknown dtype 'Q8'/],
      // against the model's params
      ['missing', writeSafetensors(weights().slice(0, 3)), /missing\.st: no tensor 'fake\/last_rng'/],
      ['wrong-shape', withW({ name: 'fake/w', dtype: 'float32', shape: [4], data: new Float32Array(4) }), /wrong-shape\.st: tensor 'fake\/w' has shape \[4\], expected \[3\]/],
      ['wrong-rank', withW({ name: 'fake/w', dtype: 'float32', shape: [1, 3], data: new Float32Array(3) }), /tensor 'fake\/w' has shape \[1, 3\], expected \[3\]/],
      ['wrong-dtype', withW({ name: 'fake/w', dtype: 'int32', shape: [3], data: new Int32Array(3) }), /wrong-dtype\.st: tensor 'fake\/w' has dtype I32, expected F32/],
      ['f16', rawSafetensors(header('{"dtype":"F16","shape":[3],"data_offsets":[0,6]}', -6), data().subarray(6)), /f16\.st: tensor 'fake\/w' has dtype F16, expected F32/],
    ];
    for (const [name, bytes, re] of cases) {
      const r = run(name, bytes);
      expect(r.code, name).toBe(1);
      expect(r.signal, name).toBeNull();
      expect(r.err, name).toMatch(re);
      expect(r.err.trim().split('\n'), name).toHaveLength(1);
      // the TS reader refuses them too (and the wasm loader: tests/wasm/safetensors.test.ts pins it to the TS reader),
      // but for nesting past 64 levels, a limit of the C parser alone
      if (name !== 'deep') expect(() => readSafetensors(bytes, specs), name).toThrow();
    }
  });

  it('rejects a header over 100 MB and a directory as weights', () => {
    const big = path.join(tmp, 'big-header.st');
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, 150_000_000n, true);
    writeFileSync(big, len);
    truncateSync(big, 150_000_100); // sparse: no 150 MB written
    expectFailure(sh(path.join(bin, 'model_main'), ['--weights', big, 'x.npy', '--out', path.join(tmp, 'out-st')]), /big-header\.st: header of 150000000 bytes is larger than 100 MB/);
    rmSync(big);
    const dir = mkdtempSync(path.join(tmp, 'dir-'));
    expectFailure(sh(path.join(bin, 'model_main'), ['--weights', dir, 'x.npy', '--out', path.join(tmp, 'out-st')]), new RegExp(`${path.basename(dir)}: cannot read weights: it is a directory`));
  });

  it('reads what the reference parser accepts: any key order, escapes, metadata strings, extra tensors (ignored)', () => {
    // extra tensors of other dtypes (an optimizer's state, empty ones sharing an offset) are checked, then ignored
    const extra = ',"extra\\n\\"tensor\\"":{"dtype":"F16","shape":[1],"data_offsets":[22,24]},"empty":{"dtype":"F4","shape":[0,2],"data_offsets":[24,24]},"e2":{"dtype":"C64","shape":[0],"data_offsets":[24,24]}';
    const fine = rawSafetensors(`{"__metadata__":{"format":"pt","a\\u00e9":""}, ${header('{"shape":[3],"data_offsets":[0,12],"unknown":[1,{"b":null}],"dtype":"F\\u0033\\u0032"}', 0, extra).slice(1, -1)}}   `, data(2));
    expect(run('fine', fine).err).toBe('');
    close(parseNpy(new Uint8Array(readFileSync(path.join(tmp, 'out-st', 'out_y.npy')))).data, expectedY(W));
    expect(readSafetensors(fine, specs).tensors.map((t) => t.name)).toEqual(weights().map((t) => t.name)); // the TS reader agrees
  });

  it('rejects every prefix of a weights file and survives corrupted headers', () => {
    writeFileSync(path.join(tmp, 'good.st'), good());
    const prefixes = sh(path.join(bin, 'init_tool'), ['prefixes', 'good.st', path.join(tmp, 'prefix.st')]);
    expect(prefixes.err).toBe('');
    expect(prefixes.out).toMatch(/^ok \d+ prefixes rejected/);
    const fuzz = sh(path.join(bin, 'init_tool'), ['fuzz', 'good.st', path.join(tmp, 'fuzz.st')]);
    expect(fuzz.err).toBe('');
    expect(fuzz.out).toMatch(/^ok \d+ of 3000 accepted/);
  });

  it('kiln_save_weights writes what runtime/safetensors.ts writes and reads', () => {
    const r = sh(path.join(bin, 'init_tool'), ['save', path.join(bin, 'weights.safetensors'), 'saved.st']);
    expect(r.err).toBe('');
    const saved = new Uint8Array(readFileSync(path.join(tmp, 'saved.st')));
    expect(Buffer.from(saved)).toEqual(Buffer.from(writeSafetensors(weights(), { format: 'kiln' })));
    const back = readSafetensors(saved);
    expect(back.metadata).toEqual({ format: 'kiln' });
    expect(back.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(weights().map((t) => [t.name, t.dtype, t.shape]));
    back.tensors.forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(weights()[i]!.data)));
  });
});

describe('C runtime: kiln_parallel_for', () => {
  it('covers every index exactly once with 1, 2 and 3 threads, repeatedly and nested', () => {
    for (const t of ['1', '2', '3']) {
      const r = sh(path.join(bin, 'pool_test'), [], { env: { KILN_NUM_THREADS: t } });
      expect(r.err).toBe('');
      expect(r.out.trim()).toBe(`ok threads=${t}`);
    }
  });

  // without KILN_NUM_THREADS (undefined: unset), the pool has one thread per CPU the affinity mask allows
  const unset = { KILN_NUM_THREADS: undefined } as unknown as Record<string, string>;
  it.each([['0', 1], ['0,1', 2]])('takes one thread per CPU of the affinity mask: taskset -c %s gives %i', (cpus, threads) => {
    const r = sh('taskset', ['-c', cpus, path.join(bin, 'pool_test')], { env: unset });
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe(`ok threads=${threads}`);
  });

  it('KILN_NUM_THREADS overrides the mask: 3 threads on one CPU (no spinning) cover every index once', () => {
    const r = sh('taskset', ['-c', '0', path.join(bin, 'pool_test')], { env: { KILN_NUM_THREADS: '3' } });
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe('ok threads=3');
  });

  /** The CPUs the runtime's cgroup reader finds in a fake tree: file path -> content, below a fresh root. */
  const quota = (files: Record<string, string>): number => {
    const root = mkdtempSync(path.join(tmp, 'cgroup-'));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), text);
    }
    const r = sh(path.join(bin, 'cpus_test'), [root]);
    expect(r.err).toBe('');
    return Number(r.out.trim());
  };

  it('caps the threads at the cgroup CPU quota, rounded up, the tightest along the path (v1, v2, both, in a container)', () => {
    // cgroup v2: the parent's 1.5 CPUs bind; the leaf has none
    expect(quota({ 'proc/self/cgroup': '0::/user.slice/app\n', 'sys/fs/cgroup/user.slice/cpu.max': '150000 100000\n', 'sys/fs/cgroup/user.slice/app/cpu.max': 'max 100000\n' })).toBe(2);
    // v2 in a container: its own cgroup is the mount's root
    expect(quota({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': '300000 100000\n' })).toBe(3);
    // v1, cpu and cpuacct mounted together
    expect(quota({
      'proc/self/cgroup': '5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n',
      'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '50000\n', 'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
    })).toBe(1);
    // v1 in a container without a cgroup namespace: the host's path, the container's cgroup at the mount's root
    expect(quota({
      'proc/self/cgroup': '4:cpuacct,cpu:/docker/abc\n',
      'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000\n', 'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
    })).toBe(4);
    // v1 and v2 side by side (hybrid): the tighter one
    expect(quota({
      'proc/self/cgroup': '2:cpu:/a\n0::/b\n',
      'sys/fs/cgroup/cpu/a/cpu.cfs_quota_us': '250000\n', 'sys/fs/cgroup/cpu/a/cpu.cfs_period_us': '100000\n',
      'sys/fs/cgroup/b/cpu.max': '600000 100000\n',
    })).toBe(3);
    // no quota: -1 (v1), max (v2), no files, a cpuset-only line
    expect(quota({ 'proc/self/cgroup': '3:cpuset:/x\n1:cpu:/\n0::/y\n', 'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', 'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n', 'sys/fs/cgroup/y/cpu.max': 'max 100000\n' })).toBe(0);
    expect(quota({})).toBe(0);
  });
});

describe('C runtime: model_train', () => {
  // 20 rows; the label's column of x is 0.5, so y = 2x + w predicts the label once w is small
  const labels = Int32Array.from({ length: 20 }, (_, i) => (i * 7) % 3);
  const x = Float32Array.from({ length: 60 }, (_, i) => (labels[Math.floor(i / 3)] === i % 3 ? 0.5 : 0));

  it('runs epochs with Keras-style progress and val_accuracy, and writes trained weights', () => {
    const dir = mkdtempSync(path.join(tmp, 'train-'));
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [20, 3], x));
    writeFileSync(path.join(dir, 'y.npy'), npy('<i8', [20], BigInt64Array.from(labels, BigInt)));
    const r = sh(path.join(bin, 'model_train'), ['--epochs', '3', '--batch-size', '2', '--validation-split', '0.25', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir });
    // 15 training rows at batch 2: the fake trainStep has no "rows" input, so the partial batch is dropped, and said so once
    expect(r.err).toBe('model_train: 1 of the 15 training rows are left out of each epoch (different ones each epoch, as the rows are shuffled): the trainStep runs whole batches of 2 only (a training step)\n');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(7);
    const losses: number[] = [];
    for (let e = 0; e < 3; e++) {
      expect(lines[2 * e]).toBe(`Epoch ${e + 1}/3`);
      // 15 training rows (Keras: the last 25% held out) at batch 2: 7 steps, the partial batch dropped
      const m = /^7\/7 - \d+s - \d+(us|ms|s)\/step - loss: (\d+\.\d{4}) - val_accuracy: (\d\.\d{4})$/.exec(lines[2 * e + 1]!);
      expect(m, lines[2 * e + 1]).not.toBeNull();
      losses.push(Number(m![2]));
      expect(m![3]).toBe('1.0000');
    }
    expect(losses[1]!).toBeLessThan(losses[0]!);
    expect(losses[2]!).toBeLessThanOrEqual(losses[1]!);
    expect(lines[6]).toBe('Saved trained weights to trained.safetensors');

    const trained = new Map(readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'trained.safetensors')))).tensors.map((t) => [t.name, t.data]));
    expect(Array.from(trained.get('optimizer/iterations')!)).toEqual([21]);
    expect(Array.from(trained.get('fake/last_rng')!)).toEqual([20]); // rng_counter = the iteration number
    expect(Array.from(trained.get('fake/flags')!)).toEqual([1, 0]);
    for (const v of trained.get('fake/w')!) expect(Math.abs(v)).toBeLessThan(0.05);
  });

  it('--bench N prints the median; clear errors', () => {
    const dir = mkdtempSync(path.join(tmp, 'train-'));
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [20, 3], x));
    writeFileSync(path.join(dir, 'y.npy'), npy('<i4', [20], labels));
    writeFileSync(path.join(dir, 'yf.npy'), npy('<f4', [20, 3], x));
    writeFileSync(path.join(dir, 'y5.npy'), npy('<i4', [5], labels.subarray(0, 5)));
    const train = (...args: string[]): Result => sh(path.join(bin, 'model_train'), args, { cwd: dir });
    const b = train('--bench', '50', 'x.npy', 'y.npy');
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/^median \d+\.\d+ us\n$/);
    expectFailure(train('--batch-size', '4', 'x.npy', 'y.npy'), /compiled for batch size 2, not 4; recompile with --batch-size 4/);
    expectFailure(train('x.npy'), /trainStep takes 2 data \.npy file\(s\) in this order \(inputs, then targets\): x, target\/out\/y; got 1/);
    expectFailure(train('x.npy', 'yf.npy'), /yf\.npy: dtype float32, but 'target\/out\/y' is int32/);
    expectFailure(train('x.npy', 'y5.npy'), /y5\.npy has 5 rows, but x\.npy has 20/);
    expectFailure(train('--validation-split', '1.5', 'x.npy', 'y.npy'), /--validation-split needs a number in \[0, 1\)/);
    expectFailure(train('--validation-split', '0.99', 'x.npy', 'y.npy'), /1 training rows are fewer than one batch of 2/);
    expectFailure(train('--epochs', '99999999999999999999', 'x.npy', 'y.npy'), /--epochs needs an integer of at least 0/);
    expectFailure(train('--bench', '2305843009213693953', 'x.npy', 'y.npy'), /--bench needs an integer from 1 to 1000000000/);
  });
});

describe('C runtime: model_train on bad data', () => {
  const labels = Int32Array.from({ length: 20 }, (_, i) => (i * 7) % 3);
  const x = Float32Array.from({ length: 60 }, (_, i) => (labels[Math.floor(i / 3)] === i % 3 ? 0.5 : 0));

  it('stops with one line on labels outside [0, classes), non-finite data and a non-finite loss; the weights file stays as it was', () => {
    const dir = mkdtempSync(path.join(tmp, 'train-bad-'));
    const file = (name: string, bytes: Uint8Array): string => { writeFileSync(path.join(dir, name), bytes); return name; };
    const train = (...args: string[]): Result => sh(path.join(bin, 'model_train'), ['--out', 'trained.safetensors', ...args], { cwd: dir });
    expect(train(file('x.npy', npy('<f4', [20, 3], x)), file('y.npy', npy('<i4', [20], labels))).code).toBe(0);
    const before = readFileSync(path.join(dir, 'trained.safetensors'));
    const edit = <T extends Float32Array | Int32Array>(a: T, i: number, v: number): T => { const b = a.slice() as T; b[i] = v; return b; };
    const cases: [string[], RegExp][] = [
      // Keras raises on these; one-hot encoding them gave a zero row and a loss of 0
      [['x.npy', file('y3.npy', npy('<i4', [20], edit(labels, 7, 3)))], /y3\.npy: label 3 at row 7 is outside \[0, 3\) \(output 'out\/y' has 3 classes\)/],
      [['x.npy', file('yneg.npy', npy('<i8', [20], BigInt64Array.from(edit(labels, 12, -1), BigInt)))], /yneg\.npy: label -1 at row 12 is outside \[0, 3\)/],
      [[file('xnan.npy', npy('<f4', [20, 3], edit(x, 4 * 3 + 1, NaN))), 'y.npy'], /xnan\.npy: value nan at row 4; training data must be finite/],
      [[file('xinf.npy', npy('<f8', [20, 3], Float64Array.from(edit(x, 9 * 3, -Infinity)))), 'y.npy'], /xinf\.npy: value -inf at row 9; training data must be finite/],
      // as Keras's TerminateOnNaN: NaN weights make the first loss NaN; finite inputs too large for float32 make it inf
      [['--weights', file('wnan.safetensors', writeSafetensors(weights(Float32Array.of(0.5, NaN, 0.25)))), 'x.npy', 'y.npy'],
        /epoch 1, batch 1: invalid loss nan, terminating training; trained\.safetensors was not written/],
      [['--epochs', '2', file('xbig.npy', npy('<f4', [20, 3], x.map((v) => v * 6e38))), 'y.npy'], /epoch 1, batch 1: invalid loss inf, terminating training/],
    ];
    for (const [args, re] of cases) {
      expectFailure(train(...args), re);
      expect(readFileSync(path.join(dir, 'trained.safetensors')), args.join(' ')).toEqual(before);
    }
  });
});

describe('C runtime: outputs are written whole or not at all', () => {
  const temporaries = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  /** cmd under a file size limit of 0 blocks, standing for a full disk: writes to files fail with EFBIG. */
  const full = (cmd: string, args: string[], cwd: string): Result =>
    sh('sh', ['-c', `trap '' XFSZ; ulimit -f 0; exec "$0" "$@"`, cmd, ...args], { cwd, env: { ASAN_OPTIONS: 'detect_leaks=0' } });
  const w2 = Float32Array.of(10, 20, 30);
  /** cmd as an unprivileged user (nobody, when the tests run as root, who may write anywhere) */
  const asUser = (cmd: string, args: string[], cwd: string): Result => {
    const user = process.getuid?.() === 0 ? ['--reuid=65534', '--regid=65534', '--clear-groups', '--', cmd] : [];
    return sh(user.length ? 'setpriv' : cmd, [...user, ...args], { cwd, env: { ASAN_OPTIONS: 'detect_leaks=0' } });
  };

  it('model_main: a failed write leaves no partial or temporary file, and what the output held before', () => {
    const dir = mkdtempSync(path.join(tmp, 'atomic-'));
    const out = (f: string): string => path.join(dir, 'out', f);
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [2, 3], X));
    writeFileSync(path.join(dir, 'w2.safetensors'), writeSafetensors(weights(w2)));
    expect(sh(path.join(bin, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir }).code).toBe(0);
    const y = readFileSync(out('out_y.npy')), pos = readFileSync(out('pos.npy'));

    expectFailure(full(path.join(bin, 'model_main'), ['--weights', 'w2.safetensors', '--out', 'out', 'x.npy'], dir), /out\/out_y\.npy: cannot write \.npy: File too large/);
    expect(readFileSync(out('out_y.npy'))).toEqual(y);
    expect(readFileSync(out('pos.npy'))).toEqual(pos);
    expect(temporaries(path.join(dir, 'out'))).toEqual([]);

    // a directory in the way of the second output: the first is written but not put in place, so both stay old
    rmSync(out('pos.npy'));
    mkdirSync(out('pos.npy'));
    expectFailure(sh(path.join(bin, 'model_main'), ['--weights', 'w2.safetensors', '--out', 'out', 'x.npy'], { cwd: dir }), /out\/pos\.npy: cannot write \.npy: it is a directory/);
    expect(readFileSync(out('out_y.npy'))).toEqual(y);
    expect(statSync(out('pos.npy')).isDirectory()).toBe(true);
    expect(temporaries(path.join(dir, 'out'))).toEqual([]);
    rmSync(out('pos.npy'), { recursive: true });
    expect(sh(path.join(bin, 'model_main'), ['--weights', 'w2.safetensors', '--out', 'out', 'x.npy'], { cwd: dir }).code).toBe(0);
    close(parseNpy(new Uint8Array(readFileSync(out('out_y.npy')))).data, expectedY(w2));
  });

  it('kiln_npy_write_all: all files or none (a directory in the way of the last, one path twice), no leak', () => {
    const dir = mkdtempSync(path.join(tmp, 'all-'));
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [2, 3], X));
    writeFileSync(path.join(dir, 'a.npy'), 'old a');
    mkdirSync(path.join(dir, 'c.npy'));
    expectFailure(sh(path.join(bin, 'npy_tool'), ['x.npy', 'a.npy', 'b.npy', 'c.npy'], { cwd: dir }), /c\.npy: cannot write \.npy: it is a directory/);
    expectFailure(sh(path.join(bin, 'npy_tool'), ['x.npy', 'a.npy', 'b.npy', 'a.npy'], { cwd: dir }), /a\.npy: two outputs would be written to this one file/);
    expect(readdirSync(dir).sort()).toEqual(['a.npy', 'c.npy', 'x.npy']);
    expect(readFileSync(path.join(dir, 'a.npy'), 'utf8')).toBe('old a');
    expect(sh(path.join(bin, 'npy_tool'), ['x.npy', 'a.npy', 'b.npy'], { cwd: dir }).code).toBe(0);
    for (const f of ['a.npy', 'b.npy']) expect(readFileSync(path.join(dir, f))).toEqual(readFileSync(path.join(dir, 'x.npy')));
  });

  it('model_main: an output that is a symbolic link is written through to its target; one that resolves nowhere is one line', () => {
    const dir = mkdtempSync(path.join(tmp, 'symlink-'));
    const out = (f: string): string => path.join(dir, 'out', f);
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [2, 3], X));
    mkdirSync(path.join(dir, 'out'));
    mkdirSync(path.join(dir, 'kept'));
    writeFileSync(path.join(dir, 'kept', 'y.npy'), 'old');
    symlinkSync(path.join('..', 'kept', 'y.npy'), out('out_y.npy'));
    expect(sh(path.join(bin, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir }).code).toBe(0);
    expect(lstatSync(out('out_y.npy')).isSymbolicLink()).toBe(true);
    close(parseNpy(new Uint8Array(readFileSync(path.join(dir, 'kept', 'y.npy')))).data, expectedY(W));
    expect(temporaries(path.join(dir, 'out'))).toEqual([]);
    expect(temporaries(path.join(dir, 'kept'))).toEqual([]);

    // a link to nothing (as the second output): one line, the first output and the link left as they were
    const y = readFileSync(path.join(dir, 'kept', 'y.npy'));
    rmSync(out('pos.npy'));
    symlinkSync('missing/pos.npy', out('pos.npy'));
    writeFileSync(path.join(dir, 'w2.safetensors'), writeSafetensors(weights(w2)));
    expectFailure(sh(path.join(bin, 'model_main'), ['--weights', 'w2.safetensors', '--out', 'out', 'x.npy'], { cwd: dir }),
      /out\/pos\.npy: cannot write \.npy: it is a symbolic link that does not resolve \(No such file or directory\)/);
    expect(readFileSync(path.join(dir, 'kept', 'y.npy'))).toEqual(y);
    expect(readlinkSync(out('pos.npy'))).toBe('missing/pos.npy');
    expect(temporaries(path.join(dir, 'out'))).toEqual([]);
    expect(temporaries(path.join(dir, 'kept'))).toEqual([]);
  });

  it('model_train: a failed weights write leaves the previous file whole; devices are written in place', () => {
    const dir = mkdtempSync(path.join(tmp, 'atomic-'));
    const labels = Int32Array.from({ length: 20 }, (_, i) => i % 3);
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [20, 3], new Float32Array(60)));
    writeFileSync(path.join(dir, 'y.npy'), npy('<i4', [20], labels));
    const args = ['--out', 'trained.safetensors', 'x.npy', 'y.npy'];
    expect(sh(path.join(bin, 'model_train'), args, { cwd: dir }).code).toBe(0);
    const before = readFileSync(path.join(dir, 'trained.safetensors'));
    expectFailure(full(path.join(bin, 'model_train'), ['--epochs', '3', ...args], dir), /trained\.safetensors: cannot write weights: File too large/);
    expect(readFileSync(path.join(dir, 'trained.safetensors'))).toEqual(before);
    expect(temporaries(dir)).toEqual([]);
    expectFailure(sh(path.join(bin, 'model_train'), ['--out', 'nowhere/trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir }), /nowhere\/trained\.safetensors: cannot write weights: No such file or directory/);
    // a pipe is written in place, not replaced by a renamed file
    const fifo = path.join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const piped = sh('sh', ['-c', 'cat pipe > piped & "$0" "$@"; s=$?; wait; exit $s', path.join(bin, 'model_train'), '--out', 'pipe', 'x.npy', 'y.npy'],
      { cwd: dir, env: { ASAN_OPTIONS: 'detect_leaks=0' } });
    expect(piped.err).toBe('');
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(readFileSync(path.join(dir, 'piped'))).toEqual(before);
    if (existsSync('/dev/full')) { // run as nobody: root could create /dev/full.<pid>.tmp and rename it over the device
      chmodSync(tmp, 0o755);
      chmodSync(dir, 0o755);
      expectFailure(asUser(path.join(bin, 'model_train'), ['--out', '/dev/full', 'x.npy', 'y.npy'], dir), /\/dev\/full: cannot write weights: No space left on device/);
      expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
    }
  });

  it('a read-only output directory: one line, the old outputs untouched', () => {
    const dir = mkdtempSync(path.join(tmp, 'readonly-'));
    chmodSync(tmp, 0o755);
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [2, 3], X));
    expect(sh(path.join(bin, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir }).code).toBe(0);
    const y = readFileSync(path.join(dir, 'out', 'out_y.npy'));
    chmodSync(path.join(dir, 'out'), 0o555);
    expectFailure(asUser(path.join(bin, 'model_main'), ['--out', 'out', 'x.npy'], dir), /out\/out_y\.npy: cannot write \.npy: Permission denied/);
    expect(readFileSync(path.join(dir, 'out', 'out_y.npy'))).toEqual(y);
    expect(temporaries(path.join(dir, 'out'))).toEqual([]);
  });
});

describe('C runtime: sanitizers', () => {
  it('ASan and UBSan are on in these builds, and sh() fails a test on their reports', () => {
    // no argument: a heap overflow; one argument: a signed overflow (argc keeps the compiler from seeing either)
    writeFileSync(path.join(tmp, 'bad.c'), '#include <limits.h>\n#include <stdlib.h>\nint main(int argc, char **argv) {\n  char *p = malloc(4);\n  (void)argv;\n  if (argc > 1) { int x = INT_MAX - 1; x += argc; free(p); return x & 1; }\n  p[3 + argc] = 1;\n  free(p);\n  return 0;\n}\n');
    gcc([path.join(tmp, 'bad.c'), '-o', path.join(bin, 'bad')]);
    expect(() => sh(path.join(bin, 'bad'), [])).toThrow(/heap-buffer-overflow|insufficient space for an object/);
    expect(() => sh(path.join(bin, 'bad'), ['1'])).toThrow(/runtime error: signed integer overflow/);
  });
});
