// Recipe: nests that compute a temp from params and constants alone (an int8 matmul's packed weight columns,
// pair_dot.ts) run once per init instead of once per call, where the target's params change only at init
// (caps.prepack): the temp becomes a cache buffer (kept across calls outside the arena, zeroed by kiln_init) and
// the nest runs under `if (flag == 0)`, which then sets its flag, a cache word of its own. kiln_init zeroes memory
// before it loads the weights (a file, --weights, or embedded), so new weights are packed on the next call.
import { E, type Program, S, type Stmt } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import type { Recipe } from './index.js';
import { accesses } from './loops.js';
import type { Schedule } from './primitive.js';

/** The temps that only statement s of kernel k stores into, when s reads params and constants alone; else none. */
function packedTemps(p: Program, k: number, s: Stmt): string[] | undefined {
  if (s.k !== 'for') return undefined;
  const kind = new Map(p.buffers.map((b) => [b.name, b.kind]));
  const a = accesses([s]);
  if ([...a.assigned].some((n) => !a.declared.has(n))) return undefined;
  const reads = a.arrays.filter((r) => !r.write), writes = [...new Set(a.arrays.filter((r) => r.write).map((r) => r.array))];
  if (!writes.length || writes.some((b) => kind.get(b) !== 'temp') || reads.some((r) => kind.get(r.array) !== 'param' && kind.get(r.array) !== 'const' && !writes.includes(r.array))) return undefined;
  // no other statement of the program stores into them
  const others = p.kernels.flatMap((kk, i) => kk.body.filter((t) => i !== k || t !== s));
  const stored = new Set(accesses(others).arrays.filter((r) => r.write).map((r) => r.array));
  return writes.some((b) => stored.has(b)) ? undefined : writes;
}

export const prepack: Recipe = {
  name: 'prepack',
  run: (s: Schedule, caps: TargetCaps) => {
    if (!caps.prepack || caps.gpu) return;
    let body: Stmt[] = [...s.body], buffers = [...s.program.buffers], changed = false;
    for (let i = 0; i < body.length; i++) {
      const temps = packedTemps({ ...s.program, buffers }, s.kernel, s.body[i]!);
      if (!temps) continue;
      const flag = s.freshBuffer(`packed_${temps[0]}`);
      buffers = [...buffers.map((b) => (temps.includes(b.name) ? { ...b, kind: 'cache' as const } : b)), { name: flag, dtype: 'int32', size: 1, kind: 'cache' }];
      body[i] = S.if(E.binary('eq', E.load(flag, E.i32(0), 'i32'), E.i32(0)), [body[i]!, S.store(flag, E.i32(0), E.i32(1))]);
      changed = true;
    }
    if (changed) s.replace(body, buffers);
  },
};
