// The GPU matmul cost model's credit for register tiles: latency hiding by a tile's independent FMAs, operand reuse
// from registers, residency bounded by registers (codegen/loop/gpu.ts matmulCycles, tilesFit).
import { describe, expect, it } from 'vitest';
import { H100, matmulCycles, tileRegisters, tileThreads, tilesFit } from '../../../codegen/loop/gpu.js';
import { paddedTiles } from '../../../codegen/loop/schedules/index.js';

describe('register tiles in the GPU cost model', () => {
  it('large matmuls take tiles of 4 x 4 or more, the seed MLP first layer at batch 1024 more than one output a thread', () => {
    expect(paddedTiles(256, 1024, 64, 1, H100, true)).toMatchObject({ tm: 4, tn: 4 });
    const t = paddedTiles(512, 512, 32, 1, H100, true);
    expect(t.tm * t.tn).toBeGreaterThanOrEqual(16);
    const mlp = paddedTiles(1024, 64, 784, 1, H100, true);
    expect(mlp.tm * mlp.tn).toBeGreaterThan(1);
  });
  it('a matmul with too few outputs to fill the SMs keeps one output a thread (a tile would lengthen each thread\'s path)', () => {
    expect(paddedTiles(32, 64, 784, 1, H100, true)).toMatchObject({ tm: 1, tn: 1 });
  });
  it('with the same blocks, a 4 x 4 tile is cheaper than 1 x 1 where the SMs are full', () => {
    const t = { bm: 64, bn: 64, bk: 32, tm: 4, tn: 4 };
    expect(matmulCycles(4096, 4096, 256, 1, t, H100)).toBeLessThan(matmulCycles(4096, 4096, 256, 1, { ...t, tm: 1, tn: 1 }, H100) / 2);
  });
  it('no tile holds more registers than a block may under __launch_bounds__ (no spills)', () => {
    expect(tilesFit({ bm: 128, bn: 128, bk: 8, tm: 4, tn: 4 }, H100)).toBe(true);
    expect(tilesFit({ bm: 256, bn: 256, bk: 8, tm: 8, tn: 8 }, H100)).toBe(false); // 1024 threads x 104 registers
    for (const [M, N, K] of [[4096, 4096, 4096], [1024, 1024, 1024], [2048, 64, 32], [784, 64, 1024]]) {
      const t = paddedTiles(M!, N!, K!, 1, H100, true);
      expect(tileThreads(t) * tileRegisters(t)).toBeLessThanOrEqual(H100.registersPerSm);
    }
  });
});
