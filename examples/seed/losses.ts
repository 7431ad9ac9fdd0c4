// Seed: 损失函数使用 — the three compile calls (string loss, loss object with 'mae', binary crossentropy).
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

model.compile({
  optimizer: 'adam',
  loss: 'sparse_categorical_crossentropy',
  metrics: ['accuracy'],
});

model.compile({
  optimizer: 'adam',
  loss: keras.losses.MeanSquaredError(),
  metrics: ['mae'],
});

model.compile({
  optimizer: 'adam',
  loss: keras.losses.BinaryCrossentropy(),
  metrics: ['accuracy'],
});

model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });

export default model;
