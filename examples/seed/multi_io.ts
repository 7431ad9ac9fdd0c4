// Seed: 多输入多输出模型 — title and body inputs, priority and department outputs.
import * as keras from 'kiln';

const titleInput = keras.Input({ shape: [100], name: 'title' });
const bodyInput = keras.Input({ shape: [500], name: 'body' });
const titleFeatures = keras.layers.Dense(64, { activation: 'relu' })(titleInput);
const bodyFeatures = keras.layers.Dense(64, { activation: 'relu' })(bodyInput);
const x = keras.layers.concatenate([titleFeatures, bodyFeatures]);
const priorityOutput = keras.layers.Dense(1, { activation: 'sigmoid', name: 'priority' })(x);
const departmentOutput = keras.layers.Dense(4, { activation: 'softmax', name: 'department' })(x);
const model = keras.Model({
  inputs: [titleInput, bodyInput],
  outputs: [priorityOutput, departmentOutput],
});

export default model;
