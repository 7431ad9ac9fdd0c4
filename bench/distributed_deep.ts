// bench/distributed.sh's second model: an MLP whose last layers hold half its gradients (784-256-256-256-10, Adam),
// so that reducing them can overlap the first layer's backward pass.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(256, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dense(256, { activation: 'relu' }),
  keras.layers.Dense(256, { activation: 'relu' }),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });

export default model;
