// The GPU cost model is one model: the matmul tile chooser (paddedTiles) prices each candidate with the launch
// estimate `--dump-after schedule` prints (codegen/loop/gpu.ts blockWork over matmulBlock's loop IR), so the tiles
// it picks are the ones whose scheduled launch the estimate finds cheapest; residency bounded by registers (tilesFit).
import { describe, expect, it } from 'vitest';
import { H100, LAUNCH_CYCLES, type MatmulTiles, launchShapes, matmulCycles, tileRegisters, tileThreads, tilesFit } from '../../../codegen/loop/gpu.js';
import { paddedTiles, scheduleMatmul } from '../../../codegen/loop/schedules/index.js';
import { E } from '../../../codegen/loop/ir.js';
import { matmulProgram, sched } from './helpers.js';

const up = (n: number, t: number) => Math.ceil(n / t) * t;
/** The estimate of the scheduled launch of an M x K @ K x N matmul (plain stores: no fused epilogue) on tiles t. */
function scheduled(M: number, N: number, K: number, t: MatmulTiles): number {
  const s = sched(matmulProgram(M, N, K, (acc) => acc as ReturnType<typeof E.v>));
  scheduleMatmul(s, 'i', H100, t);
  const ls = launchShapes(s.program);
  expect(ls).toHaveLength(1);
  return ls[0]!.cycles - LAUNCH_CYCLES;
}

describe('the GPU matmul cost model', () => {
  it('prices tiles as the scheduled launch\'s estimate does (within 5%: index arithmetic the skeleton counts alike)', () => {
    for (const [M, N, K] of [[1024, 64, 784], [256, 1024, 64], [32, 10, 787], [64, 64, 64]] as const) {
      const t = paddedTiles(M, N, K, 1, H100, true);
      const model = matmulCycles(up(M, t.bm), up(N, t.bn), up(K, t.bk), 1, t, H100);
      const real = scheduled(M, N, K, t);
      expect(Math.abs(real - model) / real, `${M} x ${N} x ${K} ${JSON.stringify(t)}: ${real} vs ${model}`).toBeLessThan(0.05);
    }
  });
  it('the chosen tiles\' scheduled launch is estimated no slower than other tiles\' scheduled launches', () => {
    for (const [M, N, K] of [[256, 1024, 64], [1024, 64, 784]] as const) {
      const t = paddedTiles(M, N, K, 1, H100, true), chosen = scheduled(M, N, K, t);
      const others = [{ ...t, tm: 1, tn: 1 }, { ...t, tm: 2, tn: 2 }, { bm: 16, bn: 16, bk: 16, tm: 1, tn: 1 }, { bm: 64, bn: 64, bk: 8, tm: 4, tn: 4 }];
      for (const other of others.filter((o) => tilesFit(o, H100) && JSON.stringify(o) !== JSON.stringify(t))) {
        expect(chosen, `${M} x ${N} x ${K}: ${JSON.stringify(t)} vs ${JSON.stringify(other)}`).toBeLessThanOrEqual(scheduled(M, N, K, other));
      }
    }
  });
  it('large matmuls take register tiles (8 x 8 on 4096^2), one with too few outputs to fill the SMs one output a thread', () => {
    expect(paddedTiles(4096, 4096, 256, 1, H100, true)).toMatchObject({ tm: 8, tn: 8 });
    const t = paddedTiles(256, 1024, 64, 1, H100, true);
    expect(t.tm * t.tn).toBeGreaterThanOrEqual(4);
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
