// bench/syncbn.sh's model: the seed MLP with a BatchNormalization after its hidden layer, synchronized when KILN_SYNC_BN=1.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(64, { inputShape: [784] }),
  keras.layers.BatchNormalization({ synchronized: process.env['KILN_SYNC_BN'] === '1' }),
  keras.layers.Activation('relu'),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
export default model;
