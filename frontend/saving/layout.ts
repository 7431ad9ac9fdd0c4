// Where Keras 3 keeps a model's weights: its layer order, the HDF5 group of each layer and the variables in each group.
import type { Variable } from '../tensor.js';
import type { AnyLayer, KerasTensor, LayerCall } from '../layers/layer.js';
import { InputLayer } from '../layers/core.js';
import type { Bidirectional, TimeDistributed } from '../layers/wrappers.js';
import { Functional, type Model } from '../models/model.js';

/** One HDF5 group of a layer's variables: its path below the layer's group, Keras's `name` attribute, the variables in order. */
export interface VarGroup {
  readonly path: string;
  readonly name: string;
  readonly vars: readonly Variable[];
}

/** A layer as Keras's weights file holds it: `layers/<key>`, the key being the snake-cased class name, numbered per class. */
export interface LayerEntry {
  readonly layer: AnyLayer;
  readonly key: string;
  readonly groups: readonly VarGroup[];
}

/** keras.src.utils.naming.to_snake_case */
export function toSnakeCase(name: string): string {
  return name.replace(/(.)([A-Z][a-z]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * The model's layers in Keras's order: Sequential's stack; a functional model's layers by decreasing depth from the
 * outputs, ties in first-visit order of a depth-first walk from the outputs (keras/src/ops/function.py map_graph).
 * Keras names the weight groups after this order, so a file must follow it to load in Keras.
 */
export function kerasLayers(model: Model): AnyLayer[] {
  if (!(model instanceof Functional)) return model.layers.filter((l) => !(l instanceof InputLayer));
  const index = new Map<AnyLayer, number>();
  const finished: LayerCall[] = [];
  const seen = new Set<LayerCall>();
  const walk = (t: KerasTensor): void => {
    const call = t.history!;
    if (!index.has(call.layer)) index.set(call.layer, index.size);
    if (seen.has(call)) return;
    seen.add(call);
    for (const i of call.inputs) walk(i);
    finished.push(call);
  };
  for (const o of model.outputs) walk(o);
  const nodeDepth = new Map<LayerCall, number>();
  const layerDepth = new Map<AnyLayer, number>();
  for (const call of [...finished].reverse()) {
    const depth = Math.max(nodeDepth.get(call) ?? 0, layerDepth.get(call.layer) ?? 0);
    layerDepth.set(call.layer, depth);
    nodeDepth.set(call, depth);
    for (const i of call.inputs) nodeDepth.set(i.history!, Math.max(depth + 1, nodeDepth.get(i.history!) ?? 0));
  }
  for (const i of model.inputs) if (!layerDepth.has(i.history!.layer)) layerDepth.set(i.history!.layer, 0);
  return [...layerDepth.keys()].sort((a, b) => layerDepth.get(b)! - layerDepth.get(a)! || index.get(a)! - index.get(b)!);
}

/** The variable groups of one layer, as its Keras counterpart's save_own_variables and sublayers write them. */
function varGroups(layer: AnyLayer): VarGroup[] {
  const own: VarGroup = { path: 'vars', name: layer.name, vars: [] };
  const byName = (n: string) => layer.weights.filter((w) => w.path === `${layer.name}/${n}` || w.path.startsWith(`${layer.name}/${n}/`));
  switch (layer.className) {
    case 'LSTM': case 'GRU': case 'SimpleRNN':
      return [own, { path: 'cell/vars', name: `${toSnakeCase(layer.className)}_cell`, vars: layer.weights }];
    // a wrapper's own (empty) group, then each wrapped layer's groups under its attribute name
    case 'TimeDistributed':
      return [own, ...nested('layer', (layer as TimeDistributed).layer)];
    case 'Bidirectional': {
      const b = layer as Bidirectional;
      return [own, ...nested('forward_layer', b.forwardLayer), ...nested('backward_layer', b.backwardLayer)];
    }
    case 'MultiHeadAttention':
      return [own,
        ...(['query', 'key', 'value'] as const).map((n) => ({ path: `${n}_dense/vars`, name: n, vars: byName(n) })),
        { path: 'output_dense/vars', name: 'attention_output', vars: byName('attention_output') },
        { path: '_dropout_layer/vars', name: 'dropout', vars: [] },
        { path: '_softmax/vars', name: 'softmax', vars: [] },
      ];
    default:
      return [{ ...own, vars: layer.weights }];
  }
}

function nested(at: string, layer: AnyLayer): VarGroup[] {
  return varGroups(layer).map((g) => ({ ...g, path: `${at}/${g.path}` }));
}

/** Every layer of the model with its Keras group key and variable groups, in Keras's order. */
export function weightLayout(model: Model): LayerEntry[] {
  const counts = new Map<string, number>();
  return kerasLayers(model).map((layer) => {
    const base = toSnakeCase(layer.className);
    const n = counts.get(base);
    counts.set(base, (n ?? -1) + 1);
    return { layer, key: n === undefined ? base : `${base}_${n + 1}`, groups: varGroups(layer) };
  });
}
