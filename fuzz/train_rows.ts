// Training steps with the "rows" input (the last, smaller batch of an epoch) of small random Keras models: the step
// traced for a batch of B rows and run on r <= B rows, zero-padded, must equal the step traced for r rows.
import * as keras from '../frontend/index.js';
import { type Compiled, traceTrainStep } from '../frontend/models/training.js';
import { type Graph, nodeName } from '../ir/graph.js';
import type { TypedArray } from '../ir/types.js';
import { rng } from './random_graphs.js';

type Data = Record<string, TypedArray>;

export interface TrainRows {
  /** The padded step with its updates in place. */
  readonly padded: Graph;
  /** The step traced for exactly `rows` rows (no "rows" input), and its inputs: the same rows unpadded. */
  readonly exact: Graph;
  readonly exactInputs: Data;
  readonly rows: number;
  readonly batch: number;
}

/**
 * Seed's model (1-3 Dense layers with random activations, Dropout now and then, a random loss and optimizer), its
 * padded training step at a batch of 2 to 6 with rows = 1 to the batch, the data and params to run it with.
 */
export function trainRowsStep(seed: number): { graph: Graph; inputs: Data; params: Data; trainRows: TrainRows } {
  const r = rng(seed * 7919 + 3);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // the same layer names (and weight paths) in every process, whatever ran before
  keras.backend.clearSession();
  keras.utils.setRandomSeed(seed);
  const features = int(1, 6), batch = int(2, 6), rows = int(1, batch);
  const hidden = Array.from({ length: int(0, 2) }, () => [
    keras.layers.Dense(int(1, 6), { activation: pick(['relu', 'tanh', 'sigmoid', 'linear', 'gelu', 'elu']) }),
    ...(r() < 0.3 ? [keras.layers.Dropout(pick([0.1, 0.5]))] : []),
  ]).flat();
  const loss = pick(['mse', 'mae', 'huber', 'sparse_categorical_crossentropy', 'categorical_crossentropy', 'binary_crossentropy'] as const);
  const classes = int(2, 4), units = loss === 'binary_crossentropy' ? 1 : loss.endsWith('categorical_crossentropy') ? classes : int(1, 4);
  const activation = loss === 'binary_crossentropy' ? 'sigmoid' : loss.endsWith('categorical_crossentropy') ? 'softmax' : 'linear';
  const model = keras.Sequential([keras.Input({ shape: [features] }), ...hidden, keras.layers.Dense(units, { activation })]);
  model.compile({ optimizer: pick(['sgd', 'adam', 'rmsprop', 'adamw']), loss });
  const c = model.compiled as Compiled;
  const sparse = loss === 'sparse_categorical_crossentropy';
  const yShape = (n: number) => (sparse ? [n] : [n, units]);
  const graph = traceTrainStep(model, c, [[batch, features]], [yShape(batch)], { partial: true }).graph;
  const exact = traceTrainStep(model, c, [[rows, features]], [yShape(rows)], { partial: false }).graph;
  // r rows of data; the padded step gets them followed by zero rows
  const x = Float32Array.from({ length: rows * features }, () => 4 * r() - 2);
  const labels = Array.from({ length: rows }, () => int(0, classes - 1));
  const y = sparse ? Int32Array.from(labels)
    : Float32Array.from({ length: rows * units }, (_, i) => (loss === 'categorical_crossentropy' ? Number(i % units === labels[Math.floor(i / units)]) : loss === 'binary_crossentropy' ? int(0, 1) : 4 * r() - 2));
  const padded = (a: TypedArray, width: number) => {
    const out = new (a.constructor as new (n: number) => TypedArray)(batch * width);
    out.set(a);
    return out;
  };
  const counter = Int32Array.of(int(0, 100));
  const bind = (g: Graph, xs: TypedArray, ys: TypedArray): Data => Object.fromEntries(g.inputs.map((n, i) => {
    const name = nodeName(n);
    return [name, i === 0 ? xs : i === 1 ? ys : name === 'rows' ? Int32Array.of(rows) : counter];
  }));
  const params = Object.fromEntries([...model.weights, ...c.optimizer.variables].map((v) => [v.path, v.data.slice()]));
  return {
    graph, params, inputs: bind(graph, padded(x, features), padded(y, sparse ? 1 : units)),
    trainRows: { padded: graph, exact, exactInputs: bind(exact, x, y), rows, batch },
  };
}
