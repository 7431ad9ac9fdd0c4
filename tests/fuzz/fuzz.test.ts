// The fuzzer in CI: new seeds every run (a range of its own per commit, or per day outside git) through
// `npm run fuzz` on the loop interpreter under each schedule, and fewer on wasm and llvm (also freestanding, at any
// number of rows), padded training steps, Keras sequence and image models and int8 graphs; plus its shrinker.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRepro, reproText } from '../../fuzz/repro.js';
import { kerasStep, splitDifferences } from '../../fuzz/keras_models.js';
import { randomGraph } from '../../fuzz/random_graphs.js';
import { eachSchedule } from '../../fuzz/targets.js';
import { graphSize, shrink } from '../../fuzz/shrink.js';
import { type Graph, topoSort } from '../../ir/graph.js';
import { printGraph } from '../../ir/printer.js';
import { ensureBuilt, root } from '../built.js';

const out = mkdtempSync(path.join(os.tmpdir(), 'kiln-fuzz-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
beforeAll(() => ensureBuilt(), 120_000);

/** The first seed of this run: from the commit, past the fixed seeds (0-199) the other tests use. */
function firstSeed(): number {
  let key: string;
  try {
    key = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    key = new Date().toISOString().slice(0, 10);
  }
  return 1000 + (parseInt(createHash('sha256').update(key).digest('hex').slice(0, 8), 16) % 1_000_000_000);
}

const first = firstSeed();

/**
 * `npm run fuzz -- --target T --seeds A..B --updates` (or with other flags: `mode`) from dist/. It prints the
 * command; a failure lists each failing seed with the command that runs it alone, and the shrunk reproducers.
 */
function fuzz(target: string, count: number, offset: number, mode = ['--updates']): void {
  const seeds = `${first + offset}..${first + offset + count}`, dir = path.join(out, `${target}${mode.join('')}`);
  const command = `npm run fuzz -- --target ${target} --seeds ${seeds} ${mode.join(' ')}`;
  console.log(`fuzz: ${command}`);
  const r = spawnSync(process.execPath, [path.join(root, 'dist/fuzz/main.js'), '--target', target, '--seeds', seeds, ...mode,
    '--out', dir, '--shrink-seconds', '20'], { cwd: root, encoding: 'utf8', timeout: 280_000 });
  // the last line: `N graphs, M mismatches, K crashes` (on llvm `, F approx`: right without contraction, with exact math)
  const m = /^(\d+) graphs, (\d+) mismatches, (\d+) crashes(?:, \d+ approx)?$/.exec(r.stdout.trim().split('\n').at(-1) ?? '');
  if (r.status !== 0 || !m || m[2] !== '0' || m[3] !== '0') {
    const repros = existsSync(dir) ? readdirSync(dir).sort().map((f) => `--- ${f}\n${readFileSync(path.join(dir, f), 'utf8')}`).join('\n') : '';
    // killed at 280 s (many failures to shrink): what it found so far
    throw new Error(`${command} failed (${r.signal ? `killed by ${r.signal} after 280 s` : `exit ${r.status}`}):\n${r.stdout}${r.stderr}\nshrunk reproducers:\n${repros}`);
  }
  expect(Number(m[1])).toBe(target === 'loop' ? eachSchedule(mode.includes('--quant')).length * count : count);
}

describe('fuzzing new seeds (each command is printed; a failure prints the command for each seed and its shrunk reproducer)', () => {
  // 600: the deep graphs' odd matmuls and reduction chains cost the loop interpreter about 1.4 times the time of the others
  it('the loop interpreter under each schedule', () => fuzz('loop', 600, 0), 300_000);
  it('wasm', () => fuzz('wasm', 100, 800), 300_000);
  it('llvm', () => fuzz('llvm', 80, 900), 300_000);
  // predict graphs with a batch axis: the row-separable ones (about 1 in 8) at 1 to 3 batches through kiln_run_rows
  it('llvm, freestanding runtime, any number of rows', () => fuzz('llvm', 24, 1000, ['--rows', '--runtime', 'freestanding']), 300_000);
  // training steps of random Keras models on a last, smaller batch ("rows" input), also against the step for those rows
  it('training steps with a "rows" input, the loop interpreter under each schedule', () => fuzz('loop', 10, 1100, ['--updates', '--train-rows']), 300_000);
  // Keras sequence models (scans, masks) and image models (Conv2D, pooling, BatchNormalization): predict, the fused step, gradStep or applyGrads (split checked against fused)
  it('Keras models, the loop interpreter under each schedule', () => fuzz('loop', 6, 1200, ['--updates', '--keras']), 300_000);
  // int8 graphs: calibrated and quantized networks, raw qmatmul / qconv chains, bit for bit
  it('int8 graphs, the loop interpreter under each schedule and llvm', () => {
    fuzz('loop', 40, 1300, ['--quant']);
    fuzz('llvm', 12, 1400, ['--quant']);
  }, 300_000);
});

describe('the keras mode', () => {
  it('finds a split step whose gradStep hands applyGrads its values in another order', () => {
    // the first training kind among the fixed seeds with two or more gradients of one size
    const step = Array.from({ length: 60 }, (_, i) => kerasStep(i)).find((k) => k.split && k.kind === 'train')!;
    expect(splitDifferences(step.split!, step.params)).toEqual([]);
    const grad = step.split!.grad, values = grad.outputs.filter((o) => !o.name.startsWith('pred/'));
    const swapped = { ...grad, outputs: [...values.slice(0, -1).reverse(), ...grad.outputs.slice(values.length - 1)] };
    expect(splitDifferences({ ...step.split!, grad: swapped }, step.params).length).toBeGreaterThan(0);
  });
});

describe('the keras mode with Dropout', () => {
  it('checks the split step with gradStep\'s "rng_row" at the first row, the target with some rank\'s first row', () => {
    // seed 6: Embedding, LSTM, Dropout, Dense; the grad kind (gradStep has the rng_row input); threw 'no value given'
    const step = kerasStep(6);
    expect(step.kind).toBe('grad');
    expect(step.split!.inputs['rng_row']).toEqual(Int32Array.of(0));
    expect(splitDifferences(step.split!, step.params)).toEqual([]);
    expect(step.inputs['rng_row']![0]! % 2).toBe(0); // a multiple of batch 2
  });
});

describe('the shrinker', () => {
  it('keeps what the failure needs: an exp of an int32 cast in a random graph', () => {
    // the extended generator's seeds with such a node; the predicate stands for a compiler bug
    const has = (g: Graph) => topoSort(g).some((n) => n.op === 'exp' && n.src[0]!.op === 'cast');
    const seed = Array.from({ length: 500 }, (_, i) => i).find((s) => has(randomGraph(s, { extended: true }).graph))!;
    const g = randomGraph(seed, { extended: true }).graph;
    const small = shrink(g, has, Date.now() + 60_000);
    expect(has(small)).toBe(true);
    expect(graphSize(small)).toBeLessThan(graphSize(g));
    // exp(cast(x)) of one input of one element, one output
    expect(printGraph(small).replace(/name="\w+"/, 'name="x"')).toMatch(/^graph @\S+ \{\n {2}%0 = input \{name="x"\} : \w+\[(1(,1)*)?\]\n {2}%1 = cast %0 \{dtype="float32"\} : f32\[(1(,1)*)?\]\n {2}%2 = exp %1 : f32\[(1(,1)*)?\]\n {2}output "\S+" = %2\n\}\n$/);
  });

  it('a reproducer reads back as the same graph and data seed', () => {
    const g = randomGraph(7, { extended: true }).graph;
    const text = reproText(g, { command: 'npm run fuzz -- --target loop --seeds 7..8', failure: { kind: 'ice', message: 'a\nb' }, dataSeed: 7 });
    const back = parseRepro(text);
    expect(printGraph(back.graph)).toBe(printGraph(g));
    expect(back.dataSeed).toBe(7);
  });
});
