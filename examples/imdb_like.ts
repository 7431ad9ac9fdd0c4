// Text classification on synthetic reviews (`npm run build && node dist/examples/imdb_like.js`, or compiled:
// `kiln compile examples/imdb_like.ts --train --target llvm -o build/imdb` and `build/imdb/model_train`): variable-length token
// sequences padded with 0, labelled by whether "positive" or "negative" tokens are in the majority; an
// Embedding(maskZero) -> Bidirectional(LSTM) -> Dense(sigmoid) model trained with EarlyStopping.
import { pathToFileURL } from 'node:url';
import * as keras from 'kiln';

/** Token ids: 0 pads, 1-9 are "positive" words, 10-18 "negative" ones, the rest neutral. */
export const VOCAB = 40;
const POSITIVE = [1, 9], NEGATIVE = [10, 18];

export interface ReviewsOptions {
  count: number;
  /** Sequences are padded (at the end, with 0) to this length. */
  maxLen: number;
  seed: number;
}

/** Synthetic reviews: each of 6 to maxLen tokens; the label is 1 when positive tokens outnumber negative ones. */
export function makeReviews({ count, maxLen, seed }: ReviewsOptions): { x: keras.Tensor; y: keras.Tensor } {
  let s = seed >>> 0;
  const rand = (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
  const ids = new Int32Array(count * maxLen), labels = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const len = 6 + rand(maxLen - 5);
    let score = 0;
    for (let t = 0; t < len; t++) {
      // a third of the words carry sentiment; the last word breaks a tie
      const kind = t === len - 1 && score === 0 ? 1 + rand(2) : rand(6);
      const [lo, hi] = kind === 1 ? POSITIVE : kind === 2 ? NEGATIVE : [NEGATIVE[1]! + 1, VOCAB - 1];
      ids[i * maxLen + t] = lo! + rand(hi! - lo! + 1);
      score += kind === 1 ? 1 : kind === 2 ? -1 : 0;
    }
    labels[i] = score > 0 ? 1 : 0;
  }
  return { x: keras.ops.reshape(keras.ops.array(ids), [count, maxLen]), y: keras.ops.reshape(keras.ops.array(labels), [count, 1]) };
}

/** The classifier: padding masked from the embedding on, so the LSTMs read only the real words in both directions. */
export function makeModel(maxLen: number): keras.Sequential {
  return keras.Sequential([
    keras.Input({ shape: [maxLen], dtype: 'int32' }),
    keras.layers.Embedding(VOCAB, 8, { maskZero: true }),
    keras.layers.Bidirectional(keras.layers.LSTM(8)),
    keras.layers.Dense(1, { activation: 'sigmoid' }),
  ]);
}

/** The model of `kiln compile examples/imdb_like.ts [--train]`: sequences of 24 tokens, compiled for training. */
const compiled = makeModel(24);
compiled.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.02 }), loss: 'binary_crossentropy', metrics: ['accuracy'] });
export default compiled;

/** Trains with EarlyStopping on the validation loss; returns the History and the held-out accuracy. */
export function train(options: { count?: number; maxLen?: number; epochs?: number; verbose?: 0 | 1 | 2 } = {}) {
  const { count = 1200, maxLen = 24, epochs = 20, verbose = 2 } = options;
  keras.utils.setRandomSeed(3);
  const data = makeReviews({ count, maxLen, seed: 11 }), test = makeReviews({ count: 500, maxLen, seed: 12 });
  const model = makeModel(maxLen);
  model.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.02 }), loss: 'binary_crossentropy', metrics: ['accuracy'] });
  const history = model.fit(data.x, data.y, {
    epochs, batchSize: 32, validationSplit: 0.2, verbose,
    callbacks: [keras.callbacks.EarlyStopping({ monitor: 'val_loss', patience: 2, restoreBestWeights: true })],
  });
  const [loss, accuracy] = model.evaluate(test.x, test.y, { verbose: 0 });
  return { model, history, loss: loss!, accuracy: accuracy! };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = Date.now();
  const { history, accuracy } = train();
  const seconds = (Date.now() - t0) / 1000;
  console.log(`\n${history.epoch.length} epochs in ${seconds.toFixed(1)} s on the ${keras.config.backend()} backend`);
  console.log(`held-out accuracy: ${(accuracy * 100).toFixed(1)}%`);
}
