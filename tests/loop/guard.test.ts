// The loop IR's if statement (a tile's guarded tail): printed, verified, interpreted, and rendered by wasm, llvm and cuda.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderCuda } from '../../codegen/cuda/render.js';
import { renderLlvm } from '../../codegen/llvm/render.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { type Buffer, E, type Kernel, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { planMemory, updateInPlace } from '../../codegen/loop/memplan.js';
import { printKernel } from '../../codegen/loop/printer.js';
import { dropUnitLoops, renumber } from '../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-guard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const { v, load } = E;
const i32 = E.i32, f32 = E.f32;
const add = E.add, mul = E.mul, lt = (a: ReturnType<typeof v>, b: ReturnType<typeof v>) => E.binary('lt', a, b);

function program(buffers: Buffer[], body: Stmt[]): Program {
  const of = (kind: Buffer['kind']) => buffers.filter((b) => b.kind === kind).map((b) => ({ name: b.name, buffer: b.name }));
  const kernels: Kernel[] = [{ name: 'k0', ops: [], body }];
  return { name: 'guard', buffers, kernels, inputs: of('input'), params: of('param'), outputs: of('output'), updates: [] };
}

// N = 10 outputs in tiles of 4 (3 tiles, the last one half full): y[i] = x[i] * 2 + a running count of the tile's
// guarded elements; z[t] counts per tile (a decl inside the if, an assign to an outer decl)
const N = 10, T = 4, G = Math.ceil(N / T);
const idx = add(mul(v('g'), i32(T)), v('t'));
const tiled = (kind: 'serial' | 'block' = 'serial', inner: 'serial' | 'thread' = 'serial'): Stmt[] => [
  S.for('g', G, [
    ...(inner === 'thread' ? [] : [S.decl('c', 'i32', i32(0))]),
    S.for('t', T, [
      S.if(lt(idx, i32(N)), [
        S.decl('a', 'f32', E.binary('mul', load('x', idx, 'f32'), f32(2))),
        S.store('y', idx, E.binary('add', v('a', 'f32'), f32(0.5))),
        ...(inner === 'thread' ? [] : [S.assign('c', add(v('c'), i32(1)))]),
      ]),
    ], inner),
    ...(inner === 'thread' ? [] : [S.store('z', v('g'), v('c'))]),
  ], kind),
];
const bufs: Buffer[] = [
  { name: 'x', dtype: 'float32', size: N, kind: 'input' },
  { name: 'y', dtype: 'float32', size: N, kind: 'output' },
  { name: 'z', dtype: 'int32', size: G, kind: 'output' },
];
const x = Float32Array.from({ length: N }, (_, k) => Math.fround(Math.sin(k) * 3));
const wantY = Array.from(x, (a) => Math.fround(Math.fround(a * 2) + 0.5));
const wantZ = [4, 4, 2];

describe('the if statement of loop IR', () => {
  it('prints as `if cond {` with an indented body, and runs its body only where the condition holds', () => {
    const p = program(bufs, tiled());
    expect(printKernel(p.kernels[0]!)).toBe(`kernel k0
  for g in 0..3 {
    decl c: i32 = 0
    for t in 0..4 {
      if g * 4 + t < 10 {
        decl a: f32 = x[g * 4 + t] * 2.0
        y[g * 4 + t] = a + 0.5
        c = c + 1
      }
    }
    z[g] = c
  }
`);
    expect(verifyProgram(p)).toEqual([]);
    const r = runProgram(p, { x }, {}).outputs;
    expect(Array.from(r.get('y')!)).toEqual(wantY);
    expect(Array.from(r.get('z')!)).toEqual(wantZ);
  });

  it('is what keeps the tail in bounds: without it the verifier and the interpreter name the bad index', () => {
    const unguarded = program(bufs, [S.for('g', G, [S.for('t', T, [S.store('y', idx, load('x', idx, 'f32'))])])]);
    expect(verifyProgram(unguarded).join('\n')).toMatch(/store y: index g \* 4 \+ t ranges over \[0, 11\], out of bounds for size 10/);
    const wholly = program(bufs, [S.for('g', G, [S.for('t', T, [S.if(lt(idx, i32(N)), [S.store('y', add(idx, i32(20)), f32(1))])])])]);
    expect(verifyProgram(wholly).join('\n')).toMatch(/index g \* 4 \+ t \+ 20 ranges over \[20, 31\], out of bounds for size 10/);
    const wrong = program(bufs, [S.for('g', G, [S.for('t', T, [S.if(lt(idx, i32(N + 1)), [S.store('y', idx, f32(1))])])])]);
    expect(verifyProgram(wrong)).toEqual([]); // a superset under the if: the interpreter checks what runs
    expect(() => runProgram(wrong, { x }, {})).toThrow(/store y\[g \* 4 \+ t\]: index 10 is out of bounds for y of size 10 at g=2, t=2/);
  });

  it('is checked: a bool condition, its body a scope, no block loop or block-level local array under it', () => {
    const problems = (body: Stmt[]) => verifyProgram(program(bufs, body)).join('\n');
    expect(problems([S.if(i32(1), [])])).toMatch(/if 1 \{: if condition is i32, not bool/);
    expect(problems([S.for('g', G, [S.if(E.bool(true), [S.decl('a', 'i32', i32(1))]), S.store('z', v('g'), v('a'))])]))
      .toMatch(/variable 'a' is not declared/);
    expect(problems([S.for('b', 2, [S.if(E.bool(true), [S.for('c', 2, [S.for('t', 4, [], 'thread')], 'block')])], 'block')]))
      .toMatch(/a block loop must be at the top of the kernel or directly in block loops/);
    expect(problems([S.for('b', 2, [S.if(E.bool(true), [S.local('s', 'f32', 4, 'shared')])], 'block')]))
      .toMatch(/a local array of a GPU block declared under an if/);
    // a thread loop under an if of block variables is fine (the block's threads all take the branch)
    expect(problems([S.for('b', 2, [S.if(lt(v('b'), i32(1)), [S.for('t', 4, [S.store('y', v('t'), f32(1))], 'thread')])], 'block')])).toBe('');
  });

  it('keeps walkers honest: unit loops around it dropped into its condition and body, names renumbered inside it', () => {
    const body: Stmt[] = [S.for('u9', 1, [S.for('w7', 5, [S.if(lt(add(v('u9'), v('w7')), i32(3)), [S.decl('q5', 'i32', v('u9')), S.store('z', v('w7'), v('q5'))])])])];
    const p = program([{ name: 'z', dtype: 'int32', size: 5, kind: 'output' }], body);
    const k = p.kernels[0]!;
    const kv = { name: k.name, ops: k.ops, body: k.body, buffers: p.buffers };
    const dropped = dropUnitLoops.apply(kv, {}).body, named = renumber.apply({ ...kv, body: dropped }, {}).body;
    expect(printKernel({ ...k, body: named })).toBe(`kernel k0
  for w0 in 0..5 {
    if 0 + w0 < 3 {
      decl q1: i32 = 0
      z[w0] = q1
    }
  }
`);
    expect(Array.from(runProgram({ ...p, kernels: [{ ...k, body: named }] }, {}, {}).outputs.get('z')!)).toEqual([0, 0, 0, 0, 0]);
  });

  it('keeps a guarded store from being an in-place update (it need not write every element)', () => {
    const p: Program = {
      ...program([{ name: 'w', dtype: 'float32', size: 4, kind: 'param' }, { name: 'n', dtype: 'float32', size: 4, kind: 'temp' }],
        [S.for('t', 4, [S.if(lt(v('t'), i32(2)), [S.store('n', v('t'), E.binary('add', load('w', v('t'), 'f32'), f32(1)))])])]),
      updates: [{ name: 'w', buffer: 'n' }],
    };
    expect(updateInPlace(p).updates).toEqual([{ name: 'w', buffer: 'n' }]);
  });

  it('renders in wasm: equal to the interpreter', () => {
    const p = program(bufs, tiled());
    const r = new WasmRunner(p, renderWasm(p, planMemory(p))).run({ x }, {}).outputs;
    expect(Array.from(r.get('y')!)).toEqual(wantY);
    expect(Array.from(r.get('z')!)).toEqual(wantZ);
  });

  it('renders in llvm: equal to the interpreter', () => {
    const p = program(bufs, tiled());
    const entries = [{ name: 'run', program: p, memory: planMemory(p) }];
    const layout = layoutModule(entries);
    writeFileSync(path.join(tmp, 'guard.ll'), renderLlvm(entries, layout, 'guard'));
    writeFileSync(path.join(tmp, 'main.c'), `#include <stdio.h>
void kiln_run(unsigned char *mem);
static unsigned char mem[${layout.memoryBytes}];
int main(void) { if (fread(mem, 1, sizeof mem, stdin) != sizeof mem) return 1; kiln_run(mem); fwrite(mem, 1, sizeof mem, stdout); return 0; }
`);
    execFileSync('llc-14', ['-O2', '-relocation-model=pic', '-filetype=obj', 'guard.ll', '-o', 'guard.o'], { cwd: tmp });
    execFileSync('gcc', ['main.c', 'guard.o', '-lm', '-o', 'guard'], { cwd: tmp });
    const mem = new Uint8Array(layout.memoryBytes), at = layout.offsets['run']!;
    mem.set(new Uint8Array(x.buffer), at['x']!);
    const out = new Uint8Array(execFileSync(path.join(tmp, 'guard'), { input: mem })).buffer;
    expect(Array.from(new Float32Array(out, at['y']!, N))).toEqual(wantY);
    expect(Array.from(new Int32Array(out, at['z']!, G))).toEqual(wantZ);
  });

  it('renders in cuda as a plain if, around thread loops too (their barrier then uniform over the block)', () => {
    // blocks of 4 threads, the tail block's threads guarded; a second phase only in blocks before the last
    const [grid] = tiled('block', 'thread') as [Extract<Stmt, { k: 'for' }>];
    const body: Stmt[] = [{ ...grid, body: [...grid.body,
      S.if(lt(v('g'), i32(G - 1)), [S.for('t2', T, [S.if(E.binary('eq', v('t2'), i32(0)), [S.store('z', v('g'), i32(7))])], 'thread')])] }];
    const p = program(bufs, body);
    expect(verifyProgram(p)).toEqual([]);
    for (const reverse of [false, true]) {
      const r = runProgram(p, { x }, {}, { reverse }).outputs;
      expect(Array.from(r.get('y')!)).toEqual(wantY);
      expect(Array.from(r.get('z')!)).toEqual([7, 7, 0]);
    }
    const entries = [{ name: 'predict', program: p, memory: planMemory(p) }];
    const cu = renderCuda(entries, layoutModule(entries), 'model');
    expect(cu).toContain(`  KILN_THREADS(t, 4) {
    if (((g * 4) + t) < 10) {
      float a = (x[((g * 4) + t)] * 2.0f);
      y[((g * 4) + t)] = (a + 0.5f);
    }
  }
  KILN_BARRIER();
  if (g < 2) {
    KILN_THREADS(t2, 4) {
      if (t2 == 0) {
        z[g] = 7;
      }
    }
    KILN_BARRIER();
  }`);
  });
});
