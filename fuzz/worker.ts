// The fuzzer's worker process: runs batches of seeds on a target, writes and shrinks reproducers, and reports
// each step to fuzz/main.ts, which restarts it when it hangs or dies.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Graph, topoSort } from '../ir/graph.js';
import { reproText } from './repro.js';
import { shrink } from './shrink.js';
import { type Failure, type Schedule, type Target, type FuzzMode, fuzzCase, makeCase, runCases, signature, withRows } from './targets.js';

export interface Settings {
  readonly target: Target;
  readonly updates: boolean;
  /** graphs; rows: separable graphs at any number of rows (kiln_run_rows, llvm and cuda-emu); train-rows: padded training steps; keras: Keras sequence and image models (keras-rows: their predict graphs as rows does); quant: int8 graphs. */
  readonly mode: FuzzMode;
  /** llvm only: the freestanding runtime. */
  readonly freestanding: boolean;
  /** llvm only: -mcpu (default: the host's x86-64 level), e.g. a VNNI CPU for int8 graphs' dot4. */
  readonly cpu?: string;
  readonly out: string;
  readonly timeoutMs: number;
  readonly shrinkMs: number;
}

/** One batch: seeds that share a module (or, on the loop target, a schedule). */
export interface Batch {
  readonly schedule?: Schedule;
  readonly seeds: readonly number[];
}

export interface Result {
  readonly seed: number;
  readonly failure?: Failure;
  /** the reproducer written for it */
  readonly file?: string;
}

export type Report =
  | { type: 'results'; results: Result[] }
  | { type: 'shrunk'; seed: number; file: string; from: number; to: number }
  | { type: 'alive' }
  | { type: 'done' };

/** The command that runs one seed again. */
export function commandFor(s: Settings, seed: number, schedule?: Schedule): string {
  return `npm run fuzz -- --target ${s.target} --seeds ${seed}..${seed + 1}${schedule ? ` --schedule ${schedule}` : ''}${s.updates ? ' --updates' : ''}${s.mode !== 'graphs' ? ` --${s.mode}` : ''}${s.freestanding ? ' --runtime freestanding' : ''}${s.cpu ? ` --cpu ${s.cpu}` : ''}`;
}

/** Where seed's reproducer goes: <out>/<target>[-<schedule>][-updates][-rows|-train-rows][-freestanding]-<seed>.ir */
export function reproFile(s: Settings, seed: number, schedule?: Schedule): string {
  return path.join(s.out, `${s.target}${schedule ? `-${schedule}` : ''}${s.updates ? '-updates' : ''}${s.mode !== 'graphs' ? `-${s.mode}` : ''}${s.freestanding ? '-freestanding' : ''}-${seed}.ir`);
}

export function writeRepro(s: Settings, seed: number, schedule: Schedule | undefined, g: Graph, failure: Failure, note?: string): string {
  const file = reproFile(s, seed, schedule);
  mkdirSync(s.out, { recursive: true });
  writeFileSync(file, reproText(g, { command: commandFor(s, seed, schedule), failure, dataSeed: seed, note }));
  return file;
}

const nodes = (g: Graph) => topoSort(g).length;

function main(): void {
  const s = JSON.parse(process.argv[2]!) as Settings;
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'kiln-fuzz-'));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  const send = (r: Report) => process.send!(r);
  const run = { workDir, timeoutMs: s.timeoutMs, freestanding: s.freestanding, cpu: s.cpu, alive: () => send({ type: 'alive' }) };
  process.on('message', (batch: Batch) => {
    const cases = batch.seeds.map((seed) => fuzzCase(seed, s.updates, s.mode));
    const outcomes = runCases(s.target, cases, { ...run, schedule: batch.schedule });
    const results = cases.map((c, i): Result => {
      const f = outcomes[i];
      return { seed: c.seed, failure: f, file: f && f.kind !== 'batch-only' && f.kind !== 'approx' ? writeRepro(s, c.seed, batch.schedule, c.graph, f) : undefined };
    });
    send({ type: 'results', results });
    for (const [i, c] of cases.entries()) {
      const f = outcomes[i];
      // a timeout costs the whole limit per try; a batch-only failure needs its batch; approx is no failure
      if (!f || f.kind === 'timeout' || f.kind === 'batch-only' || f.kind === 'approx' || s.shrinkMs <= 0) continue;
      const sig = signature(f);
      let last = f;
      const fails = (g: Graph) => {
        const o = runCases(s.target, [s.mode === 'rows' || s.mode === 'keras-rows' ? withRows(makeCase(c.seed, g)) : makeCase(c.seed, g)], { ...run, schedule: batch.schedule })[0];
        if (o && signature(o) === sig) last = o;
        return o !== undefined && signature(o) === sig;
      };
      const from = nodes(c.graph);
      const small = shrink(c.graph, fails, Date.now() + s.shrinkMs,
        (g) => writeRepro(s, c.seed, batch.schedule, g, last, `shrunk from ${from} to ${nodes(g)} nodes`));
      send({ type: 'shrunk', seed: c.seed, file: reproFile(s, c.seed, batch.schedule), from, to: nodes(small) });
    }
    send({ type: 'done' });
  });
}

// run as the worker (main.ts imports this file for the reproducer helpers too)
if (process.send && import.meta.url === pathToFileURL(process.argv[1]!).href) main();
