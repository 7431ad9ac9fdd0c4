// Seed: 循环层 (LSTM, GRU, SimpleRNN) — a sequence classifier: word ids -> Embedding -> LSTM -> GRU -> softmax.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Embedding(1000, 32, { inputShape: [20] }),
  keras.layers.LSTM(32, { returnSequences: true }),
  keras.layers.GRU(16),
  keras.layers.Dense(4, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });

export default model;
