// Seed: Dense 层详解 — kernel and bias shapes and the parameter count of Dense(64) on 32 inputs.
import * as keras from 'kiln';

const dense = keras.layers.Dense(64, { activation: 'relu', inputShape: [32] });
const model = keras.Sequential([dense]);
console.log(`权重形状: ${dense.kernel.shape}`);
console.log(`偏置形状: ${dense.bias!.shape}`);
console.log(`总参数: ${dense.countParams()}`);

export default model;
