// keras.backend: session state.
export { clearSession } from './layers/layer.js';
