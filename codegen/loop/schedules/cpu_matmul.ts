// Recipe: a CPU matmul nest (one full-shape matmul and its elementwise epilogue) as a register-blocked
// micro-kernel (BLIS, micro_kernel.ts), column panels outside row tiles, B packed into contiguous panels when
// several row tiles read them. Each output is still its sum over k in ascending order.
import { type TargetCaps, registerTile } from '../schedule.js';
import type { Recipe } from './index.js';
import { type For, findLoop } from './loops.js';
import { contractionNest, microKernel } from './micro_kernel.js';
import { cpuQmatmul } from './cpu_qmatmul.js';
import { localArrays, matmulOperands } from './nests.js';
import type { Schedule } from './primitive.js';

export const cpuMatmul: Recipe = {
  name: 'cpu-matmul',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu) return;
    cpuQmatmul(s, caps);
    const locals = localArrays(s.body);
    for (const top of s.body.filter((x): x is For => x.k === 'for')) {
      const n = findLoop(s.body, top.v) && contractionNest(top, locals, matmulOperands);
      if (!n) continue;
      const M = n.chain[n.chain.length - 2]!.extent, N = n.chain[n.chain.length - 1]!.extent;
      const reg = registerTile(M, N, caps, n.epilogue);
      if (!reg) continue;
      const pack = n.chain.length === 2 && N > reg.nr && M / reg.mr >= 4;
      s.attempt(() => microKernel(s, n, { ...reg, columnsOuter: true, pack }, caps));
    }
  },
};
