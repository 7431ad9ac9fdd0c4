// The benches' timer: warm-up, then rounds of N calls (N chosen so one round takes >= roundMs), reported as the
// median over rounds of the time per call, on the wall clock or on this process's CPU time (process.cpuUsage: a
// one-thread call's own time, which other processes' load inflates far less than wall time).
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Timing {
  /** Median over rounds of the mean microseconds per call. */
  us: number;
  minUs: number;
  maxUs: number;
  calls: number;
  rounds: number;
}

export interface Timer {
  /** milliseconds: wallMs or cpuMs */
  readonly clock: () => number;
  /** whether the warm-up goes on after `calls` calls and `ms` milliseconds */
  readonly warming: (calls: number, ms: number) => boolean;
  readonly rounds: number;
  readonly roundMs: number;
}

export const wallMs = (): number => performance.now();
export const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** The median, least and greatest of per-call times in milliseconds, in microseconds. */
export function summarize(perCall: readonly number[], calls: number): Timing {
  const s = [...perCall].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const med = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { us: med * 1000, minUs: s[0]! * 1000, maxUs: s[s.length - 1]! * 1000, calls, rounds: s.length };
}

/** The calls the timer makes: yields how many to make next and takes the milliseconds they took; returns the timing. */
function* calls(t: Timer): Generator<number, Timing, number> {
  for (let i = 0, ms = 0; t.warming(i, ms); i++) ms += yield 1;
  let n = 1;
  for (;;) {
    const dt = yield n;
    if (dt >= t.roundMs) break;
    n = Math.max(n * 2, Math.ceil((n * t.roundMs * 1.1) / Math.max(dt, 1e-3)));
  }
  const per: number[] = [];
  for (let r = 0; r < t.rounds; r++) per.push((yield n) / n);
  return summarize(per, n);
}

export function timeSync(fn: () => void, t: Timer): Timing {
  const g = calls(t);
  for (let s = g.next(0); ; ) {
    if (s.done) return s.value;
    const t0 = t.clock();
    for (let i = 0; i < s.value; i++) fn();
    s = g.next(t.clock() - t0);
  }
}

export async function timeAsync(fn: () => Promise<unknown>, t: Timer): Promise<Timing> {
  const g = calls(t);
  for (let s = g.next(0); ; ) {
    if (s.done) return s.value;
    const t0 = t.clock();
    for (let i = 0; i < s.value; i++) await fn();
    s = g.next(t.clock() - t0);
  }
}

/** This machine's CPU as /proc/cpuinfo names it (model name, family and model: record them with every figure). */
export function cpuName(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (f: string) => new RegExp(`^${f}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim();
    return `${field('model name') ?? 'unknown'} (family ${field('cpu family') ?? '?'}, model ${field('model') ?? '?'})`;
  } catch {
    return os.cpus()[0]?.model ?? 'unknown'; // not Linux
  }
}
