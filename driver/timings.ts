// Wall time per compile phase, for `kiln compile --timings`: each phase's own time (a phase nested in another, as
// the passes inside a target's render, counts for itself only), summed over every call in this process.
const totals = new Map<string, number>();
const open: { childMs: number }[] = [];

/** Runs `f`, adding its wall time, less that of the phases nested in it, to `phase`. */
export function timed<T>(phase: string, f: () => T): T {
  const frame = { childMs: 0 }, start = performance.now();
  open.push(frame);
  try {
    return f();
  } finally {
    open.pop();
    const ms = performance.now() - start;
    totals.set(phase, (totals.get(phase) ?? 0) + ms - frame.childMs);
    const parent = open.at(-1);
    if (parent) parent.childMs += ms;
  }
}

/** As timed, for an async `f` (no other phase may run while it waits). */
export async function timedAsync<T>(phase: string, f: () => Promise<T>): Promise<T> {
  const frame = { childMs: 0 }, start = performance.now();
  open.push(frame);
  try {
    return await f();
  } finally {
    open.pop();
    const ms = performance.now() - start;
    totals.set(phase, (totals.get(phase) ?? 0) + ms - frame.childMs);
    const parent = open.at(-1);
    if (parent) parent.childMs += ms;
  }
}

/** The milliseconds of each phase so far, in the order the phases first ran. */
export function phaseTimes(): Record<string, number> {
  return Object.fromEntries(totals);
}
