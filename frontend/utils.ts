// keras.utils: seeding and small helpers.
import { globalRng } from './engine.js';

/** Seeds every initializer and layer seed drawn afterwards (Keras's keras.utils.set_random_seed). */
export function setRandomSeed(seed: number): void {
  globalRng.setSeed(seed);
}
