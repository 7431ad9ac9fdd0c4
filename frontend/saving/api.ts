// keras.saving: loadModel for `.keras` files (the model's own save/saveWeights/loadWeights methods do the rest).
import type { Model } from '../models/model.js';

/**
 * Loads a `.keras` file written by Python Keras 3 or by kiln's `model.save`: a Sequential or Functional model with its weights.
 * @example const model = await keras.saving.loadModel('model.keras');
 */
export async function loadModel(file: string): Promise<Model> {
  return (await import('./index.js')).loadModel(file);
}
