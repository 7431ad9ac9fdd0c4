// Executes traced graphs: compiled to wasm once per graph (the default) or on the reference interpreter.
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { runPipeline } from '../../driver/pipeline.js';
import { type Backend, checkBackend, backend as defaultBackend } from '../config.js';

export type Values = Record<string, TypedArray>;

export interface Runner {
  run(inputs: Values, params: Values): { outputs: Map<string, TypedArray>; updates: Map<string, TypedArray> };
}

const interpreterRunners = new WeakMap<Graph, Runner>();
const wasmRunners = new WeakMap<Graph, Runner>();

function interpreterRunner(g: Graph): Runner {
  return {
    run(inputs, params) {
      const r = interpret(g, inputs, params);
      return {
        outputs: new Map([...r.outputs].map(([k, v]) => [k, v.data])),
        updates: new Map([...r.updates].map(([k, v]) => [k, v.data])),
      };
    },
  };
}

/** The runner of a graph on a backend, built on first use and cached with the graph. */
export function runnerFor(g: Graph, b: Backend = defaultBackend()): Runner {
  checkBackend(b, 'backend');
  const cache = b === 'wasm' ? wasmRunners : interpreterRunners;
  let r = cache.get(g);
  if (!r) {
    if (b === 'wasm') {
      const c = runPipeline(g);
      r = new WasmRunner(c.program, renderWasm(c.program, c.memory));
    } else {
      r = interpreterRunner(g);
    }
    cache.set(g, r);
  }
  return r;
}
