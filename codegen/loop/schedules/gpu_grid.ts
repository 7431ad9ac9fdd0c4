// Recipe: every kernel on a GPU as launches of thread blocks. Each top-level loop nest with independent iterations
// becomes a launch: its perfectly nested outer loops are fused and split into blocks x threads (gridThreads: a
// divisor of the iterations, so no thread idles), and the loop-invariant decls it reads are computed by each
// thread. Other top-level code (a whole-tensor reduction, a row cached outside every loop) runs as a launch of one
// thread, in order. Launches a recipe made already (top-level block loops) are kept. Matmul nests get shared-memory
// tiles (gpu_matmul.ts): tiled before, bound with the launches (one bind: a kernel's top level is all launches or
// none), staged in shared memory after; conv nests are flattened into matmul nests first (gpu_conv.ts: implicit
// GEMM). A nest whose rows hold reduction trees gets one-thread blocks, one row each: gpu_reduce.ts then spreads
// each tree over the block's threads. First, a max pooling gradient's candidates are specialized by window offset
// (gpu_parity.ts, traced as gpu-parity).
import { independentIterations, pureDecls, work } from '../analysis.js';
import { gridThreads, parallelChain } from '../gpu.js';
import type { TargetCaps } from '../schedule.js';
import type { Recipe } from './index.js';
import { bind } from './bind.js';
import { convsAsMatmuls } from './gpu_conv.js';
import { gpuParity } from './gpu_parity.js';
import { finishMatmul, matmulTops, renameMatmuls, tileMatmul } from './gpu_matmul.js';
import { fuse } from './fuse.js';
import { treeParts } from './gpu_reduce.js';
import { launch, sinkDecls } from './launch.js';
import type { For } from './loops.js';
import type { Schedule } from './primitive.js';
import { split } from './split.js';

type Launch = { kind: 'serial'; stmts: number[] } | { kind: 'nest'; chain: For[] };

export const gpuGrid: Recipe = {
  name: 'gpu-grid',
  run: (s: Schedule, caps: TargetCaps) => {
    const g = caps.gpu;
    if (!g) return;
    // matmul nests tiled first (gpu_matmul.ts), up to the binding: their blocks and threads join the grid's bind
    // (its steps are reported as gpu-matmul's)
    const asMatmul = <T>(f: () => T, name = 'gpu-matmul'): T => {
      const recipe = s.recipe;
      s.recipe = name;
      try {
        return f();
      } finally {
        s.recipe = recipe;
      }
    };
    asMatmul(() => gpuParity.run(s, caps), 'gpu-parity');
    // conv nests as matmul nests first (implicit GEMM, gpu_conv.ts), tiled with the matmuls
    asMatmul(() => convsAsMatmuls(s), 'gpu-conv');
    const tiled = asMatmul(() => matmulTops(s.body).map((top) => tileMatmul(s, top, g)));
    const mine = new Set(tiled.map((t) => t.blocks[0]!));
    const body = s.body, pure = pureDecls(body);
    const topLocals = new Set(body.flatMap((x) => (x.k === 'local' ? [x.name] : [])));
    const launches: Launch[] = [];
    let serial: number[] = [];
    const flush = () => {
      if (serial.length) launches.push({ kind: 'serial', stmts: serial });
      serial = [];
    };
    body.forEach((st, i) => {
      if (st.k === 'decl' && pure.has(st.name)) return;
      if (st.k === 'for' && (st.kind === 'block' || mine.has(st.v))) return flush();
      if (st.k !== 'for' || !independentIterations(st, pure, topLocals)) { serial.push(i); return; }
      flush();
      launches.push({ kind: 'nest', chain: parallelChain(st, pure) });
    });
    flush();
    if (!launches.length && !tiled.length) return;
    // names in launch order (g_0, t_1, g_2, ...), as the grid numbers its axes
    let n = 0;
    const names = launches.map(() => [`g_${n++}`, `t_${n++}`] as const);
    // one-thread launches from the last (their statements' positions stay valid), then the nests
    for (let i = launches.length - 1; i >= 0; i--) {
      const l = launches[i]!;
      if (l.kind === 'serial') s.apply(launch, { stmts: l.stmts, block: names[i]![0], thread: names[i]![1] });
    }
    launches.forEach((l, i) => {
      if (l.kind !== 'nest') return;
      const [gv, tv] = names[i]!, f = s.fresh('f');
      const points = l.chain.reduce((a, x) => a * x.extent, 1);
      // a row holding reduction trees: one row per block, the trees on its threads (gpu_reduce.ts)
      const row = l.chain[l.chain.length - 1]!.body;
      const T = treeParts(row) ? 1 : gridThreads(points, Math.max(1, work(row)), g);
      s.apply(fuse, { loops: l.chain.map((x) => x.v), name: f });
      s.apply(split, { loop: f, factor: T, outer: gv, inner: tv });
    });
    // top-level pure decls go into the launches that read them (a decl none reads goes: a kernel of launches only)
    s.apply(sinkDecls, { loops: [...names.map(([, t]) => t), ...tiled.map((t) => t.blocks[t.blocks.length - 1]!)] });
    s.apply(bind, { blocks: [...names.map(([b]) => b), ...tiled.flatMap((t) => t.blocks)], threads: [...names.map(([, t]) => t), ...tiled.flatMap((t) => t.threads)] });
    asMatmul(() => {
      for (const t of tiled) finishMatmul(s, t);
      if (tiled.length) renameMatmuls(s, tiled);
    });
  },
};
