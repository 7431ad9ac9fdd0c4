// The CPU matmul's panel order (cpu_matmul.ts columnsOuter): a row operand larger than a core's L2 puts row tiles
// outermost (the loop the threads share is over rows, B packed over its rows outermost), and so do threads that would
// share output lines in column panels narrower than one; else column panels stay outermost. Either order computes the
// plain nest's bits.
import { describe, expect, it } from 'vitest';
import type { Stmt } from '../../../codegen/loop/ir.js';
import { registerTile } from '../../../codegen/loop/schedule.js';
import { L2_BYTES } from '../../../codegen/loop/schedules/cpu_matmul.js';
import { schedule } from '../../../codegen/loop/schedules/index.js';
import type { For } from '../../../codegen/loop/schedules/loops.js';
import { contractionNest, microKernel } from '../../../codegen/loop/schedules/micro_kernel.js';
import { localArrays, matmulOperands } from '../../../codegen/loop/schedules/nests.js';
import { WASM_CAPS } from '../../../codegen/wasm/target.js';
import { expectSame, matmulProgram, sched } from './helpers.js';

/** Extent and kind of each top-level loop. */
const tops = (body: readonly Stmt[]) => body.flatMap((s) => (s.k === 'for' ? [[s.extent, s.kind]] : []));

describe('CPU matmul panel order', () => {
  it('a row operand larger than L2: row tiles outermost and parallel, B packed over its rows outermost', () => {
    const M = 132, K = 1024, N = 16; // wasm's 4 x 8 tile: 33 row tiles, 2 column panels
    expect(M * K * 4).toBeGreaterThan(L2_BYTES);
    const q = schedule(matmulProgram(M, N, K), WASM_CAPS);
    expect(tops(q.kernels[0]!.body)).toEqual([[K, expect.any(String)], [M / 4, 'parallel']]);
  });
  it('a row operand that fits in L2, fewer row tiles than column panels: column panels outermost and parallel', () => {
    const M = 16, K = 128, N = 64;
    const p = matmulProgram(M, N, K), q = schedule(p, WASM_CAPS);
    // each panel packs its own columns of B: the packing nest merged into the panels' parallel loop (cpu_kinds.ts)
    expect(tops(q.kernels[0]!.body)).toEqual([[N / 8, 'parallel']]);
    expect(tops(schedule(p, { ...WASM_CAPS, threads: 1 }).kernels[0]!.body)).toEqual([[N / 8, 'serial'], [N / 8, 'serial']]);
    expectSame(p, q);
  });
  it('threads would share output lines: a short reduction goes row tiles outermost where they are as many', () => {
    // wasm's 8-column panels are half a 64-byte line; with K = 10 the stores are a large part of the work
    const M = 256, K = 10, N = 64;
    const p = matmulProgram(M, N, K), q = schedule(p, WASM_CAPS);
    expect(tops(q.kernels[0]!.body).at(-1)).toEqual([M / 4, 'parallel']);
    expectSame(p, q);
    // one thread: no lines shared, column panels stay outermost
    expect(tops(schedule(p, { ...WASM_CAPS, threads: 1 }).kernels[0]!.body).at(-1)).toEqual([N / 8, 'serial']);
  });
  it.each([true, false])('columns outer %s: the same bits as the plain nest', (columnsOuter) => {
    const p = matmulProgram(24, 32, 20), s = sched(p);
    const n = contractionNest(s.body[0] as For, localArrays(s.body), matmulOperands)!;
    microKernel(s, n, { ...registerTile(24, 32, WASM_CAPS)!, columnsOuter, pack: true }, WASM_CAPS);
    expect(tops(s.body)).toEqual(columnsOuter ? [[4, 'serial'], [4, 'serial']] : [[20, 'serial'], [6, 'serial']]);
    expectSame(p, s.program);
  });
});
