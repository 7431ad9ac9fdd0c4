// pad (schedules/pad.ts): a loop run to a tile's multiple, its tail's stores guarded by an if, a reduction's added
// steps adding zeros: bit for bit with the unpadded program; and the padded tile choice it is for (paddedTiles).
import { describe, expect, it } from 'vitest';
import { H100, matmulCycles, matmulTiles } from '../../../codegen/loop/gpu.js';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import { E, S } from '../../../codegen/loop/ir.js';
import { matmulNest, pad, paddedTiles, reorder, scheduleMatmul } from '../../../codegen/loop/schedules/index.js';
import { separates } from '../../../codegen/loop/schedules/loops.js';
import { expectSame, f32, matmulProgram, program, sched, text, v } from './helpers.js';
import { expectMatchesGraph } from './gpu_helpers.js';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { launchShapes } from '../../../codegen/loop/gpu.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { parseGraph } from '../../../ir/parser.js';

describe('pad', () => {
  it('pads a matmul nest (M = 6 to 8, N = 10 to 16, K = 787 to 800): the same bits, the tails guarded', () => {
    const p = matmulProgram(6, 10, 787);
    const s = sched(p);
    s.apply(pad, { loop: 'i', to: 8 });
    s.apply(pad, { loop: 'j', to: 16 });
    s.apply(pad, { loop: 'k', to: 800, zero: ['va', 'vb'] });
    expect(text(s)).toBe(`kernel k0
  for i in 0..8 {
    for j in 0..16 {
      decl acc: f32 = 0.0
      for k in 0..800 {
        decl va: f32 = select(k < 787, a[min(i, 5) * 787 + min(k, 786)], 0.0)
        decl vb: f32 = select(k < 787, b[min(k, 786) * 10 + min(j, 9)], 0.0)
        acc = acc + va * vb
      }
      decl y: f32 = tanh(acc)
      if i < 6 {
        if j < 10 {
          out[i * 10 + j] = y
        }
      }
    }
  }
`);
    expectSame(p, s.program);
    // still a plain matmul nest: the guards give the loops' extents in the output's shape
    const top = s.body[0]!;
    expect(top.k === 'for' && matmulNest(top)).toMatchObject({ acc: 'acc', K: 800, a: 'va', b: 'vb' });
  });

  it('keeps a NaN or an infinity of the last real step: the added steps add +0', () => {
    const p = matmulProgram(2, 3, 5, (acc) => acc);
    const s = sched(p);
    s.apply(pad, { loop: 'k', to: 8, zero: ['va', 'vb'] });
    const inputs = { a: Float32Array.from([Infinity, 1, 2, 3, -0, NaN, 1, 1, 1, 1]), b: Float32Array.from({ length: 15 }, (_, n) => (n % 4 === 0 ? -0 : n - 7)) };
    const want = runProgram(p, inputs, {}).outputs.get('out')!, got = runProgram(s.program, inputs, {}).outputs.get('out')!;
    expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer));
  });

  it('refuses what would change a result', () => {
    const p = matmulProgram(4, 4, 4);
    const s = sched(p);
    expect(s.check(pad, { loop: 'k', to: 8 })).toMatch(/loop 'k' assigns 'acc', declared outside it, other than by adding a zeroed product/);
    expect(s.check(pad, { loop: 'k', to: 8, zero: ['acc'] })).toMatch(/'acc' is no f32 decl directly in loop 'k'/);
    expect(s.check(pad, { loop: 'i', to: 4 })).toMatch(/extent 4 is not an integer above the loop's 4/);
    // a running sum stored on the way: its added steps would store
    const running = program([f32('x', 4, 'input'), f32('y', 4, 'output')], [
      S.decl('c', 'f32', E.f32(0)),
      S.for('i', 4, [S.decl('t', 'f32', E.load('x', v('i'), 'f32')), S.assign('c', E.binary('add', v('c', 'f32'), E.binary('mul', v('t', 'f32'), v('t', 'f32')))), S.store('y', v('i'), v('c', 'f32'))]),
    ]);
    expect(sched(running).check(pad, { loop: 'i', to: 8, zero: ['t'] })).toMatch(/loop 'i' reduces into 'c' and stores too/);
  });
});

describe('legality proofs under guards', () => {
  const [i, j, m, t] = [v('i'), v('j'), v('m'), v('t')];
  const lt = (a: ReturnType<typeof v>, n: number) => E.binary('lt', a, E.i32(n));
  it('separates reads a guard P < n on a one-to-one sum of loops as one term of n values', () => {
    const idx = E.add(E.mul(i, E.i32(10)), j), both = new Map([['i', 8], ['j', 16]]);
    expect(separates(idx, both, new Map())).toBe(false); // j up to 15 overlaps the next row
    expect(separates(idx, both, new Map(), new Set(), [lt(j, 10)])).toBe(true);
    expect(separates(idx, both, new Map(), new Set(), [lt(j, 11)])).toBe(false);
    // a padded tile's row and column: (t*2 + m < 6) * 10 + (j < 10)
    const row = E.add(E.mul(t, E.i32(2)), m), tile = E.add(E.mul(row, E.i32(10)), j);
    expect(separates(tile, new Map([['t', 4], ['j', 16]]), new Map([['m', 2]]), new Set(), [lt(row, 6), lt(j, 10)])).toBe(true);
    expect(separates(tile, new Map([['t', 4], ['j', 16]]), new Map([['m', 2]]), new Set(), [lt(row, 6)])).toBe(false);
    // P = t + m is not one-to-one (t=1, m=0 and t=0, m=1): no term of it
    const sum = E.add(t, m), bad = E.add(E.mul(sum, E.i32(10)), j);
    expect(separates(bad, new Map([['t', 4], ['m', 4], ['j', 16]]), new Map(), new Set(), [lt(sum, 6), lt(j, 10)])).toBe(false);
  });

  it('reorder proves a guarded store apart, but not when a read of the array outside the guard is used', () => {
    const idx = E.add(E.mul(i, E.i32(10)), j);
    const guarded = program([f32('out', 40, 'output')], [S.for('i', 4, [S.for('j', 16, [S.if(lt(j, 10), [S.store('out', idx, E.f32(1))])])])]);
    expect(sched(guarded).check(reorder, { loops: ['j', 'i'] })).toBeUndefined();
    // j = 15 of row 0 reads what j = 5 of row 1 writes: only the guarded store uses it, which j = 15 skips
    const read = S.decl('r', 'f32', E.load('out', idx, 'f32'));
    const guardedUse = S.if(lt(j, 10), [S.store('out', idx, E.binary('add', v('r', 'f32'), E.f32(1)))]);
    const dead = program([f32('out', 80, 'output')], [S.for('i', 4, [S.for('j', 16, [read, guardedUse])])]);
    expect(sched(dead).check(reorder, { loops: ['j', 'i'] })).toBeUndefined();
    // stored where j = 15 too: the order of rows matters
    const used = program([f32('out', 80, 'output'), f32('seen', 64, 'output')], [S.for('i', 4, [S.for('j', 16, [
      read, S.store('seen', E.add(E.mul(i, E.i32(16)), j), v('r', 'f32')), guardedUse,
    ])])]);
    expect(sched(used).check(reorder, { loops: ['j', 'i'] })).toMatch(/cannot prove the nest's iterations write different elements of 'out'/);
  });

  it('reorder takes pad\'s clamped read of an array updated in place (p = p + x) as the guarded store\'s index', () => {
    // the epilogue of a GPU matmul on padded tiles updating a param in place (fuzz --keras on cuda-emu)
    const idx = E.add(E.mul(i, E.i32(10)), j);
    const p = program([f32('x', 40, 'input'), f32('p', 40, 'output')], [S.for('i', 4, [S.for('j', 10, [
      S.decl('r', 'f32', E.load('p', idx, 'f32')),
      S.store('p', idx, E.binary('add', v('r', 'f32'), E.load('x', idx, 'f32'))),
    ])])]);
    const s = sched(p);
    s.apply(pad, { loop: 'j', to: 16 });
    expect(text(s)).toMatch(/decl r: f32 = p\[i \* 10 \+ min\(j, 9\)\]/);
    s.apply(reorder, { loops: ['j', 'i'] });
    expectSame(p, s.program);
  });

  it('tiles a 6 x 10 x 787 matmul in one 8 x 16 block (2 x 2 outputs a thread), M, N and K padded: bit for bit', () => {
    const p = matmulProgram(6, 10, 787);
    const s = sched(p);
    scheduleMatmul(s, 'i', H100, { bm: 8, bn: 16, bk: 32, tm: 2, tn: 2 });
    const out = text(s);
    expect(out).toMatch(/for \w+ in 0\.\.32 thread/);
    // A staged along k (consecutive threads a row apart): rows of 8 + 1 floats, so a warp's stores hit different banks
    expect(out).toMatch(/local As\d+: f32\[288\] shared/);
    expect(out).toMatch(/As\d+\[\w+ \* 9 \+ \w+\] = /);
    expect(out).toMatch(/if \w+ \* 8 \+ \w+ \+ \w+ < 6 \{\n\s+if \w+ \* 16 \+ \w+ \+ \w+ < 10 \{/);
    expectSame(p, s.program);
  });
});

describe('paddedTiles', () => {
  it('keeps a large tile for sizes no tile divides, cheaper by the cost model than the divisors allow', () => {
    for (const [M, N, K] of [[32, 10, 787], [7, 13, 300]] as const) {
      const exact = matmulTiles(M, N, K, 1, H100), padded = paddedTiles(M, N, K, 1, H100, true);
      const up = (n: number, t: number) => Math.ceil(n / t) * t;
      expect(matmulCycles(up(M, padded.bm), up(N, padded.bn), up(K, padded.bk), 1, padded, H100)).toBeLessThan(matmulCycles(M, N, K, 1, exact, H100));
      expect(padded.bk * padded.bn).toBeGreaterThan(exact.bk * exact.bn);
    }
    // sizes the divisors serve: the same tiles
    expect(paddedTiles(64, 64, 64, 1, H100, true)).toEqual(matmulTiles(64, 64, 64, 1, H100));
  });
});

describe('the GPU matmul recipe with K and N padded', () => {
  it('tiles K = 787 in steps of 32 (800, the added 13 steps adding zeros) and N = 10 as 16 instead of 787 steps of 1: bit for bit', () => {
    const g = parseGraph(`graph @m {
  %0 = input {name="x"} : f32[32,787]
  %1 = param {name="w"} : f32[787,10]
  %2 = matmul %0, %1 : f32[32,10]
  %3 = tanh %2 : f32[32,10]
  output "y" = %3
}`);
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program;
    expect(launchShapes(p).map((l) => [l.grid, l.block, l.shared])).toEqual([[1, 320, 4 * 32 * (33 + 10)]]); // one 32 x 10 block, A's rows padded to 33 (staged along k)
    // the clamp min(k, 786) as legalize writes it for CUDA
    expect(printProgram(p)).toMatch(/select\(\w+ \* 32 \+ \w+ < 787, in_x\[[^\]]*select\(\w+ < 786, \w+, 786\)\], 0\.0\)/);
    expectMatchesGraph(g, p);
  });
});
