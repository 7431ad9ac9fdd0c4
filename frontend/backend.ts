// keras.backend: session state and the gradient tape.
import { callableClass } from './layers/layer.js';
import { GradientTape as Tape } from './tape.js';

export { clearSession } from './layers/layer.js';

/** keras.backend.GradientTape(), with or without `new`. */
export const GradientTape = callableClass(Tape);
export type GradientTape = Tape;
