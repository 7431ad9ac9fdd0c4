// Seed: 激活函数使用 — activations as strings, functions, and Activation layers.
import * as keras from 'kiln';

export const byArgument = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu' }),
  keras.layers.Dense(64, { activation: keras.activations.relu }),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

export const byLayer = keras.Sequential([
  keras.layers.Dense(64),
  keras.layers.Activation('relu'),
  keras.layers.Dense(10),
  keras.layers.Activation('softmax'),
]);

// The seed leaves the input shape to the first call; build both for 784 features so they can be compiled.
byArgument.build([null, 784]);
byLayer.build([null, 784]);

export default byLayer;
