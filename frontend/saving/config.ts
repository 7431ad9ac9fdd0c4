// Keras 3's config.json both ways: kiln layers and models to Keras's layer configs (keys and defaults as Keras 3.15
// writes them) and back; a Keras layer kiln lacks is an error naming it.
import * as activations from '../activations.js';
import * as layers from '../layers/index.js';
import type { AnyLayer, KerasTensor } from '../layers/layer.js';
import { Input, InputLayer } from '../layers/core.js';
import { Bidirectional, Lambda, TimeDistributed } from '../layers/wrappers.js';
import { type Model, Functional } from '../models/model.js';
import { Sequential } from '../models/sequential.js';
import type { SymbolicShape } from '../tensor.js';
import { kerasLayers, toSnakeCase } from './layout.js';

type Json = Record<string, unknown>;
const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

const RNN_TAIL = { kernel_regularizer: null, recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, recurrent_constraint: null, bias_constraint: null, dropout: 0, recurrent_dropout: 0 };
const RNN_HEAD = { return_sequences: false, return_state: false, go_backwards: false, stateful: false, unroll: false, zero_output_for_mask: false };
const CONV = {
  filters: 0, kernel_size: [], strides: [], padding: 'valid', data_format: 'channels_last', dilation_rate: [], groups: 1, activation: 'linear', use_bias: true,
  kernel_initializer: 'glorot_uniform', bias_initializer: 'zeros', kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
};
const POOL = { pool_size: [], padding: 'valid', strides: [], data_format: 'channels_last' };
const GLOBAL_POOL = { data_format: 'channels_last', keepdims: false };

/** Each layer class kiln has: its Keras config keys after name/trainable/dtype, in Keras's order, with Keras's defaults. */
const KERAS_CONFIG: Record<string, Json> = {
  Dense: {
    units: 0, activation: 'linear', use_bias: true, kernel_initializer: 'glorot_uniform', bias_initializer: 'zeros',
    kernel_regularizer: null, bias_regularizer: null, kernel_constraint: null, bias_constraint: null, quantization_config: null,
  },
  Activation: { activation: 'linear' },
  Flatten: { data_format: 'channels_last' },
  Reshape: { target_shape: [] },
  Dropout: { rate: 0, seed: null, noise_shape: null },
  Embedding: {
    input_dim: 0, output_dim: 0, embeddings_initializer: 'random_uniform', embeddings_regularizer: null, activity_regularizer: null,
    embeddings_constraint: null, mask_zero: false, quantization_config: null,
  },
  SimpleRNN: {
    ...RNN_HEAD, units: 0, activation: 'tanh', use_bias: true, kernel_initializer: 'glorot_uniform', recurrent_initializer: 'orthogonal', bias_initializer: 'zeros', ...RNN_TAIL,
  },
  LSTM: {
    ...RNN_HEAD, units: 0, activation: 'tanh', recurrent_activation: 'sigmoid', use_bias: true, kernel_initializer: 'glorot_uniform', recurrent_initializer: 'orthogonal',
    bias_initializer: 'zeros', unit_forget_bias: true, ...RNN_TAIL, seed: null,
  },
  GRU: {
    ...RNN_HEAD, units: 0, activation: 'tanh', recurrent_activation: 'sigmoid', use_bias: true, kernel_initializer: 'glorot_uniform', recurrent_initializer: 'orthogonal',
    bias_initializer: 'zeros', ...RNN_TAIL, reset_after: true, seed: null,
  },
  Attention: { use_scale: false, score_mode: 'dot', dropout: 0, seed: null },
  MultiHeadAttention: {
    num_heads: 0, key_dim: 0, value_dim: null, dropout: 0, use_bias: true, use_gate: false, output_shape: null, attention_axes: [1], sliding_window: null,
    kernel_initializer: 'glorot_uniform', bias_initializer: 'zeros', kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
    kernel_constraint: null, bias_constraint: null, seed: null,
  },
  Masking: { mask_value: 0 },
  // the wrapped layers' entries are written by wrappedEntry, not from these defaults
  TimeDistributed: { layer: null },
  Bidirectional: { merge_mode: 'concat', layer: null, backward_layer: null },
  Add: {}, Subtract: {}, Multiply: {}, Average: {}, Maximum: {}, Minimum: {},
  Concatenate: { axis: -1 },
  Conv1D: CONV, Conv2D: CONV, Conv3D: CONV,
  MaxPooling1D: POOL, MaxPooling2D: POOL, MaxPooling3D: POOL, AveragePooling1D: POOL, AveragePooling2D: POOL, AveragePooling3D: POOL,
  GlobalAveragePooling1D: GLOBAL_POOL, GlobalAveragePooling2D: GLOBAL_POOL, GlobalAveragePooling3D: GLOBAL_POOL,
  GlobalMaxPooling1D: GLOBAL_POOL, GlobalMaxPooling2D: GLOBAL_POOL, GlobalMaxPooling3D: GLOBAL_POOL,
  BatchNormalization: {
    axis: -1, momentum: 0.99, epsilon: 0.001, center: true, scale: true, beta_initializer: 'zeros', gamma_initializer: 'ones', moving_mean_initializer: 'zeros',
    moving_variance_initializer: 'ones', beta_regularizer: null, gamma_regularizer: null, beta_constraint: null, gamma_constraint: null, synchronized: false,
    renorm: false, renorm_clipping: null, renorm_momentum: 0.99,
  },
  LayerNormalization: {
    axis: [-1], epsilon: 0.001, center: true, scale: true, rms_scaling: false, beta_initializer: 'zeros', gamma_initializer: 'ones',
    beta_regularizer: null, gamma_regularizer: null, beta_constraint: null, gamma_constraint: null,
  },
};

/** Keras's leading positional constructor arguments of each class, as kiln's constructors take them. */
const POSITIONAL: Record<string, string[]> = {
  Dense: ['units'], Activation: ['activation'], Reshape: ['target_shape'], Dropout: ['rate'], Embedding: ['input_dim', 'output_dim'],
  SimpleRNN: ['units'], LSTM: ['units'], GRU: ['units'], Conv1D: ['filters', 'kernel_size'], Conv2D: ['filters', 'kernel_size'], Conv3D: ['filters', 'kernel_size'],
  TimeDistributed: ['layer'], Bidirectional: ['layer'],
  MaxPooling1D: ['pool_size'], MaxPooling2D: ['pool_size'], MaxPooling3D: ['pool_size'], AveragePooling1D: ['pool_size'], AveragePooling2D: ['pool_size'], AveragePooling3D: ['pool_size'],
};

// ---- kiln -> Keras ----

function dtypePolicy(dtype: string): Json {
  return { module: 'keras', class_name: 'DTypePolicy', config: { name: dtype }, registered_name: null };
}

/** The config Keras writes for each initializer kiln knows by name: its defaults (kiln's named initializers take none). */
const FANS = { seed: null, input_axes: null, output_axes: null };
const INITIALIZER_CONFIG: Record<string, Json> = {
  zeros: {}, ones: {}, random_uniform: { seed: null, minval: -0.05, maxval: 0.05 }, random_normal: { seed: null, mean: 0, stddev: 0.05 },
  truncated_normal: { seed: null, mean: 0, stddev: 0.05 }, glorot_uniform: FANS, glorot_normal: FANS, he_uniform: FANS, he_normal: FANS,
  lecun_uniform: FANS, lecun_normal: FANS, orthogonal: { seed: null, gain: 1 },
};

function initializer(id: unknown): unknown {
  if (typeof id !== 'string') return id ?? null;
  const cls = id.split('_').map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');
  return { module: 'keras.initializers', class_name: cls, config: { ...INITIALIZER_CONFIG[id] }, registered_name: null };
}

/** A kiln layer's value for a Keras config key: its field, else the option it was made with, else Keras's default. */
function configValue(layer: AnyLayer, key: string, fallback: unknown): unknown {
  const k = camel(key);
  // the options object the constructor kept (most layers keep it, privately)
  const options = (Reflect.get(layer, 'options') ?? {}) as Record<string, unknown>;
  const field: unknown = Reflect.get(layer, k);
  // a field holds the resolved value (activation functions, tuples); methods and weights are not config
  let v = typeof field === 'function' ? (/activation$/.test(key) ? field : undefined) : field instanceof Object && !Array.isArray(field) ? undefined : field;
  if (v === undefined) v = options[k];
  if (v === undefined) v = fallback;
  if (typeof v === 'function') return activations.serialize(v as activations.ActivationFn);
  if (key.endsWith('_initializer')) return initializer(v);
  if (layer.className === 'LayerNormalization' && key === 'axis') return Array.isArray(v) ? v : [v];
  if (layer.className === 'MultiHeadAttention' && key === 'value_dim') return Reflect.get(layer, 'valueDim');
  return v;
}

/** A wrapped layer's entry, as TimeDistributed and Bidirectional nest it: its config and the shape it was built for. */
function wrappedEntry(layer: AnyLayer, inputShape: unknown): Json {
  const build = Array.isArray(inputShape) ? { build_config: { input_shape: inputShape } } : {};
  return { module: 'keras.layers', class_name: layer.className, config: layerConfig(layer, inputShape), registered_name: null, ...build };
}

/** One layer's Keras config: name, trainable, dtype, then its class's keys; `inputShape` is what it was called on. */
export function layerConfig(layer: AnyLayer, inputShape?: unknown): Json {
  if (layer instanceof InputLayer) {
    return { batch_shape: [...layer.output.shape], dtype: layer.dtype, sparse: false, ragged: false, name: layer.name, optional: false };
  }
  if (layer instanceof Lambda) {
    // Keras stores a Lambda's Python bytecode; a JavaScript function has no form that Keras (or kiln) could load
    throw new Error(`layer '${layer.name}' (Lambda) cannot be saved in a Keras file: its function is JavaScript code; save the weights only (saveWeights) and rebuild the model in code`);
  }
  const keys = KERAS_CONFIG[layer.className];
  if (!keys) throw new Error(`layer '${layer.name}' (${layer.className}) cannot be saved in a Keras file: Keras has no such layer`);
  const out: Json = { name: layer.name, trainable: layer.trainable, dtype: dtypePolicy(layer.dtype) };
  for (const [key, fallback] of Object.entries(keys)) out[key] = configValue(layer, key, fallback);
  const shape = Array.isArray(inputShape) ? inputShape as (number | null)[] : undefined;
  if (layer instanceof TimeDistributed) out['layer'] = wrappedEntry(layer.layer, shape && [null, ...shape.slice(2)]);
  if (layer instanceof Bidirectional) {
    out['layer'] = wrappedEntry(layer.forwardLayer, shape);
    out['backward_layer'] = wrappedEntry(layer.backwardLayer, shape);
  }
  return out;
}

function inputShapeOf(model: Model, layer: AnyLayer): unknown {
  if (model instanceof Functional) {
    const call = model.nodes.find((c) => c.layer === layer);
    if (!call) return undefined;
    const shapes = call.inputs.map((k) => [...k.shape]);
    if (layer.className === 'MultiHeadAttention') return { shapes_dict: { query_shape: shapes[0], value_shape: shapes[1], ...(shapes[2] ? { key_shape: shapes[2] } : {}) } };
    return { input_shape: call.listIn ? shapes : shapes[0] };
  }
  const stack = model.layers.filter((l) => !(l instanceof InputLayer));
  const i = stack.indexOf(layer);
  const before = i === 0 ? model.inputSpecs[0]!.shape : (Reflect.get(model, 'shapes') as SymbolicShape[])[i - 1];
  return before ? { input_shape: [...before] } : undefined;
}

function tensorRef(model: Functional, k: KerasTensor): Json {
  const call = k.history!;
  const index = call.layer instanceof InputLayer ? 0 : model.nodes.filter((c) => c.layer === call.layer).indexOf(call);
  return { class_name: '__keras_tensor__', config: { shape: [...k.shape], dtype: k.dtype, keras_history: [call.layer.name, index, call.outputs.indexOf(k)] } };
}

/** The model's config.json (the object Keras's saving_lib writes), for a Sequential or Functional model. */
export function modelConfig(model: Model): Json {
  const entry = (layer: AnyLayer): Json => {
    const shape = layer instanceof InputLayer ? undefined : inputShapeOf(model, layer);
    const e: Json = { module: 'keras.layers', class_name: layer.className, config: layerConfig(layer, (shape as Json | undefined)?.['input_shape']), registered_name: null };
    // Keras records build shapes only for layers with a build step of their own
    if (shape && !/^(Dropout|Activation|Reshape|Masking|.*Pooling[123]D)$/.test(layer.className)) e['build_config'] = shape;
    if (model instanceof Functional) {
      e['name'] = layer.name;
      e['inbound_nodes'] = model.nodes.filter((c) => c.layer === layer).map((c) => {
        const refs = c.inputs.map((k) => tensorRef(model, k));
        // Keras calls MultiHeadAttention(query, value[, key]) but Attention and the merges with one list
        return { args: c.listIn && layer.className !== 'MultiHeadAttention' ? [refs] : refs, kwargs: {} };
      });
    }
    return e;
  };
  const inputShape = [...model.inputSpecs[0]!.shape];
  let config: Json;
  if (model instanceof Sequential) {
    const spec = model.inputSpecs[0]!;
    const input = { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [...spec.shape], dtype: spec.dtype, sparse: false, ragged: false, name: spec.name, optional: false }, registered_name: null };
    config = { name: model.name, trainable: model.trainable, dtype: dtypePolicy('float32'), layers: [input, ...model.layers.map(entry)], build_input_shape: inputShape };
  } else if (model instanceof Functional) {
    const ref = (k: KerasTensor) => { const r = tensorRef(model, k).config as Json; return r['keras_history']; };
    const ins = model.inputs.map(ref), outs = model.outputs.map(ref);
    config = {
      name: model.name, trainable: model.trainable, layers: kerasLayers(model).map(entry),
      input_layers: ins.length === 1 ? ins[0] : ins, output_layers: model.multiOutput ? outs : outs[0],
    };
  } else {
    throw new Error(`model '${model.name}' is a subclassed model; only Sequential and Functional models can be saved as .keras`);
  }
  const functional = model instanceof Functional;
  return {
    module: functional ? 'keras.src.models.functional' : 'keras', class_name: functional ? 'Functional' : 'Sequential', config,
    // as Keras writes them: a functional model is registered by name and records no build shape
    registered_name: functional ? 'Functional' : null, build_config: { input_shape: functional ? null : inputShape }, compile_config: {},
  };
}

// ---- Keras -> kiln ----

/** The layer classes kiln has, by Keras class name. */
const CLASSES: Record<string, (...args: unknown[]) => AnyLayer> = Object.fromEntries(
  Object.entries(layers).filter(([name]) => name in KERAS_CONFIG).map(([name, cls]) => [name, cls as unknown as (...args: unknown[]) => AnyLayer]),
);

/** A Keras config value as kiln takes it: dtype policies and initializer objects by name. */
function fromKerasValue(key: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Json;
    if (o['class_name'] === 'DTypePolicy') return (o['config'] as Json)['name'];
    if (key.endsWith('_initializer') && typeof o['class_name'] === 'string') return toSnakeCase(o['class_name']);
  }
  return v;
}

/** Builds a kiln layer from a Keras layer entry ({ class_name, config }); `where` names the file. */
export function layerFromConfig(entry: Json, where: string): AnyLayer {
  const cls = String(entry['class_name']);
  const config = (entry['config'] ?? {}) as Json;
  const name = String(config['name'] ?? cls);
  const make = CLASSES[cls];
  if (cls === 'Lambda') {
    throw new Error(`${where}: layer '${name}' is a Keras Lambda, whose function is Python bytecode kiln cannot load; rebuild the model in TypeScript (keras.layers.Lambda) and load the weights`);
  }
  if (!make) throw new Error(`${where}: layer '${name}' is a Keras ${cls}, which kiln does not have (kiln has ${Object.keys(CLASSES).join(', ')})`);
  const positional = POSITIONAL[cls] ?? [];
  const options: Json = {};
  if (cls === 'Bidirectional') mirrored(config, `${where}: layer '${name}' (Bidirectional)`);
  for (const [k, raw] of Object.entries(config)) {
    if (k === 'backward_layer') continue; // checked by mirrored: kiln makes the backward layer from the forward one
    const v = fromKerasValue(k, raw);
    if (positional.includes(k) || v === null) continue;
    // what kiln always does: channels-last data, Keras 3's default attention axes and mask handling
    if (k === 'data_format' && v === 'channels_last' && cls !== 'Conv1D' && cls !== 'Conv2D' && cls !== 'Conv3D') continue;
    if (k === 'zero_output_for_mask' && v === false) continue;
    if (cls === 'MultiHeadAttention' && k === 'attention_axes' && JSON.stringify(v) === '[1]') continue;
    if (cls.endsWith('Pooling1D') || cls.endsWith('Pooling2D') || cls.endsWith('Pooling3D')) { if (k === 'data_format') continue; }
    if (cls === 'LayerNormalization' && k === 'axis' && Array.isArray(v) && v.length === 1) { options['axis'] = v[0]; continue; }
    options[k === 'name' ? 'name' : camel(k)] = v;
  }
  try {
    const args = positional.map((k) => (k === 'layer' ? wrapped(config[k] as Json, cls, where) : fromKerasValue(k, config[k])));
    return make(...args, options);
  } catch (e) {
    throw new Error(`${where}: layer '${name}' (${cls}): ${(e as Error).message}`);
  }
}

/** The layer a TimeDistributed or Bidirectional wraps; Bidirectional sets zero_output_for_mask itself, as Keras does. */
function wrapped(entry: Json, wrapper: string, where: string): AnyLayer {
  if (wrapper !== 'Bidirectional') return layerFromConfig(entry, where);
  const { zero_output_for_mask: _, ...config } = entry['config'] as Json;
  return layerFromConfig({ ...entry, config }, where);
}

/** Checks that a Bidirectional's backward_layer is its layer run backwards (Keras's default, all kiln makes). */
function mirrored(config: Json, where: string): void {
  const back = config['backward_layer'] as Json | undefined | null;
  if (!back) return;
  const strip = (e: Json) => JSON.stringify({ ...e, config: { ...(e['config'] as Json), name: null, go_backwards: null } }, (k, v: unknown) => (k === 'shared_object_id' ? undefined : v));
  const f = config['layer'] as Json;
  const goes = (e: Json) => (e['config'] as Json)['go_backwards'];
  if (strip(back) !== strip(f) || goes(back) === goes(f)) {
    throw new Error(`${where}: a backward_layer other than the layer run backwards is not supported by kiln`);
  }
}

function inputFromConfig(entry: Json): KerasTensor {
  const c = entry['config'] as Json;
  const shape = (c['batch_shape'] ?? c['batch_input_shape']) as (number | null)[];
  return Input({ shape: shape.slice(1), name: String(c['name']), dtype: fromKerasValue('dtype', c['dtype']) as 'float32' });
}

/** Rebuilds a Sequential or Functional model from Keras's config.json object; `where` names the file. */
export function modelFromConfig(json: Json, where: string): Model {
  const cls = json['class_name'];
  const config = json['config'] as Json;
  const entries = withoutMaskOps((config['layers'] ?? []) as Json[], config['output_layers']);
  if (cls === 'Sequential') {
    const first = entries[0];
    const input = first?.['class_name'] === 'InputLayer' ? inputFromConfig(first)
      : config['build_input_shape'] ? Input({ shape: (config['build_input_shape'] as number[]).slice(1) }) : undefined;
    const stack = entries.filter((e) => e['class_name'] !== 'InputLayer').map((e) => layerFromConfig(e, where));
    return new Sequential(input ? [input, ...stack] : stack, { name: String(config['name']) });
  }
  if (cls !== 'Functional' && cls !== 'Model') throw new Error(`${where}: the model is a Keras ${String(cls)}; kiln loads Sequential and Functional models`);
  const made = new Map<string, AnyLayer>();
  const outputs = new Map<string, KerasTensor[][]>(); // layer name -> node index -> output tensors
  const pending: Json[] = [];
  for (const e of entries) {
    const name = String(e['name'] ?? (e['config'] as Json)['name']);
    if (e['class_name'] === 'InputLayer') outputs.set(name, [[inputFromConfig(e)]]);
    else { made.set(name, layerFromConfig(e, where)); pending.push(e); }
  }
  const resolve = (a: unknown): unknown => {
    if (Array.isArray(a)) return a.map(resolve);
    const o = a as Json;
    if (o?.['class_name'] !== '__keras_tensor__') throw new Error(`${where}: unsupported layer argument ${JSON.stringify(a)}`);
    const [layer, node, index] = (o['config'] as Json)['keras_history'] as [string, number, number];
    const t = outputs.get(layer)?.[node]?.[index];
    if (!t) throw new Missing();
    return t;
  };
  // call layers once their inputs exist (Keras lists them by depth, so this is one pass for files Keras wrote)
  for (let progress = true; pending.length > 0 && progress;) {
    progress = false;
    for (const e of [...pending]) {
      const name = String(e['name']);
      const nodes = (e['inbound_nodes'] ?? []) as Json[];
      const done = outputs.get(name) ?? [];
      try {
        for (const node of nodes.slice(done.length)) {
          const args = resolve(node['args'] ?? []) as unknown[];
          // kiln carries masks along the graph itself; Keras's mask argument names ops (not_equal, any) that are no layers
          const kwargs = Object.fromEntries(Object.entries((node['kwargs'] ?? {}) as Json).filter(([k, v]) => v !== null && k !== 'training' && k !== 'mask').map(([k, v]) => [camel(k), v]));
          const out = made.get(name)!(args.length === 1 ? args[0] as KerasTensor : args as KerasTensor[], kwargs) as KerasTensor | KerasTensor[];
          done.push(Array.isArray(out) ? out : [out]);
          outputs.set(name, done);
        }
      } catch (err) {
        if (!(err instanceof Missing)) throw new Error(`${where}: layer '${name}': ${(err as Error).message}`);
        continue;
      }
      pending.splice(pending.indexOf(e), 1);
      progress = true;
    }
  }
  if (pending.length > 0) throw new Error(`${where}: layer(s) ${pending.map((e) => `'${String(e['name'])}'`).join(', ')} take inputs that no layer produces`);
  const refs = (r: unknown): KerasTensor[] => {
    const list = (Array.isArray(r) && Array.isArray(r[0]) ? r : [r]) as [string, number, number][];
    return list.map(([l, n, i]) => {
      const t = outputs.get(l)?.[n]?.[i];
      if (!t) throw new Error(`${where}: the model's inputs or outputs name layer '${l}', which the file does not have`);
      return t;
    });
  };
  const outs = refs(config['output_layers']);
  const multi = Array.isArray(config['output_layers']) && Array.isArray((config['output_layers'] as unknown[])[0]);
  return new Functional({ inputs: refs(config['input_layers']), outputs: multi ? outs : outs[0]!, name: String(config['name']) });
}

class Missing extends Error {}

/** The layer names an argument list refers to (its __keras_tensor__ histories). */
function referenced(args: unknown, into: Set<string>): Set<string> {
  // output_layers holds [layer, node, index] triples
  if (Array.isArray(args) && typeof args[0] === 'string') into.add(args[0]);
  else if (Array.isArray(args)) for (const a of args) referenced(a, into);
  const history = ((args as Json | null)?.['config'] as Json | undefined)?.['keras_history'];
  if ((args as Json | null)?.['class_name'] === '__keras_tensor__' && Array.isArray(history)) into.add(String(history[0]));
  return into;
}

/**
 * The entries less the op layers (keras.src.ops: not_equal, any, ...) that Keras records to compute masks, which only
 * `mask` arguments use: kiln carries masks along the graph itself. An op that a layer's input or an output uses stays
 * (and is an error naming it, as kiln has no op layers).
 */
function withoutMaskOps(entries: Json[], outputs: unknown): Json[] {
  const maskOnly = new Set(entries.filter((e) => String(e['module']).startsWith('keras.src.ops')).map((e) => String(e['name'])));
  for (let changed = true; changed;) {
    changed = false;
    const used = referenced(outputs, new Set());
    for (const e of entries) {
      if (maskOnly.has(String(e['name']))) continue;
      for (const node of (e['inbound_nodes'] ?? []) as Json[]) referenced(node['args'], used);
    }
    for (const name of used) changed = maskOnly.delete(name) || changed;
  }
  return entries.filter((e) => !maskOnly.has(String(e['name'])));
}

