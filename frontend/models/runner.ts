// Executes traced graphs: compiled to wasm once per graph (the default) or on the reference interpreter.
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { runPipeline } from '../../driver/pipeline.js';
import { type Backend, checkBackend, backend as defaultBackend } from '../config.js';

export type Values = Record<string, TypedArray>;

export interface Runner {
  run(inputs: Values, params: Values): { outputs: Map<string, TypedArray>; updates: Map<string, TypedArray> };
}

/**
 * The wasm renderer, which loads binaryen (seconds on a loaded machine). `kiln compile` sets the global flag below
 * where the model file calls no predict, fit or evaluate, so that the llvm and cuda targets never load it; a model
 * run eagerly there after all runs on the interpreter, which gives the same bits (the differential tests), only slower.
 */
const renderer = (globalThis as Record<symbol, unknown>)[Symbol.for('kiln.deferWasm')] ? undefined : await import('../../codegen/wasm/render.js');

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
  const cache = b === 'wasm' && renderer ? wasmRunners : interpreterRunners;
  let r = cache.get(g);
  if (!r) {
    if (b === 'wasm' && renderer) {
      const c = runPipeline(g);
      r = new WasmRunner(c.program, renderer.renderWasm(c.program, c.memory));
    } else {
      r = interpreterRunner(g);
    }
    cache.set(g, r);
  }
  return r;
}
