// kiln's wasm thread worker, copied into every wasm artifact beside model.mjs: runs chunks of parallel loops.
import { workerMain } from './model.mjs';

workerMain();
