// Small random Keras models (--keras): sequence models (Embedding with a mask or Masking, SimpleRNN / LSTM / GRU as
// scans, unrolled now and then, backwards, Bidirectional) or image models (Conv2D, max and average pooling,
// BatchNormalization), Dropout, a Dense head; their predict graph, fused training step, or the split step's gradStep
// or applyGrads, the split step first checked against the fused one on the interpreter.
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { type Compiled, traceSplitStep, traceTrainStep } from '../frontend/models/training.js';
import { type Graph, nodeName } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import type { SymbolicShape } from '../frontend/tensor.js';
import { rng } from './random_graphs.js';

type Data = Record<string, TypedArray>;

/** Which graph of the model a case runs. */
export type KerasKind = 'predict' | 'train' | 'grad' | 'apply';

export interface KerasStep {
  readonly kind: KerasKind;
  readonly graph: Graph;
  readonly inputs: Data;
  readonly params: Data;
  /** Training kinds: the fused step and the split one, and the data to run both on the interpreter. */
  readonly split?: { fused: Graph; grad: Graph; apply: Graph; inputs: Data };
  /** What the model is, for messages. */
  readonly summary: string;
}

/** The outputs of gradStep before the preds, side by side: applyGrads's "grads" input (as model_train copies them). */
export function flatGrads(outputs: ReadonlyMap<string, { data: TypedArray }>): Float32Array {
  const values = [...outputs].filter(([name]) => !name.startsWith('pred/'));
  const flat = new Float32Array(values.reduce((n, [, v]) => n + v.data.length, 0));
  let at = 0;
  for (const [, v] of values) { flat.set(v.data, at); at += v.data.length; }
  return flat;
}

/**
 * The split step on the interpreter against the fused one: gradStep's loss and preds, and applyGrads's updates from
 * gradStep's flat outputs, bit for bit. Returns the differences (empty when they agree).
 */
export function splitDifferences(s: NonNullable<KerasStep['split']>, params: Data): string[] {
  const fused = interpret(s.fused, s.inputs, params), g = interpret(s.grad, s.inputs, params);
  const a = interpret(s.apply, { grads: flatGrads(g.outputs) }, params);
  const out: string[] = [];
  const same = (what: string, want: TypedArray | undefined, have: TypedArray | undefined) => {
    if (!want || !have || want.length !== have.length) return out.push(`${what}: ${have?.length ?? 'missing'} elements, fused ${want?.length ?? 'missing'}`);
    const i = want.findIndex((v, k) => !Object.is(v, have[k]));
    if (i >= 0) out.push(`${what}[${i}]: split ${have[i]}, fused ${want[i]}`);
    return 0;
  };
  for (const [name, v] of fused.updates) same(`param ${name}`, v.data, a.updates.get(name)?.data);
  if (a.updates.size !== fused.updates.size) out.push(`applyGrads updates ${a.updates.size} params, the fused step ${fused.updates.size}`);
  for (const [name, v] of fused.outputs) if (name === 'loss' || name.startsWith('pred/')) same(`output ${name}`, v.data, g.outputs.get(name)?.data);
  same('applyGrads loss', fused.outputs.get('loss')?.data, a.outputs.get('loss')?.data);
  return out.slice(0, 6);
}

/** What a seed builds: a sequence model or an image model, half and half (from a stream of its own: a seed's model is the same either way). */
export type KerasFamily = 'sequence' | 'image';

export function kerasFamily(seed: number): KerasFamily {
  return rng(seed * 7919 + 11)() < 0.5 ? 'image' : 'sequence';
}

type Draw = { r: () => number; int: (lo: number, hi: number) => number; pick: <T>(xs: readonly T[]) => T };

/** A model's input and layers up to the Dense head, its batch, and its data (drawn after the head's choices). */
interface Body {
  readonly input: unknown;
  readonly layers: unknown[];
  readonly parts: string[];
  readonly batch: number;
  readonly xShape: number[];
  readonly x: () => TypedArray;
  /** The data's sizes, for the summary. */
  readonly sizes: string;
}

/** Token ids or float sequences; Embedding with a mask or Masking; 1-2 recurrent layers; pooling when they return sequences. */
function sequenceBody({ r, int, pick }: Draw): Body {
  const time = int(1, 5), batch = int(1, 4), tokens = r() < 0.4, vocab = int(2, 6), features = int(1, 3);
  const parts: string[] = [];
  const layers: unknown[] = [];
  const input = tokens ? keras.Input({ shape: [time], dtype: 'int32' }) : keras.Input({ shape: [time, features] });
  if (tokens) {
    const maskZero = r() < 0.6;
    layers.push(keras.layers.Embedding(vocab, int(1, 4), { maskZero }));
    parts.push(`Embedding(${vocab}${maskZero ? ', maskZero' : ''})`);
  } else if (r() < 0.4) {
    layers.push(keras.layers.Masking({ maskValue: 0 }));
    parts.push('Masking');
  }
  const nRnn = int(1, 2);
  let sequences = false;
  for (let i = 0; i < nRnn; i++) {
    const cls = pick(['SimpleRNN', 'LSTM', 'GRU'] as const), units = int(1, 4);
    sequences = i < nRnn - 1 || r() < 0.4;
    const opts = {
      returnSequences: sequences, goBackwards: r() < 0.3, unroll: r() < 0.15, useBias: r() < 0.85,
      activation: pick(['tanh', 'tanh', 'relu', 'sigmoid'] as const),
      ...(cls === 'GRU' ? { resetAfter: r() < 0.6 } : {}),
    };
    const rnn = cls === 'SimpleRNN' ? keras.layers.SimpleRNN(units, opts) : cls === 'LSTM' ? keras.layers.LSTM(units, opts) : keras.layers.GRU(units, opts);
    const bidi = r() < 0.25 ? pick(['concat', 'sum', 'mul', 'ave'] as const) : undefined;
    layers.push(bidi ? keras.layers.Bidirectional(rnn, { mergeMode: bidi }) : rnn);
    parts.push(`${bidi ? `Bidirectional[${bidi}](` : ''}${cls}(${units}${Object.entries(opts).filter(([k, v]) => k !== 'returnSequences' && v === true).map(([k]) => `, ${k}`).join('')}, ${opts.activation})${bidi ? ')' : ''}${sequences ? ' seq' : ''}`);
    if (r() < 0.2) { layers.push(keras.layers.Dropout(pick([0.1, 0.5]))); parts.push('Dropout'); }
  }
  if (sequences) {
    const pool = pick(['GlobalAveragePooling1D', 'GlobalMaxPooling1D', 'Flatten'] as const);
    layers.push(pool === 'Flatten' ? keras.layers.Flatten() : pool === 'GlobalAveragePooling1D' ? keras.layers.GlobalAveragePooling1D() : keras.layers.GlobalMaxPooling1D());
    parts.push(pool);
  }
  // token ids with zeros (padding) likelier; float steps sometimes all zero (Masking's masked steps)
  const x = () => {
    const x = tokens ? Int32Array.from({ length: batch * time }, () => (r() < 0.3 ? 0 : int(0, vocab - 1)))
      : Float32Array.from({ length: batch * time * features }, (_, i) => (Math.floor(i / features) % 3 === 2 && r() < 0.5 ? 0 : 4 * r() - 2));
    if (!tokens) for (let s = 0; s < batch * time; s++) if (r() < 0.25) x.fill(0, s * features, (s + 1) * features);
    return x;
  };
  return { input, layers, parts, batch, xShape: tokens ? [batch, time] : [batch, time, features], x, sizes: `time ${time}` };
}

/**
 * NHWC images of 3-12 pixels a side and 1-3 channels; 1-3 Conv2D (kernel 1-3, strides 1-2, same or valid), each
 * followed now and then by BatchNormalization, max or average pooling (pool 2-3, strides 1-3), Dropout; a pooling
 * first now and then; then global average or max pooling or Flatten. A layer whose window the image has become
 * smaller than (valid padding: the frontend refuses it) is left out.
 */
function imageBody({ r, int, pick }: Draw): Body {
  const batch = int(1, 4), h = int(3, 12), w = r() < 0.5 ? h : int(3, 12), channels = int(1, 3);
  const parts: string[] = [];
  const layers: unknown[] = [];
  const input = keras.Input({ shape: [h, w, channels] });
  let shape: SymbolicShape = [null, h, w, channels];
  const add = (layer: { computeOutputShape(s: SymbolicShape): unknown }, text: string) => {
    try {
      shape = layer.computeOutputShape(shape) as SymbolicShape;
    } catch {
      parts.push(`(${text} left out)`); // its window is larger than the image
      return;
    }
    layers.push(layer);
    parts.push(text);
  };
  const window = (lo: number, hi: number): number | [number, number] => (r() < 0.75 ? int(lo, hi) : [int(lo, hi), int(lo, hi)]);
  const show = (v: number | readonly number[]) => (typeof v === 'number' ? `${v}` : `[${v.join(', ')}]`);
  const pool = () => {
    const max = r() < 0.5, size = window(2, 3), strides = window(1, 3), padding = pick(['same', 'valid'] as const);
    const opts = { strides, padding };
    add(max ? keras.layers.MaxPooling2D(size, opts) : keras.layers.AveragePooling2D(size, opts),
      `${max ? 'Max' : 'Average'}Pooling2D(${show(size)}, strides ${show(strides)}, ${padding})`);
  };
  if (r() < 0.2) pool();
  const nConv = int(1, 3);
  for (let i = 0; i < nConv; i++) {
    const filters = int(1, 4), kernel = window(1, 3), strides = window(1, 2), padding = pick(['same', 'valid'] as const);
    const activation = pick(['relu', 'tanh', undefined] as const), useBias = r() < 0.8;
    add(keras.layers.Conv2D(filters, kernel, { strides, padding, useBias, ...(activation ? { activation } : {}) }),
      `Conv2D(${filters}, ${show(kernel)}, strides ${show(strides)}, ${padding}${activation ? `, ${activation}` : ''}${useBias ? '' : ', no bias'})`);
    if (r() < 0.25) add(keras.layers.BatchNormalization(), 'BatchNormalization');
    if (r() < 0.5) pool();
    if (r() < 0.15) add(keras.layers.Dropout(pick([0.1, 0.5])), 'Dropout');
  }
  const head = pick(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten'] as const);
  layers.push(head === 'Flatten' ? keras.layers.Flatten() : head === 'GlobalAveragePooling2D' ? keras.layers.GlobalAveragePooling2D() : keras.layers.GlobalMaxPooling2D());
  parts.push(head);
  // now and then values in halves (ties in max pooling), and images that are zero (ties everywhere)
  const x = () => {
    const halves = r() < 0.3;
    const x = Float32Array.from({ length: batch * h * w * channels }, () => (halves ? Math.round(4 * r() - 2) / 2 : 4 * r() - 2));
    for (let b = 0; b < batch; b++) if (r() < 0.1) x.fill(0, b * h * w * channels, (b + 1) * h * w * channels);
    return x;
  };
  return { input, layers, parts, batch, xShape: [batch, h, w, channels], x, sizes: `image ${h}x${w}x${channels}` };
}

/** Seed's model (of `family`, by default the seed's), the graph of one kind, and random data. */
export function kerasStep(seed: number, family: KerasFamily = kerasFamily(seed)): KerasStep {
  const r = rng(seed * 7919 + 5);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // the same layer names (and weight paths) in every process, whatever ran before
  keras.backend.clearSession();
  keras.utils.setRandomSeed(seed);
  const { input, layers, parts, batch, xShape, sizes, ...body } = (family === 'image' ? imageBody : sequenceBody)({ r, int, pick });
  const loss = pick(['mse', 'mae', 'huber', 'sparse_categorical_crossentropy', 'categorical_crossentropy', 'binary_crossentropy'] as const);
  const classes = int(2, 4), units = loss === 'binary_crossentropy' ? 1 : loss.endsWith('categorical_crossentropy') ? classes : int(1, 3);
  const activation = loss === 'binary_crossentropy' ? 'sigmoid' : loss.endsWith('categorical_crossentropy') ? 'softmax' : pick(['linear', 'tanh'] as const);
  const model = keras.Sequential([input, ...layers, keras.layers.Dense(units, { activation })] as Parameters<typeof keras.Sequential>[0]);
  const optimizer = pick(['sgd', 'adam', 'rmsprop', 'adamw'] as const);
  model.compile({ optimizer, loss });
  parts.push(`Dense(${units}, ${activation}); ${loss}, ${optimizer}; batch ${batch}, ${sizes}`);
  const c = model.compiled as Compiled;
  const sparse = loss === 'sparse_categorical_crossentropy';
  const yShape = sparse ? [batch] : [batch, units];
  const x = body.x();
  const labels = Array.from({ length: batch }, () => int(0, classes - 1));
  const y = sparse ? Int32Array.from(labels)
    : Float32Array.from({ length: batch * units }, (_, i) => (loss === 'categorical_crossentropy' ? Number(i % units === labels[Math.floor(i / units)]) : loss === 'binary_crossentropy' ? int(0, 1) : 4 * r() - 2));
  const counter = Int32Array.of(int(0, 100));
  // gradStep's "rng_row" (a rank's first row, Dropout's offset in the batch's draw): 0 to check it against the fused
  // step, some rank's first row (from the counter, not r(): the seeds keep their models) on the targets
  const firstRow = (rank: boolean) => Int32Array.of(rank ? (counter[0]! % 4) * batch : 0);
  const bind = (g: Graph, rank = true): Data => Object.fromEntries(g.inputs.map((n, i) =>
    [nodeName(n), i === 0 ? x : nodeName(n).startsWith('target/') ? y : nodeName(n) === 'rng_row' ? firstRow(rank) : counter]));
  const kind = pick(['predict', 'train', 'train', 'grad', 'apply'] as const);
  const summary = `${kind} of ${parts.join(', ')}`;
  if (kind === 'predict') {
    const { graph, variables } = traceModel(model, batch);
    return { kind, graph, inputs: bind(graph), params: Object.fromEntries(variables.map((v) => [v.path, v.data.slice()])), summary };
  }
  const fused = traceTrainStep(model, c, [xShape], [yShape]).graph;
  const { grad, apply } = traceSplitStep(model, c, [xShape], [yShape]);
  const params = Object.fromEntries([...model.weights, ...c.optimizer.variables].map((v) => [v.path, v.data.slice()]));
  const inputs = bind(fused), split = { fused, grad, apply, inputs: { ...inputs, ...bind(grad, false) } };
  if (kind === 'train') return { kind, graph: fused, inputs, params, split, summary };
  if (kind === 'grad') return { kind, graph: grad, inputs: bind(grad), params, split, summary };
  // applyGrads on gradStep's own flat outputs, as one rank would
  return { kind, graph: apply, inputs: { grads: flatGrads(interpret(grad, bind(grad, false), params).outputs) }, params, split, summary };
}
