// A small CNN on 28x28 grayscale images: Conv2D, MaxPooling2D, Conv2D, GlobalAveragePooling2D, Dense softmax.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
  keras.layers.MaxPooling2D(2),
  keras.layers.Conv2D(16, 3, { activation: 'relu' }),
  keras.layers.GlobalAveragePooling2D(),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });

export default model;
