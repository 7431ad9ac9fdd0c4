// Seed: 注意力层 (MultiHeadAttention, Transformer) — one Transformer encoder block over a sequence of vectors:
// self-attention and a feed-forward network, each with a residual connection and layer normalization.
import * as keras from 'kiln';

const inputs = keras.Input({ shape: [16, 32] });
const attention = keras.layers.MultiHeadAttention({ numHeads: 4, keyDim: 8 })([inputs, inputs]);
const h = keras.layers.LayerNormalization({ epsilon: 1e-6 })(keras.layers.Add()([inputs, attention]));
let ff = keras.layers.Dense(64, { activation: 'relu' })(h);
ff = keras.layers.Dense(32)(ff);
const encoded = keras.layers.LayerNormalization({ epsilon: 1e-6 })(keras.layers.Add()([h, ff]));
const outputs = keras.layers.Dense(3, { activation: 'softmax' })(keras.layers.GlobalAveragePooling1D()(encoded));
const model = keras.Model({ inputs, outputs });
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });

export default model;
