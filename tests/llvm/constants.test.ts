// The llvm renderer's constants: every kind (negative and large i64 index offsets, i32, i8, float specials) as
// the bytes a compiled function stores, and an index with a negative offset end to end against the interpreter.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { constants, llvm } from '../../codegen/llvm/render.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-constants-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const I64 = [-4, -1, 0, 7, 4294967292, 2 ** 32, 2 ** 40, -(2 ** 40), 2 ** 53 - 1, -(2 ** 53 - 1)];
const I32 = [-4, -1, 0, 2147483647, -2147483648, 4294967295, -1640531527];
const I8 = [0, 1, -1, 127, -128, 255];
const F32 = [NaN, Infinity, -Infinity, -0, 0, 3.4028234663852886e38, -3.4028234663852886e38, 1e39, -1e39, 1.1754943508222875e-38, 1e-45, 1e-46, 0.1, 1 / 3, -2.5];
const F64 = [NaN, Infinity, -Infinity, -0, 1, 0.1, 1e-320, 1.7976931348623157e308];

describe('llvm constants', () => {
  it('every kind stores the bytes of its value (i64 offsets below 0 and above 2^32, i32/i8 extremes, float specials)', () => {
    const L = llvm(), ctx = new L.LLVMContext(), mod = new L.Module('consts', ctx), b = new L.IRBuilder(ctx), k = constants(b);
    const fn = L.Function.Create(L.FunctionType.get(b.getVoidTy(), [b.getInt8PtrTy()], false), L.Function.LinkageTypes.ExternalLinkage, 'consts', mod);
    b.SetInsertPoint(L.BasicBlock.Create(ctx, 'entry', fn));
    const want = new DataView(new ArrayBuffer(8 * (I64.length + I32.length + I8.length + F32.length + F64.length)));
    let at = 0;
    const store = (v: import('llvm-bindings').Value, t: import('llvm-bindings').Type, bytes: number, expect: (o: number) => void) => {
      const p = b.CreateInBoundsGEP(b.getInt8Ty(), fn.getArg(0), [k.i64(at)]);
      b.CreateStore(v, b.CreateBitCast(p, L.PointerType.get(t, 0)));
      expect(at);
      at += bytes;
    };
    for (const v of I64) store(k.i64(v), b.getInt64Ty(), 8, (o) => want.setBigInt64(o, BigInt(v), true));
    for (const v of I32) store(k.i32(v), b.getInt32Ty(), 4, (o) => want.setInt32(o, v | 0, true));
    for (const v of I8) store(k.i8(v), b.getInt8Ty(), 1, (o) => want.setInt8(o, (v << 24) >> 24));
    for (const v of F32) store(k.f32(v), b.getFloatTy(), 4, (o) => want.setFloat32(o, v, true));
    for (const v of F64) store(k.f64(v), b.getDoubleTy(), 8, (o) => want.setFloat64(o, v, true));
    b.CreateRetVoid();
    expect(L.verifyModule(mod)).toBe(false);
    writeFileSync(path.join(tmp, 'consts.ll'), mod.print());
    writeFileSync(path.join(tmp, 'main.c'), `#include <stdio.h>
void consts(unsigned char *p);
int main(void) { static unsigned char buf[${at}]; consts(buf); fwrite(buf, 1, sizeof buf, stdout); return 0; }
`);
    execFileSync('llc-14', ['-O0', '-relocation-model=pic', '-filetype=obj', 'consts.ll', '-o', 'consts.o'], { cwd: tmp });
    execFileSync('gcc', ['main.c', 'consts.o', '-o', 'consts'], { cwd: tmp });
    const got = new DataView(new Uint8Array(execFileSync(path.join(tmp, 'consts'))).buffer);
    expect(got.byteLength).toBe(at);
    at = 0;
    const bad: string[] = [];
    const check = (vs: number[], bytes: number, read: (d: DataView, o: number) => number | bigint, label: string) => {
      for (const v of vs) {
        const g = read(got, at), w = read(want, at);
        if (!(Object.is(g, w) || (typeof g === 'number' && Number.isNaN(g) && Number.isNaN(w as number)))) bad.push(`${label} ${v}: stored ${g}, want ${w}`);
        at += bytes;
      }
    };
    check(I64, 8, (d, o) => d.getBigInt64(o, true), 'i64');
    check(I32, 4, (d, o) => d.getInt32(o, true), 'i32');
    check(I8, 1, (d, o) => d.getInt8(o), 'i8');
    check(F32, 4, (d, o) => d.getFloat32(o, true), 'f32');
    check(F64, 8, (d, o) => d.getFloat64(o, true), 'f64');
    expect(bad).toEqual([]);
  });

  it('a value that is no constant of the type is an error, not a wrapped constant', () => {
    const L = llvm(), k = constants(new L.IRBuilder(new L.LLVMContext()));
    expect(() => k.i64(2 ** 60)).toThrow(/not an i64 constant/);
    expect(() => k.i64(1.5)).toThrow(/not an i64 constant/);
    expect(() => k.i32(2 ** 33)).toThrow(/not an i32 constant/);
    expect(() => k.i8(300)).toThrow(/not an i8 constant/);
  });

  it('gather -> reshape -> slice (an index offset of -4) equals the interpreter', () => {
    // x[2,4,3] gathered at [0,3,0,3] on axis 1, flattened, elements 12..17: the load index is (i - 4) + ...
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [2, 4, 3] });
    const gathered = b.emit('gather', [x, b.constant([0, 3, 0, 3], 'int32', [4])], { axis: 1 });
    const flat = b.emit('reshape', [gathered], { shape: [24] });
    const g = b.finish('take_slice', [{ name: 'y', node: b.emit('slice', [flat], { start: [12], end: [18], step: [1] }) }]);
    const inputs = { x: Float32Array.from({ length: 24 }, (_, i) => i + 0.5) };
    const dir = path.join(tmp, 'take');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1 });
    expect(readFileSync(path.join(dir, 'model.ll'), 'utf8')).not.toMatch(/i64 [^,\n]*, 42949672\d\d\b/);
    expect(outputDiffs(g, inputs, {}, runMain(path.join(dir, 'model_main'), dir, g, inputs), 'llvm')).toEqual([]);
  });

  it('float specials and negative integers as graph constants equal the interpreter', () => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [4] }), a = b.input('a', { dtype: 'int32', shape: [4] });
    const zero = b.emit('lt', [x, b.emit('broadcast', [b.constant(0.5)], { shape: [4] })]);
    const outs = F32.map((v, i) => ({ name: `f${i}`, node: b.emit('select', [zero, b.emit('broadcast', [b.constant(v)], { shape: [4] }), x]) }));
    const ints = I32.filter((v) => v === (v | 0)).map((v, i) => ({ name: `i${i}`, node: b.emit('add', [a, b.emit('broadcast', [b.constant(v, 'int32')], { shape: [4] })]) }));
    const g = b.finish('specials', [...outs, ...ints]);
    const inputs = { x: Float32Array.of(0, 1, -1, 2), a: Int32Array.of(0, 1, -1, 1000) };
    const dir = path.join(tmp, 'specials');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1 });
    // bit for bit (the sign of zero too): a constant is no computation
    const got = runMain(path.join(dir, 'model_main'), dir, g, inputs), bad: string[] = [];
    for (const [name, want] of interpret(g, inputs, {}).outputs) {
      want.data.forEach((w, i) => {
        const h = got.get(name)![i]!;
        if (!(Object.is(h, w) || (Number.isNaN(h) && Number.isNaN(w)))) bad.push(`${name}[${i}]: llvm ${h}, interpreter ${w}`);
      });
    }
    expect(bad).toEqual([]);
  });
});
