// A small MLP for the distributed-training tests: no Dropout, so 1 rank and k ranks train on the same function.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(32, { activation: 'relu', inputShape: [64] }),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });

export default model;
