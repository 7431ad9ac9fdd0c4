import * as keras from 'kiln';
const model = keras.Sequential([
  keras.Input({ shape: [200], dtype: 'int32' }),
  keras.layers.Embedding(10000, 64),
  keras.layers.LSTM(128),
  keras.layers.Dense(1, { activation: 'sigmoid' }),
]);
model.compile({ optimizer: 'adam', loss: 'binary_crossentropy' });
export default model;
