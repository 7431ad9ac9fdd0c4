// A bounded search for graphs the compiler rejects or miscompiles: small random Keras models (predict and the
// fit training step on wasm, batch 1 and 3, against the interpreter backend) and random graphs rich in size-1
// axes, argmax and in-place updates (the loop interpreter under each schedule against the graph interpreter).
//   npx tsx tests/passes/compile_search.ts [--seconds 120] [--seed 1] [--keras-share 0.3] [--verbose]
// Prints each distinct failure once (its first reproducer) and the counts; exits 1 when anything failed.
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import * as keras from '../../frontend/index.js';
import { Builder, type Graph, type Node, type Update } from '../../ir/graph.js';
import { type Attrs, type Op, ShapeError } from '../../ir/ops.js';
import { printGraph } from '../../ir/printer.js';
import { type Shape, sizeOf } from '../../ir/types.js';
import { runBoth } from './differential.js';
import { randomBindings, randomGraph, rng } from './random_graphs.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = opt('seconds', 120), SEED = opt('seed', 1), KERAS_SHARE = opt('keras-share', 0.3);
const verbose = args.includes('--verbose');

// ---- random graphs with many size-1 axes, reductions over them, argmax, and updates reading their param

/** A random graph: shapes mostly of 1s and 2s, reductions and argmax over unit axes, unit reshapes and transposes. */
export function unitGraph(seed: number): Graph {
  const r = rng(seed * 104729 + 7);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const shape = (rank: number): number[] => Array.from({ length: rank }, () => pick([1, 1, 1, 2, 3]));
  const b = new Builder();
  let inputs = 0;
  const e = (op: Op, src: Node[], attrs: Attrs = {}) => b.emit(op, src, attrs);
  const bcast = (x: Node, s: Shape) => (x.type.shape.join() === s.join() ? x : e('broadcast', [x], { shape: s }));
  const floats = (x: Node) => x.type.dtype === 'float32';
  const pool: Node[] = [b.input(`x${inputs++}`, { dtype: 'float32', shape: shape(int(1, 4)) })];
  // w of two non-unit axes half the time: a transposed read of it then reads other elements than it writes
  const w = r() < 0.6 ? b.param('w', { dtype: 'float32', shape: r() < 0.5 ? [int(2, 3), int(2, 3)] : shape(int(1, 3)) }) : undefined;
  if (w) pool.push(w);
  const some = () => pool[Math.max(0, pool.length - 1 - Math.floor(Math.abs(r() - r()) * pool.length))]!;
  /** x brought to shape s: squeezed/expanded by a reshape when sizes match, else reduced to a scalar and broadcast. */
  const fit = (x: Node, s: Shape): Node => {
    if (x.type.shape.join() === s.join()) return x;
    if (sizeOf(x.type.shape) === sizeOf(s)) return e('reshape', [x], { shape: s });
    const all = [...x.type.shape.keys()];
    return bcast(e(pick(['reduce_sum', 'reduce_max'] as Op[]), [x], { axes: all, keepdims: false }), s);
  };
  const unitAxes = (x: Node) => x.type.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  const axesOf = (x: Node): number[] => {
    const rank = x.type.shape.length, units = unitAxes(x);
    if (units.length && r() < 0.6) return units.filter(() => r() < 0.7).concat(units.length ? [units[0]!] : []).filter((a, i, xs) => xs.indexOf(a) === i).sort();
    return [...Array(rank).keys()].filter(() => r() < 0.5).sort();
  };
  const steps: (() => Node)[] = [
    () => e(pick(['neg', 'exp', 'tanh', 'abs'] as Op[]), [some()]),
    () => {
      const x = some();
      return e(pick(['add', 'mul', 'sub', 'max'] as Op[]), [x, fit(some(), x.type.shape)]);
    },
    () => {
      const x = some();
      return e(pick(['reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod'] as Op[]), [x], { axes: axesOf(x), keepdims: r() < 0.5 });
    },
    () => {
      // a reduction broadcast back over its source (a softmax-like row, often of length 1)
      const x = some(), axes = axesOf(x);
      const m = e(pick(['reduce_sum', 'reduce_max'] as Op[]), [x], { axes, keepdims: true });
      return e('sub', [x, bcast(m, x.type.shape)]);
    },
    () => {
      const x = some(), s = x.type.shape, units = unitAxes(x);
      if (!s.length) return e('neg', [x]);
      const axis = units.length && r() < 0.6 ? pick(units) : int(0, s.length - 1);
      const a = e(pick(['argmax', 'argmin'] as Op[]), [x], { axis, keepdims: r() < 0.5 });
      if (r() < 0.4 && s.length) {
        // the index used to gather: argmax read at the gathered positions
        const y = some(), ax = int(0, Math.max(0, y.type.shape.length - 1));
        if (y.type.shape.length) return e('gather', [y, e('min', [e('max', [a, b.constant(0, 'int32', a.type.shape)]), b.constant(y.type.shape[ax]! - 1, 'int32', a.type.shape)])], { axis: ax });
      }
      return e('cast', [a], { dtype: 'float32' });
    },
    () => {
      // add or drop unit axes, or refactor
      const x = some(), s = x.type.shape.filter((d) => d !== 1 || r() < 0.3);
      if (r() < 0.5) s.splice(int(0, s.length), 0, 1);
      return e('reshape', [x], { shape: s });
    },
    () => {
      const x = some(), perm = [...x.type.shape.keys()].sort(() => r() - 0.5);
      return e('transpose', [x], { perm });
    },
    () => {
      const x = some(), s = x.type.shape;
      return bcast(x, s.map((d) => (d === 1 && r() < 0.5 ? int(2, 3) : d)));
    },
    () => {
      const x = some(), s = x.type.shape, k = s[s.length - 1] ?? 1;
      const a = e('reshape', [x], { shape: [sizeOf(s) / k, k] });
      const other = r() < 0.5 ? b.input(`x${inputs++}`, { dtype: 'float32', shape: [k, pick([1, 2])] }) : e('transpose', [a], { perm: [1, 0] });
      return e('matmul', [a, other]);
    },
    () => {
      const x = some(), s = x.type.shape;
      if (!s.length) return e('neg', [x]);
      const axis = s.length - 1, m = e('reduce_max', [x], { axes: [axis], keepdims: true });
      const ex = e('exp', [e('sub', [x, bcast(m, s)])]);
      return e('div', [ex, bcast(e('reduce_sum', [ex], { axes: [axis], keepdims: true }), s)]);
    },
    () => {
      const x = some(), s = x.type.shape;
      const start = s.map((d) => int(0, d - 1));
      return e('pad', [e('slice', [x], { start, end: s.map((d, i) => int(start[i]! + 1, d)), step: s.map(() => 1) })], { padding: s.map(() => [int(0, 1), int(0, 1)]), value: 0 });
    },
    () => {
      const x = b.input(`x${inputs++}`, { dtype: 'float32', shape: [1, pick([1, 2, 3]), pick([1, 2, 3]), pick([1, 2])] });
      if (r() < 0.5) return e('reduce_window', [x], { kind: pick(['max', 'sum']), window: [1, pick([1, 2])], strides: [1, 1], padding: [[0, 0], [0, 1]] });
      return e('conv', [x, b.input(`x${inputs++}`, { dtype: 'float32', shape: [1, 1, x.type.shape[3]!, pick([1, 2])] })], {
        strides: [1, 1], padding: [[0, 0], [0, 0]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1,
      });
    },
  ];
  for (let i = int(4, 12); i > 0; i--) {
    try {
      const n = pick(steps)();
      // gathers multiply ranks: values past a few thousand elements are left out (the interpreters are slow on them)
      if (floats(n) && sizeOf(n.type.shape) <= 2048 && n.type.shape.length <= 6) pool.push(n);
    } catch (err) {
      if (!(err instanceof ShapeError)) throw err;
    }
  }
  const computed = pool.filter((x) => x.op !== 'input' && x.op !== 'param');
  const outs = computed.length ? [computed[computed.length - 1]!, ...computed.filter(() => r() < 0.15)] : [e('neg', [pool[0]!])];
  const updates: Update[] = [];
  if (w) {
    // w - 0.1 g, g often read from w itself at other elements (transposed, reversed, reduced)
    const s = w.type.shape;
    const g = r() < 0.4 ? fit(e('transpose', [e('exp', [w])], { perm: [...s.keys()].reverse() }), s) : fit(pick([...computed, w]), s);
    updates.push({ param: w, value: e('sub', [w, e('mul', [b.constant(0.1, 'float32', s), g])]) });
  }
  return b.finish(`unit_${seed}`, [...new Set(outs)].map((node, i) => ({ name: `y${i}`, node })), updates);
}

// ---- random Keras models built from the public layers

type Maker = { name: string; make: (s: number[]) => { layer: keras.layers.Layer; text: string } | undefined };

/** A random Sequential model (its description for messages), input shape without the batch axis. */
export function kerasModel(seed: number): { model: keras.Model; text: string; input: number[]; classes: number } {
  const r = rng(seed * 7907 + 3);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const dim = () => pick([1, 1, 2, 3, 4, 5]);
  const act = () => pick(['relu', 'softmax', 'sigmoid', 'tanh', 'linear', 'elu', 'gelu']);
  const L = keras.layers;
  const makers: Maker[] = [
    { name: 'Dense', make: () => { const u = int(1, 5), a = act(); return { layer: L.Dense(u, { activation: a }), text: `Dense(${u}, ${a})` }; } },
    { name: 'Dropout', make: () => ({ layer: L.Dropout(0.5), text: 'Dropout(0.5)' }) },
    { name: 'Activation', make: () => { const a = act(); return { layer: L.Activation(a), text: `Activation(${a})` }; } },
    { name: 'BatchNormalization', make: () => ({ layer: L.BatchNormalization(), text: 'BatchNormalization' }) },
    { name: 'Flatten', make: (s) => (s.length > 1 ? { layer: L.Flatten(), text: 'Flatten' } : undefined) },
    {
      name: 'Reshape', make: (s) => {
        const n = sizeOf(s), shape = pick([[n], [1, n], [n, 1], [1, 1, n], [n, 1, 1], [1, n, 1]]);
        return { layer: L.Reshape(shape), text: `Reshape([${shape}])` };
      },
    },
    {
      name: 'Conv2D', make: (s) => {
        if (s.length !== 3) return undefined;
        const f = int(1, 4), k = int(1, Math.min(3, s[0]!, s[1]!)), pad = pick(['valid', 'same'] as const), st = pick([1, 1, 2]);
        return { layer: L.Conv2D(f, k, { padding: pad, strides: st, activation: pick(['relu', 'linear']) }), text: `Conv2D(${f}, ${k}, ${pad}, strides ${st})` };
      },
    },
    {
      name: 'Conv1D', make: (s) => {
        if (s.length !== 2) return undefined;
        const f = int(1, 4), k = int(1, Math.min(3, s[0]!));
        return { layer: L.Conv1D(f, k), text: `Conv1D(${f}, ${k})` };
      },
    },
    {
      name: 'Pooling2D', make: (s) => {
        if (s.length !== 3 || Math.min(s[0]!, s[1]!) < 1) return undefined;
        const p = int(1, Math.min(2, s[0]!, s[1]!)), max = r() < 0.5, pad = pick(['valid', 'same'] as const);
        return { layer: max ? L.MaxPooling2D(p, { padding: pad }) : L.AveragePooling2D(p, { padding: pad }), text: `${max ? 'Max' : 'Average'}Pooling2D(${p}, ${pad})` };
      },
    },
    {
      name: 'Pooling1D', make: (s) => {
        if (s.length !== 2) return undefined;
        const p = int(1, Math.min(2, s[0]!)), max = r() < 0.5;
        return { layer: max ? L.MaxPooling1D(p) : L.AveragePooling1D(p), text: `${max ? 'Max' : 'Average'}Pooling1D(${p})` };
      },
    },
    {
      name: 'GlobalPooling', make: (s) => {
        const max = r() < 0.5, kind = max ? 'Max' : 'Average';
        if (s.length === 2) return { layer: max ? L.GlobalMaxPooling1D() : L.GlobalAveragePooling1D(), text: `Global${kind}Pooling1D` };
        if (s.length === 3) return { layer: max ? L.GlobalMaxPooling2D() : L.GlobalAveragePooling2D(), text: `Global${kind}Pooling2D` };
        return undefined;
      },
    },
  ];
  const cnn = r() < 0.4;
  const rank = cnn ? 3 : pick([1, 2, 3, 3]);
  const input = cnn ? [int(3, 6), int(3, 6), int(1, 2)] : Array.from({ length: rank }, () => (rank === 3 ? pick([1, 2, 3, 4, 5]) : dim()));
  const inp = keras.Input({ shape: input });
  let t = inp;
  const texts = [`Input([${input}])`];
  const add = (layer: keras.layers.Layer, text: string): boolean => {
    try {
      const out = (layer as unknown as (x: keras.KerasTensor) => keras.KerasTensor)(t);
      if (out.shape.slice(1).some((d) => !((d ?? 0) > 0))) return false;
      t = out;
      texts.push(text);
      return true;
    } catch {
      return false;
    }
  };
  // a small CNN (conv, maybe normalized and pooled, then global pooling or flatten), or any layers that fit
  const byName = (name: string) => makers.find((m) => m.name === name)!;
  const plan = cnn ? ['Conv2D', ...(r() < 0.6 ? ['BatchNormalization'] : []), ...(r() < 0.6 ? ['Pooling2D'] : []), pick(['GlobalPooling', 'Flatten'])]
    : Array.from({ length: int(2, 6) }, () => pick(makers).name);
  for (const name of plan) {
    const m = byName(name).make(t.shape.slice(1) as number[]);
    if (m) add(m.layer, m.text);
  }
  if (t.shape.length > 2) add(L.Flatten(), 'Flatten');
  const classes = int(2, 3);
  add(L.Dense(classes, { activation: 'softmax' }), `Dense(${classes}, softmax)`);
  return { model: keras.Model({ inputs: inp, outputs: t }), text: texts.join(' → '), input, classes };
}

/** Elements of a and b further apart than 1e-4 + 1e-3 |b| (NaN must match NaN). */
function far(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (!(Number.isNaN(y) ? Number.isNaN(x) : Math.abs(x - y) <= 1e-4 + 1e-3 * Math.abs(y))) n++;
  }
  return n;
}

/** Problems of one Keras model: predict and fit on wasm at batch 1 and 3 against the interpreter backend. */
function checkKeras(seed: number): { text: string; problems: string[] } {
  const { model, text, input, classes } = kerasModel(seed);
  const r = rng(seed);
  const x = new keras.Tensor('float32', [3, ...input], Float32Array.from({ length: 3 * sizeOf(input) }, () => 2 * r() - 1));
  const y = new keras.Tensor('int32', [3], Int32Array.from({ length: 3 }, () => Math.floor(r() * classes)));
  const problems: string[] = [];
  const w0 = model.getWeights();
  for (const batchSize of [1, 3]) {
    try {
      const got = model.predict(x, { batchSize, backend: 'wasm' }) as keras.Tensor;
      const want = model.predict(x, { batchSize, backend: 'interpreter' }) as keras.Tensor;
      if (far(got.data, want.data)) problems.push(`predict batch ${batchSize}: wasm differs from the interpreter`);
    } catch (err) {
      problems.push(`predict batch ${batchSize}: ${(err as Error).message}`);
    }
    const after: keras.Tensor[][] = [];
    for (const backend of ['wasm', 'interpreter'] as const) {
      model.setWeights(w0);
      model.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.01 }), loss: 'sparse_categorical_crossentropy' });
      try {
        model.fit(x, y, { batchSize, epochs: 1, shuffle: false, verbose: 0, backend });
        after.push(model.getWeights());
      } catch (err) {
        problems.push(`fit batch ${batchSize} on ${backend}: ${(err as Error).message}`);
      }
    }
    if (after.length === 2 && after[0]!.some((t, i) => far(t.data, after[1]![i]!.data))) problems.push(`fit batch ${batchSize}: wasm weights differ from the interpreter's`);
  }
  return { text, problems };
}

const SCHEDULES: [string, TargetCaps][] = [['wasm', WASM_CAPS], ['llvm', LLVM_CAPS], ['cuda', CUDA_CAPS]];

/** Problems of one graph on the loop interpreter under each schedule (a -0 against 0 is told apart). */
function checkGraph(g: Graph, seed: number): string[] {
  const [inputs, ps] = randomBindings(g, seed);
  const problems: string[] = [];
  for (const [name, caps] of SCHEDULES) {
    try {
      const d = runBoth(g, Object.fromEntries(inputs), Object.fromEntries(ps), caps).diffs;
      if (d.length) problems.push(`${name}: ${d.every((l) => /loop -?0, graph -?0$/.test(l) || / elements differ$/.test(l)) ? 'sign of zero differs' : 'differs from the interpreter'}`);
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return problems;
}

/** A failure's class: its message with value numbers, shapes and index patterns blanked. */
const classOf = (p: string) => p.replace(/%\d+/g, '%N').replace(/\[[^\]]*\]/g, '[…]').replace(/\d+/g, 'N');

function main(): void {
  const end = Date.now() + SECONDS * 1000;
  const seen = new Map<string, number>();
  const counts = { keras: 0, kerasFailed: 0, graphs: 0, graphsFailed: 0 };
  const report = (what: string, problems: string[], repro: () => string) => {
    const fresh = problems.filter((p) => {
      const c = classOf(p);
      seen.set(c, (seen.get(c) ?? 0) + 1);
      return seen.get(c) === 1;
    });
    if (fresh.length || (verbose && problems.length)) console.log(`\n${what}:\n  ${problems.join('\n  ')}\n${repro()}`);
  };
  const r = rng(SEED);
  for (let i = 0; Date.now() < end; i++) {
    const seed = SEED * 1_000_003 + i;
    if (args.includes('--trace')) process.stderr.write(`${seed} `);
    if (r() < KERAS_SHARE) {
      const { text, problems } = checkKeras(seed);
      counts.keras++;
      if (problems.length) counts.kerasFailed++;
      report(`keras model ${seed}`, problems, () => text);
    } else {
      const g = r() < 0.5 ? unitGraph(seed) : randomGraph(seed).graph;
      const problems = checkGraph(g, seed);
      counts.graphs++;
      if (problems.length) counts.graphsFailed++;
      report(`graph ${g.name}`, problems, () => printGraph(g));
    }
  }
  console.log(`\n${counts.keras} Keras models (${counts.kerasFailed} failing), ${counts.graphs} graphs (${counts.graphsFailed} failing) in ${SECONDS} s`);
  for (const [c, n] of [...seen].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(6)}  ${c}`);
  process.exitCode = counts.kerasFailed + counts.graphsFailed ? 1 : 0;
}

if (process.argv[1]?.endsWith("compile_search.ts")) main();
