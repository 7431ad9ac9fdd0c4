// Recipe: CPU pooling windows, channels as vector lanes (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, and
// any reduction over outer axes of a channels-last tensor; float and int8). A plain nest whose last outer loop (the
// channels) holds reductions over a window, `for c { acc = init; for ky, kx { acc = f(acc, x[.., c]) }; y[.., c] = g(acc) }`,
// runs channels innermost: a row cache over the channels with the window's loops outside it,
// `row[c] = init; for ky, kx { for c { row[c] = f(row[c], x[.., c]) } }; for c { y[.., c] = g(row[c]) }`, so
// cpu_kinds makes each channel loop vector lanes (contiguous loads; a padded window's tap condition is one per tap,
// shared by the lanes). Every channel sees the same updates in the same order as lowered: bit for bit.
// Matmul and convolution nests are the other recipes'; a nest whose channel loop cannot be lanes is left as it was.
import type { TargetCaps } from '../schedule.js';
import { cacheWrite } from './cache_write.js';
import type { Recipe } from './index.js';
import { type For, ScheduleError, findLoop } from './loops.js';
import { convOperands, localArrays, matmulOperands, outerChain, reductionsOf, storesFullShape, straightLine } from './nests.js';
import type { Schedule } from './primitive.js';
import { rowOrder } from './row_caches.js';
import { vectorLegal } from './vectorize.js';

/** A pooling nest's channel row: every reduction cached over the last outer loop, window loops outside it. */
function poolRows(s: Schedule, top: For, caps: TargetCaps): void {
  const chain = outerChain(top), last = chain[chain.length - 1]!, body = last.body;
  const rs = reductionsOf(body);
  const no = (why: string) => new ScheduleError(`schedule cpu-pool on kernel ${s.name}: ${why}`);
  if (chain.length < 2 || last.extent < 2) throw no('no channel loop');
  if (!rs.length || rs.some((r, i) => r.start !== (i ? rs[i - 1]!.end + 1 : 0))) throw no('not a nest of reductions');
  if (rs.some((r) => !r.loops.length || matmulOperands(r) || convOperands(r))) throw no('a matmul, a convolution or a window of one');
  const epi = body.slice(rs[rs.length - 1]!.end + 1);
  if (!straightLine(epi) || !storesFullShape(epi, chain, localArrays(s.body))) throw no('its epilogue is not a store of the nest\'s shape');
  let j = last.v;
  for (const r of rs) {
    const row = s.fresh('row');
    s.apply(cacheWrite, { acc: r.acc, loops: [j], local: row, read: 'inline', place: 'before' });
    const ks = r.loops.map((l) => l.v);
    j = rowOrder(s, [j], 0, r.end - r.start, ks)[0]!;
    // the channel loop inside the window's: lanes on this target, or the nest stays as it was
    const lanes = findLoop(s.body, ks[ks.length - 1]!)!.body[0] as For;
    const why = vectorLegal(lanes, caps);
    if (why) throw no(`channels as lanes: ${why}`);
  }
}

export const cpuPool: Recipe = {
  name: 'cpu-pool',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu || caps.vectorWidth < 2) return;
    const tops = s.body.flatMap((x) => (x.k === 'for' && x.kind === 'serial' ? [x.v] : []));
    for (const v of tops) s.attempt(() => poolRows(s, findLoop(s.body, v)!, caps));
  },
};
