// Bad input to the Keras API gets a clear one-line error naming what is wrong: labels, shapes, batch sizes,
// backends, windows larger than their input, and unknown or unimplemented options.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

keras.config.setBackend('interpreter');
beforeEach(() => keras.backend.clearSession());

const L = keras.layers, ops = keras.ops;
// options a user's untyped model file could pass (the types would refuse them)
const untyped = <T>(o: Record<string, unknown>): T => o as T;

/** Every error here is one line. */
function oneLine(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    const message = (e as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected an error');
}

function classifier(): keras.Sequential {
  keras.utils.setRandomSeed(1);
  const m = keras.Sequential([L.Dense(3, { activation: 'softmax', inputShape: [2] })]);
  m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  return m;
}

describe('sparse labels outside [0, classes)', () => {
  const x = keras.ops.array([[1, 2], [3, 4], [5, 6], [7, 8]], 'float32');

  it('fit raises naming the row, before training anything', () => {
    const m = classifier();
    const before = m.getWeights().map((w) => Array.from(w.data));
    expect(oneLine(() => m.fit(x, ops.array([0, 1, 7, 2]), { verbose: 0 })))
      .toBe("fit: targets of output 'dense' (sparse_categorical_crossentropy): label 7 at row 2 is not a class id in [0, 3)");
    expect(oneLine(() => m.fit(x, ops.array([[0], [1], [2], [-1]]), { verbose: 0 }))).toMatch(/label -1 at row 3 is not a class id in \[0, 3\)$/);
    expect(oneLine(() => m.fit(x, ops.array([0, 1.5, 2, 0]), { verbose: 0 }))).toMatch(/label 1.5 at row 1 is not a class id/);
    expect(oneLine(() => m.fit(x, ops.array([0, 1, NaN, 0]), { verbose: 0 }))).toMatch(/label NaN at row 2 is not a class id/);
    expect(oneLine(() => m.fit(x, ops.array([0, 1, 2, 0]), { verbose: 0, validationData: [x, ops.array([0, 3, 0, 0])] })))
      .toMatch(/^fit: validationData: targets of output 'dense' .*label 3 at row 1/);
    // rows counted over the whole array, not within a batch
    expect(oneLine(() => m.fit(x, ops.array([0, 1, 2, 3]), { verbose: 0, batchSize: 2 }))).toMatch(/label 3 at row 3/);
    expect(m.getWeights().map((w) => Array.from(w.data))).toEqual(before);
    expect(m.optimizer!.iterations.data[0]).toBe(0);
  });

  it('evaluate and a custom loop loss raise naming the row; labels in range still train', () => {
    const m = classifier();
    expect(oneLine(() => m.evaluate(x, ops.array([0, 1, 2, 5]), { verbose: 0, batchSize: 2 }))).toMatch(/^evaluate: .*label 5 at row 3 is not a class id in \[0, 3\)$/);
    const lossFn = keras.losses.SparseCategoricalCrossentropy();
    const tape = keras.backend.GradientTape();
    expect(oneLine(() => tape.record(() => lossFn(ops.array([2, 9, 0, 1]), m(x, { training: true }) as keras.Tensor))))
      .toBe('sparse_categorical_crossentropy: label 9 at row 1 is not a class id in [0, 3)');
    const h = m.fit(x, ops.array([0, 1, 2, 0]), { verbose: 0, epochs: 2 });
    expect(h.history['loss']!.every(Number.isFinite)).toBe(true);
  });
});

describe('predict, fit and evaluate arguments', () => {
  const m = classifier();
  const x = ops.ones([4, 2]);

  it.each([1.5, 0, -1, NaN, '2'])('batchSize %s is an error', (bs) => {
    expect(oneLine(() => m.predict(x, untyped({ batchSize: bs })))).toBe(`predict: batchSize must be a positive integer, got ${typeof bs === 'string' ? '"2"' : bs}`);
    expect(oneLine(() => m.fit(x, ops.array([0, 1, 2, 0]), untyped({ batchSize: bs, verbose: 0 })))).toMatch(/^fit: batchSize must be a positive integer/);
    expect(oneLine(() => m.evaluate(x, ops.array([0, 1, 2, 0]), untyped({ batchSize: bs, verbose: 0 })))).toMatch(/^evaluate: batchSize must be a positive integer/);
  });

  it.each([
    [undefined, /got undefined$/], [null, /got null$/], ['abc', /got the string "abc"$/], [new Map(), /got a Map$/],
  ])('inputs %s are an error naming the model', (bad, got) => {
    expect(oneLine(() => m.predict(bad as never))).toMatch(/^Model 'sequential': inputs must be a tensor, a typed array or nested arrays of numbers/);
    expect(oneLine(() => m.predict(bad as never))).toMatch(got);
    expect(oneLine(() => m.fit(bad as never, ops.array([0, 1, 2, 0]), { verbose: 0 }))).toMatch(got);
  });

  it('strings inside arrays, and missing targets', () => {
    expect(oneLine(() => m.predict([['a', 'b']] as never))).toBe(`Model 'sequential': input 'input_layer': elements must be numbers or booleans, got the string "a"`);
    expect(oneLine(() => m.fit(x, undefined as never, { verbose: 0 }))).toMatch(/^fit: model 'sequential' needs targets .*got undefined$/);
    expect(oneLine(() => m.evaluate(x, 'y' as never, { verbose: 0 }))).toMatch(/^evaluate: model 'sequential' needs targets .*got the string "y"$/);
  });

  it('verbose is implemented (a progress line per call with verbose 2) or an error', () => {
    const lines: string[] = [];
    const y = m.predict(x, { batchSize: 2, verbose: 2, print: (t) => lines.push(t) });
    expect(y.shape).toEqual([4, 3]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^2\/2 - \d+s - \d+[mu]s\/step\n$/);
    m.predict(x, { batchSize: 2, print: (t) => lines.push(t) });
    expect(lines).toHaveLength(1); // silent by default
    expect(oneLine(() => m.predict(x, untyped({ verbose: 3 })))).toBe("predict: verbose must be 0, 1, 2 or 'auto', got 3");
  });

  it('option values of the wrong type are errors, not a TypeError from inside or a truthy string taken for true', () => {
    const y = ops.array([0, 1, 2, 0]);
    expect(oneLine(() => m.predict(x, untyped({ verbose: 1, print: 'log' })))).toBe('predict: print must be a function of one line of text, got "log"');
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 1, print: 3 })))).toBe('fit: print must be a function of one line of text, got 3');
    expect(oneLine(() => m.evaluate(x, y, untyped({ print: {} })))).toBe('evaluate: print must be a function of one line of text, got {}');
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, shuffle: 'no' })))).toBe('fit: shuffle must be true or false, got "no"');
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, validationSplit: '0.5' })))).toBe('fit: validationSplit must be a number in (0, 1), got "0.5"');
    expect(oneLine(() => m.evaluate(x, y, untyped({ verbose: 0, returnDict: 'yes' })))).toBe('evaluate: returnDict must be true or false, got "yes"');
    expect(m.evaluate(x, y, { verbose: 0, returnDict: false })).toHaveLength(2);
  });
});

describe('shapes', () => {
  it.each([
    ['zeros', () => ops.zeros([1.5, 2]), 'ops.zeros: shape [1.5,2] has an invalid dimension 1.5 (dimensions are non-negative integers)'],
    ['ones', () => ops.ones([2, -1]), 'ops.ones: shape [2,-1] has an invalid dimension -1 (dimensions are non-negative integers)'],
    ['full', () => ops.full([NaN], 1), 'ops.full: shape [NaN] has an invalid dimension NaN (dimensions are non-negative integers)'],
    ['full dtype', () => ops.full([2], 1, 'float64' as never), `ops.full: dtype must be a dtype name such as 'float32', got "float64"`],
    ['array', () => ops.array(undefined as never), 'ops.array: expected a tensor, a typed array, a number or nested arrays of numbers, got undefined'],
    ['Tensor', () => new keras.Tensor('float32', [0.5], new Float32Array(0)), 'Tensor: shape [0.5] must be a list of non-negative integers'],
    ['reshape', () => ops.reshape(ops.ones([5]), [2.5, 2]), 'reshape: new shape [2.5,2] has an invalid dimension 2.5 (dimensions are non-negative integers, or one -1)'],
    ['reshape -2', () => ops.reshape(ops.ones([4]), [-2, -2]), 'reshape: new shape [-2,-2] has an invalid dimension -2 (dimensions are non-negative integers, or one -1)'],
    ['broadcastTo', () => ops.broadcastTo(ops.ones([1]), [2, 0.5]), 'broadcastTo: shape [2,0.5] has an invalid dimension 0.5 (dimensions are non-negative integers)'],
    ['Reshape', () => L.Reshape([1.5, 2]), 'Reshape: targetShape must be a list of non-negative integers (one may be -1), got [1.5,2]'],
    ['Input', () => keras.Input({ shape: [2.5] }), 'keras.Input: shape (2.5,) has an invalid dimension 2.5'],
  ])('%s', (_, fn, message) => {
    expect(oneLine(fn)).toBe(message);
  });

  it('valid shapes still work: zeros([0, 2]) is empty, reshape infers -1', () => {
    expect(ops.zeros([0, 2]).size).toBe(0);
    expect(ops.reshape(ops.arange(6), [-1, 3]).toArray()).toEqual([[0, 1, 2], [3, 4, 5]]);
  });
});

describe('backends', () => {
  it('an unknown backend is an error listing the backends, wherever it can be chosen', () => {
    const m = classifier();
    const x = ops.ones([2, 2]), y = ops.array([0, 1]);
    const listed = /unknown backend "bogus"; backends: 'wasm', 'interpreter'$/;
    expect(oneLine(() => keras.config.setBackend('bogus' as never))).toMatch(/^keras.config.setBackend: /);
    expect(oneLine(() => keras.config.setBackend('bogus' as never))).toMatch(listed);
    expect(keras.config.backend()).toBe('interpreter');
    expect(oneLine(() => m.predict(x, { backend: 'bogus' as never }))).toMatch(/^predict: /);
    expect(oneLine(() => m.predict(x, { backend: 'bogus' as never }))).toMatch(listed);
    expect(oneLine(() => m.fit(x, y, { backend: 'bogus' as never, verbose: 0 }))).toMatch(listed);
    expect(oneLine(() => m.evaluate(x, y, { backend: 'bogus' as never, verbose: 0 }))).toMatch(listed);
  });
});

describe('a window larger than its input with padding valid is an error at build time, naming the layer', () => {
  it.each([
    ['Conv1D', () => L.Conv1D(2, 4), [3, 1], "Layer 'conv1d' (Conv1D) could not be built: kernel size 4 is larger than the input's size 3 on spatial axis 1"],
    ['Conv1D dilated', () => L.Conv1D(2, 3, { dilationRate: 2 }), [4, 1], "Layer 'conv1d' (Conv1D) could not be built: kernel size 3 (5 dilated) is larger than the input's size 4 on spatial axis 1"],
    ['Conv2D', () => L.Conv2D(4, 5), [5, 3, 1], "Layer 'conv2d' (Conv2D) could not be built: kernel size 5 is larger than the input's size 3 on spatial axis 2"],
    ['Conv3D', () => L.Conv3D(1, [1, 1, 2]), [2, 2, 1, 1], "Layer 'conv3d' (Conv3D) could not be built: kernel size 2 is larger than the input's size 1 on spatial axis 3"],
    ['MaxPooling1D', () => L.MaxPooling1D(3), [2, 1], "Layer 'max_pooling1d' (MaxPooling1D) failed: pool size 3 is larger than the input's size 2 on spatial axis 1"],
    ['MaxPooling2D', () => L.MaxPooling2D(4), [3, 3, 1], "Layer 'max_pooling2d' (MaxPooling2D) failed: pool size 4 is larger than the input's size 3 on spatial axis 1"],
    ['AveragePooling2D', () => L.AveragePooling2D([1, 2]), [3, 1, 1], "Layer 'average_pooling2d' (AveragePooling2D) failed: pool size 2 is larger than the input's size 1 on spatial axis 2"],
    ['AveragePooling3D', () => L.AveragePooling3D(2), [2, 2, 1, 4], "Layer 'average_pooling3d' (AveragePooling3D) failed: pool size 2 is larger than the input's size 1 on spatial axis 3"],
  ] as const)('%s', (_, layer, shape, message) => {
    const suffix = " with padding 'valid': the output would be empty";
    expect(oneLine(() => keras.Sequential([keras.Input({ shape: [...shape] }), layer()]))).toBe(message + suffix);
    keras.backend.clearSession();
    // called eagerly on a tensor, and on a model input of unknown size once the data comes
    expect(oneLine(() => layer()(ops.ones([1, ...shape])))).toBe(message + suffix);
    keras.backend.clearSession();
    const lazy = keras.Sequential([keras.Input({ shape: shape.map(() => null).slice(0, -1).concat([shape.at(-1)!]) }), layer()]);
    expect(oneLine(() => lazy.predict(ops.ones([1, ...shape])))).toContain(`${suffix.slice(1)}`);
  });

  it("'same' padding, and a window the size of its input, are fine: a full-size kernel is one dot product", () => {
    const x = ops.reshape(ops.arange(6, undefined, 1, 'float32'), [1, 2, 3, 1]);
    expect(L.Conv2D(1, 5, { padding: 'same' })(x).shape).toEqual([1, 2, 3, 1]);
    const conv = L.Conv2D(1, [2, 3], { useBias: false });
    const y = conv(x);
    const k = Array.from(conv.kernel.data);
    expect(y.shape).toEqual([1, 1, 1, 1]);
    expect(y.item()).toBeCloseTo(k.reduce((s, w, i) => s + w * i, 0), 5);
  });
});

describe('options', () => {
  /** Every layer class with its leading positional arguments; the options object last. */
  const layers: Record<string, (o: object) => unknown> = {
    InputLayer: (o) => L.InputLayer({ shape: [2], ...o }),
    Dense: (o) => L.Dense(2, o), Embedding: (o) => L.Embedding(5, 2, o), SimpleRNN: (o) => L.SimpleRNN(2, o), LSTM: (o) => L.LSTM(2, o), GRU: (o) => L.GRU(2, o),
    Attention: (o) => L.Attention(o), MultiHeadAttention: (o) => L.MultiHeadAttention({ numHeads: 1, keyDim: 2, ...o }),
    Activation: (o) => L.Activation('relu', o), Flatten: (o) => L.Flatten(o), Reshape: (o) => L.Reshape([2], o), Dropout: (o) => L.Dropout(0.5, o),
    Add: (o) => L.Add(o), Subtract: (o) => L.Subtract(o), Multiply: (o) => L.Multiply(o), Average: (o) => L.Average(o), Maximum: (o) => L.Maximum(o),
    Minimum: (o) => L.Minimum(o), Concatenate: (o) => L.Concatenate(-1, o),
    Conv1D: (o) => L.Conv1D(1, 1, o), Conv2D: (o) => L.Conv2D(1, 1, o), Conv3D: (o) => L.Conv3D(1, 1, o),
    MaxPooling1D: (o) => L.MaxPooling1D(2, o), MaxPooling2D: (o) => L.MaxPooling2D(2, o), MaxPooling3D: (o) => L.MaxPooling3D(2, o),
    AveragePooling1D: (o) => L.AveragePooling1D(2, o), AveragePooling2D: (o) => L.AveragePooling2D(2, o), AveragePooling3D: (o) => L.AveragePooling3D(2, o),
    GlobalAveragePooling1D: (o) => L.GlobalAveragePooling1D(o), GlobalAveragePooling2D: (o) => L.GlobalAveragePooling2D(o),
    GlobalAveragePooling3D: (o) => L.GlobalAveragePooling3D(o), GlobalMaxPooling1D: (o) => L.GlobalMaxPooling1D(o),
    GlobalMaxPooling2D: (o) => L.GlobalMaxPooling2D(o), GlobalMaxPooling3D: (o) => L.GlobalMaxPooling3D(o),
    BatchNormalization: (o) => L.BatchNormalization(o), LayerNormalization: (o) => L.LayerNormalization(o),
    Lambda: (o) => L.Lambda((x) => x, o), TimeDistributed: (o) => L.TimeDistributed(L.Dense(2), o), Bidirectional: (o) => L.Bidirectional(L.LSTM(2), o),
    Masking: (o) => L.Masking(o),
  };

  it('the table has every layer class of keras.layers, and no other', () => {
    const classes = Object.entries(L).filter(([, v]) => typeof v === 'function' && v.prototype instanceof L.Layer).map(([k]) => k);
    expect(Object.keys(layers).sort()).toEqual(classes.sort());
  });

  it.each(Object.keys(layers))('%s: an unknown key is an error naming the layer and the key; its own options are accepted', (name) => {
    const where = name === 'InputLayer' ? 'keras.Input' : name;
    expect(oneLine(() => layers[name]!({ fooBar: 1 }))).toMatch(new RegExp(`^${where}( '\\w+')?: unknown option 'fooBar'; options: .*name`));
    // keras.Input takes `shape`, every layer `inputShape`
    const [named, hint] = name === 'InputLayer' ? [where, ''] : [`${where} 'mine'`, " \\(did you mean 'inputShape'\\?\\)"];
    expect(oneLine(() => layers[name]!({ name: 'mine', input_shape: [2] }))).toMatch(new RegExp(`^${named}: unknown option 'input_shape'${hint}`));
    expect(() => layers[name]!({ name: `${name}_ok` })).not.toThrow();
  });

  // Keras 3.15's keyword arguments of each layer class beyond those of every layer (the Keras signatures; kiln takes
  // the leading ones, units or filters, positionally), those popped from **kwargs (input_length, rms_scaling, lora_*)
  // included, and the options of each call beyond its inputs
  const KERAS_BASE = ['activity_regularizer', 'trainable', 'dtype', 'autocast', 'name', 'input_dim', 'input_shape'];
  const rnn = ['activation', 'use_bias', 'kernel_initializer', 'recurrent_initializer', 'bias_initializer', 'kernel_regularizer', 'recurrent_regularizer', 'bias_regularizer',
    'kernel_constraint', 'recurrent_constraint', 'bias_constraint', 'dropout', 'recurrent_dropout', 'return_sequences', 'return_state', 'go_backwards', 'stateful', 'unroll', 'seed'];
  const conv = ['strides', 'padding', 'data_format', 'dilation_rate', 'groups', 'activation', 'use_bias', 'kernel_initializer', 'bias_initializer', 'kernel_regularizer',
    'bias_regularizer', 'kernel_constraint', 'bias_constraint', 'lora_rank', 'lora_alpha'];
  const pool = ['strides', 'padding', 'data_format'], globalPool = ['data_format', 'keepdims'];
  const KERAS: Record<string, [string[], string[]]> = {
    Dense: [['activation', 'use_bias', 'kernel_initializer', 'bias_initializer', 'kernel_regularizer', 'bias_regularizer', 'kernel_constraint', 'bias_constraint',
      'lora_rank', 'lora_alpha', 'quantization_config'], []],
    Embedding: [['embeddings_initializer', 'embeddings_regularizer', 'embeddings_constraint', 'mask_zero', 'weights', 'lora_rank', 'lora_alpha', 'quantization_config', 'input_length'], []],
    SimpleRNN: [rnn, ['initial_state', 'mask']], LSTM: [[...rnn, 'recurrent_activation', 'unit_forget_bias', 'use_cudnn'], ['initial_state', 'mask']],
    GRU: [[...rnn, 'recurrent_activation', 'reset_after', 'use_cudnn'], ['initial_state', 'mask']],
    Attention: [['use_scale', 'score_mode', 'dropout', 'seed'], ['mask', 'return_attention_scores', 'use_causal_mask']],
    MultiHeadAttention: [['num_heads', 'key_dim', 'value_dim', 'dropout', 'use_bias', 'output_shape', 'attention_axes', 'sliding_window', 'flash_attention', 'kernel_initializer',
      'bias_initializer', 'kernel_regularizer', 'bias_regularizer', 'kernel_constraint', 'bias_constraint', 'use_gate', 'seed'],
    ['query_mask', 'value_mask', 'key_mask', 'attention_mask', 'return_attention_scores', 'use_causal_mask']],
    Activation: [[], []], Flatten: [['data_format'], []], Reshape: [[], []], Dropout: [['noise_shape', 'seed'], []],
    Add: [[], []], Subtract: [[], []], Multiply: [[], []], Average: [[], []], Maximum: [[], []], Minimum: [[], []], Concatenate: [['axis'], []],
    Conv1D: [conv, []], Conv2D: [conv, []], Conv3D: [conv, []],
    MaxPooling1D: [pool, []], MaxPooling2D: [pool, []], MaxPooling3D: [pool, []], AveragePooling1D: [pool, []], AveragePooling2D: [pool, []], AveragePooling3D: [pool, []],
    GlobalAveragePooling1D: [globalPool, ['mask']], GlobalAveragePooling2D: [globalPool, []], GlobalAveragePooling3D: [globalPool, []],
    GlobalMaxPooling1D: [globalPool, []], GlobalMaxPooling2D: [globalPool, []], GlobalMaxPooling3D: [globalPool, []],
    BatchNormalization: [['axis', 'momentum', 'epsilon', 'center', 'scale', 'beta_initializer', 'gamma_initializer', 'moving_mean_initializer', 'moving_variance_initializer',
      'beta_regularizer', 'gamma_regularizer', 'beta_constraint', 'gamma_constraint', 'renorm', 'renorm_clipping', 'renorm_momentum', 'synchronized'], ['mask']],
    LayerNormalization: [['axis', 'epsilon', 'center', 'scale', 'beta_initializer', 'gamma_initializer', 'beta_regularizer', 'gamma_regularizer', 'beta_constraint',
      'gamma_constraint', 'rms_scaling'], []],
    Lambda: [['output_shape', 'mask', 'arguments'], ['mask']], TimeDistributed: [[], ['mask']],
    Bidirectional: [['merge_mode', 'weights', 'backward_layer'], ['initial_state', 'mask']], Masking: [['mask_value'], []],
  };
  /** The Keras call options kiln implements (the others of KERAS's second lists are errors saying not supported). */
  const CALL_IMPLEMENTED: Record<string, string[]> = {
    SimpleRNN: ['mask'], LSTM: ['mask'], GRU: ['mask'], GlobalAveragePooling1D: ['mask'], Attention: ['useCausalMask', 'mask'], MultiHeadAttention: ['queryMask', 'valueMask', 'keyMask', 'attentionMask', 'useCausalMask'],
  };
  const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const messageOf = (fn: () => unknown): string => { try { fn(); return ''; } catch (e) { return (e as Error).message; } };

  it.each(Object.keys(KERAS))('%s takes the options its Keras class has (implemented, or an error saying not supported), and no other', (name) => {
    const own = new Set([...KERAS_BASE, ...KERAS[name]![0]].map(camel));
    for (const k of own) expect(messageOf(() => layers[name]!({ [k]: { not: 'a default' } })), k).not.toMatch(/unknown option/);
    const others = new Set(Object.values(KERAS).flatMap(([o]) => o.map(camel)).filter((k) => !own.has(k)));
    for (const k of others) expect(messageOf(() => layers[name]!({ [k]: false })), k).toMatch(new RegExp(`^${name}( '\\w+')?: unknown option '${k}'`));
  });

  it('call options: those of the Keras call are not supported (masks, initial states), the others unknown', () => {
    const seq = ops.ones([1, 2, 2]);
    const calls: Record<string, (o: object) => unknown> = {
      Dense: (o) => L.Dense(2)(seq, o), Dropout: (o) => L.Dropout(0.5)(seq, o), LSTM: (o) => L.LSTM(2)(seq, o), GRU: (o) => L.GRU(2)(seq, o),
      SimpleRNN: (o) => L.SimpleRNN(2)(seq, o), Attention: (o) => L.Attention()([seq, seq], o),
      MultiHeadAttention: (o) => L.MultiHeadAttention({ numHeads: 1, keyDim: 2 })(seq, seq, o), BatchNormalization: (o) => L.BatchNormalization()(seq, o),
      GlobalAveragePooling1D: (o) => L.GlobalAveragePooling1D()(seq, o), GlobalMaxPooling1D: (o) => L.GlobalMaxPooling1D()(seq, o),
      LayerNormalization: (o) => L.LayerNormalization()(seq, o), Flatten: (o) => L.Flatten()(seq, o),
    };
    const all = new Set(Object.values(KERAS).flatMap(([, c]) => c.map(camel)));
    for (const [name, call] of Object.entries(calls)) {
      const own = KERAS[name]![1].map(camel).filter((k) => !CALL_IMPLEMENTED[name]?.includes(k));
      for (const k of own) expect(messageOf(() => call({ [k]: ops.ones([1, 2]) })), `${name} ${k}`).toMatch(new RegExp(`^${name} '\\w+' call: option '${k}' is not supported by kiln`));
      for (const k of [...all].filter((x) => !KERAS[name]![1].map(camel).includes(x))) expect(messageOf(() => call({ [k]: false })), `${name} ${k}`).toMatch(new RegExp(`^${name} '\\w+' call: unknown option '${k}'; options: training${['', ...(CALL_IMPLEMENTED[name] ?? [])].join(', ')}$`));
      expect(() => call({ training: false })).not.toThrow();
    }
    const m = classifier();
    expect(oneLine(() => m(ops.ones([1, 2]), untyped({ mask: ops.ones([1, 2]) })))).toMatch(/^Sequential 'sequential' call: option 'mask' is not supported by kiln/);
    expect(oneLine(() => m(ops.ones([1, 2]), untyped({ queryMask: 1 })))).toMatch(/^Sequential 'sequential' call: unknown option 'queryMask'/);
  });

  it('keras.Input, optimizers, losses, compile, fit, evaluate and predict: the options of their Keras counterparts only', () => {
    const m = classifier();
    const x = ops.ones([2, 2]), y = ops.array([0, 1]);
    const cases: [() => unknown, string][] = [
      [() => L.Dense(4, untyped({ returnState: false })), "Dense: unknown option 'returnState'"], // Keras's Dense has none: it raises
      [() => L.Dense(4, untyped({ activityConstraint: null })), "Dense: unknown option 'activityConstraint'"], // no Keras layer has one
      [() => keras.Input(untyped({ shape: [2], sparse: true })), "keras.Input: option 'sparse' is not supported"],
      [() => keras.Input(untyped({ shape: [2], returnState: false })), "keras.Input: unknown option 'returnState'"],
      [() => keras.optimizers.SGD(untyped({ amsgrad: false })), "optimizers.SGD: unknown option 'amsgrad'"],
      [() => keras.optimizers.RMSprop(untyped({ useEma: true })), "optimizers.RMSprop: option 'useEma' is not supported"],
      [() => keras.optimizers.AdamW(untyped({ amsgrad: true })), "optimizers.AdamW: option 'amsgrad' is not supported"],
      [() => keras.losses.MeanSquaredError(untyped({ labelSmoothing: 0 })), "losses.MeanSquaredError: unknown option 'labelSmoothing'"],
      [() => keras.losses.CategoricalCrossentropy(untyped({ ignoreClass: null })), "losses.CategoricalCrossentropy: unknown option 'ignoreClass'"],
      [() => keras.losses.SparseCategoricalCrossentropy(untyped({ ignoreClass: 0 })), "losses.SparseCategoricalCrossentropy: option 'ignoreClass' is not supported"],
      [() => keras.losses.Huber(untyped({ dtype: 'float16' })), "losses.Huber: option 'dtype' is not supported"],
      [() => m.compile(untyped({ loss: 'mse', callbacks: [] })), "Model 'sequential': compile: unknown option 'callbacks'"],
      [() => m.compile(untyped({ loss: 'mse', autoScaleLoss: false })), "Model 'sequential': compile: option 'autoScaleLoss' is not supported"],
      [() => m.fit(x, y, untyped({ verbose: 0, runEagerly: true })), "fit: unknown option 'runEagerly'"],
      [() => m.fit(x, y, untyped({ verbose: 0, steps: 1 })), "fit: unknown option 'steps'"],
      [() => m.evaluate(x, y, untyped({ verbose: 0, classWeight: {} })), "evaluate: unknown option 'classWeight'"],
      [() => m.evaluate(x, y, untyped({ verbose: 0, steps: 1 })), "evaluate: option 'steps' is not supported"],
      [() => m.predict(x, untyped({ sampleWeight: [1, 1] })), "predict: unknown option 'sampleWeight'"],
    ];
    for (const [fn, start] of cases) expect(oneLine(fn).startsWith(start), `${oneLine(fn)} / ${start}`).toBe(true);
    // their Keras options at the Keras defaults are accepted
    expect(() => keras.optimizers.Adam(untyped({ amsgrad: false, clipnorm: null, useEma: false }))).not.toThrow();
    expect(() => keras.losses.SparseCategoricalCrossentropy(untyped({ ignoreClass: null, axis: -1 }))).not.toThrow();
    expect(() => L.LSTM(2, untyped({ useCudnn: 'auto', seed: null }))).not.toThrow();
  });

  it.each([
    ['LSTM', () => L.LSTM(2, untyped({ recurrentDropout: 0.5 })), "LSTM: option 'recurrentDropout' is not supported by kiln (it accepts only the Keras default, 0)"],
    ['GRU', () => L.GRU(2, untyped({ name: 'g', dropout: 0.2 })), "GRU 'g': option 'dropout' is not supported by kiln (it accepts only the Keras default, 0)"],
    ['SimpleRNN', () => L.SimpleRNN(2, untyped({ recurrent_dropout: 0.1 })), "SimpleRNN: option 'recurrent_dropout' is not supported by kiln (it accepts only the Keras default, 0)"],
    ['LSTM stateful', () => L.LSTM(2, untyped({ stateful: true })), "LSTM: option 'stateful' is not supported by kiln (it accepts only the Keras default, false)"],
    ['MultiHeadAttention', () => L.MultiHeadAttention(untyped({ numHeads: 1, keyDim: 2, dropout: 0.1 })), "MultiHeadAttention: option 'dropout' is not supported by kiln (it accepts only the Keras default, 0)"],
    ['Dense regularizer', () => L.Dense(2, untyped({ kernelRegularizer: 'l2' })), "Dense: option 'kernelRegularizer' is not supported by kiln (it accepts only the Keras default, null)"],
    ['Adam', () => keras.optimizers.Adam(untyped({ amsgrad: true })), "optimizers.Adam: option 'amsgrad' is not supported by kiln (it accepts only the Keras default, false)"],
    ['SGD', () => keras.optimizers.SGD(untyped({ useEma: true })), "optimizers.SGD: option 'useEma' is not supported by kiln (it accepts only the Keras default, false)"],
    ['loss', () => keras.losses.CategoricalCrossentropy(untyped({ labelSmoothing: 0.1 })), "losses.CategoricalCrossentropy: option 'labelSmoothing' is not supported by kiln (it accepts only the Keras default, 0)"],
  ])('a Keras option kiln does not implement: %s', (_, fn, message) => {
    expect(oneLine(fn)).toBe(message);
  });

  it('Keras options at their defaults are what kiln does: accepted, with the same result', () => {
    const x = keras.ops.reshape(keras.ops.arange(12, undefined, 1, 'float32'), [1, 4, 3]);
    keras.utils.setRandomSeed(5);
    const plain = L.LSTM(2)(x);
    keras.utils.setRandomSeed(5);
    const keras3 = L.LSTM(2, untyped({ returnState: false, dropout: 0, recurrentDropout: 0, stateful: false, unroll: false }))(x);
    expect(Array.from(keras3.data)).toEqual(Array.from(plain.data));
  });

  it('call options: masks and attention scores are errors, training is accepted', () => {
    const q = ops.ones([1, 2, 2]);
    const mha = L.MultiHeadAttention({ numHeads: 1, keyDim: 2 });
    expect(oneLine(() => mha(q, q, { attentionMask: ops.ones([1, 2, 3]) })))
      .toBe("Layer 'multi_head_attention' (MultiHeadAttention) failed: attentionMask must have shape [1, 2, 2] (batch, query steps, key steps), got (1, 2, 3)");
    expect(oneLine(() => mha(q, q, untyped({ returnAttentionScores: true })))).toMatch(/option 'returnAttentionScores' is not supported/);
    expect(oneLine(() => L.Attention()([q, q], untyped({ returnAttentionScores: true })))).toMatch(/^Attention 'attention' call: option 'returnAttentionScores' is not supported/);
    expect(oneLine(() => L.Dense(2)(q, untyped({ mask: ops.ones([1, 2]) })))).toMatch(/^Dense 'dense' call: unknown option 'mask'; options: training$/); // Keras's Dense.call has no mask
    expect(oneLine(() => L.Dense(2)(q, untyped({ trainig: true })))).toMatch(/^Dense 'dense_1' call: unknown option 'trainig'; options: training$/);
    expect(mha(q, q, { training: true }).shape).toEqual([1, 2, 2]);
  });

  it('compile, fit, evaluate, predict, keras.Model, Sequential, losses and optimizers', () => {
    const m = classifier();
    const x = ops.ones([2, 2]), y = ops.array([0, 1]);
    expect(oneLine(() => m.compile(untyped({ loss: 'mse', stepsPerExecution: 2 })))).toBe("Model 'sequential': compile: option 'stepsPerExecution' is not supported by kiln (it accepts only the Keras default, 1)");
    expect(oneLine(() => m.compile(untyped({ loss: 'mse', loss_weights: [1] })))).toMatch(/unknown option 'loss_weights' \(did you mean 'lossWeights'\?\); options: optimizer, loss, metrics, lossWeights, runEagerly, weightedMetrics$/);
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, callbacks: [{ onBatchEnd() {} }] })))).toMatch(/^fit: callbacks\[0\]: unknown hook 'onBatchEnd'; hooks: onTrainBegin, /);
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, epoch: 3 })))).toMatch(/^fit: unknown option 'epoch'; options: epochs, /);
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, stepsPerEpoch: 3 })))).toMatch(/^fit: option 'stepsPerEpoch' is not supported/);
    expect(oneLine(() => m.evaluate(x, y, untyped({ verbose: 0, return_dict: true })))).toMatch(/^evaluate: unknown option 'return_dict' \(did you mean 'returnDict'\?\)/);
    expect(oneLine(() => m.predict(x, untyped({ steps: 1 })))).toMatch(/^predict: option 'steps' is not supported/);
    expect(oneLine(() => m.predict(x, untyped({ batch_size: 1 })))).toMatch(/^predict: unknown option 'batch_size' \(did you mean 'batchSize'\?\); options: batchSize, verbose, print, backend, callbacks$/);
    const inputs = keras.Input({ shape: [2] });
    expect(oneLine(() => keras.Model(untyped({ inputs, outputs: L.Dense(1)(inputs), trainable: false })))).toMatch(/^keras.Model: unknown option 'trainable'; options: inputs, outputs, name$/);
    expect(oneLine(() => keras.Sequential([], untyped({ inputShape: [2] })))).toMatch(/^Sequential: unknown option 'inputShape'; options: name, trainable$/);
    expect(oneLine(() => keras.losses.SparseCategoricalCrossentropy(untyped({ axis: 0 })))).toBe("losses.SparseCategoricalCrossentropy: option 'axis' is not supported by kiln (it accepts only the Keras default, -1)");
    expect(oneLine(() => keras.losses.SparseCategoricalCrossentropy(untyped({ axes: 0 })))).toMatch(/^losses.SparseCategoricalCrossentropy: unknown option 'axes'; options: reduction, name, fromLogits$/);
    expect(oneLine(() => keras.losses.MeanSquaredError(untyped({ reduction: 'avg' })))).toMatch(/^losses.MeanSquaredError: reduction must be one of /);
    expect(oneLine(() => keras.optimizers.Adam(untyped({ beta_1: 0.8 })))).toMatch(/^optimizers.Adam: unknown option 'beta_1' \(did you mean 'beta1'\?\)/);
    expect(oneLine(() => keras.optimizers.SGD(untyped({ learningRate: 'fast' })))).toBe('optimizers.SGD: learningRate must be a non-negative number, got fast');
    expect(oneLine(() => L.Dense(2, 'relu' as never))).toBe('Dense: options must be an object, got the string "relu"');
    expect(oneLine(() => L.Dense(2, { activation: 'rleu' }))).toMatch(/^Dense: option 'activation': unknown activation 'rleu'; known: /);
    expect(oneLine(() => L.LSTM(2, { name: 'l', recurrentInitializer: 'orthogonl' }))).toMatch(/^LSTM 'l': option 'recurrentInitializer': unknown initializer 'orthogonl'; known: /);
    expect(oneLine(() => m.fit(x, y, untyped({ verbose: 0, validationData: x })))).toMatch(/^fit: validationData must be \[x, y\] or \[x, y, sampleWeight\], got a Tensor$/);
  });

  it('metrics: a misspelt name is an error in compile naming it and listing the known ones; unknown constructor options are errors', () => {
    const m = classifier();
    const known = 'known: accuracy, acc, sparse_categorical_accuracy, categorical_accuracy, binary_accuracy, mae, mean_absolute_error, mse, mean_squared_error, auc, precision, recall, top_k_categorical_accuracy';
    expect(oneLine(() => m.compile({ loss: 'sparse_categorical_crossentropy', metrics: ['accuracy', 'acc2'] }))).toBe(`Model 'sequential': compile: unknown metric 'acc2'; ${known}`);
    expect(oneLine(() => m.compile({ loss: 'sparse_categorical_crossentropy', metrics: { dense: ['acc2'] } }))).toBe(`Model 'sequential': compile: unknown metric 'acc2'; ${known}`);
    expect(oneLine(() => m.compile({ loss: 'sparse_categorical_crossentropy', metrics: [['mae', 'msee']] }))).toMatch(/^Model 'sequential': compile: unknown metric 'msee'; known: /);
    expect(oneLine(() => m.compile(untyped({ loss: 'sparse_categorical_crossentropy', metrics: [5] })))).toBe("Model 'sequential': compile: a metric is a name or a keras.metrics object, got number 5");
    expect(oneLine(() => m.compile(untyped({ loss: 'sparse_categorical_crossentropy', metrics: 'accuracy' })))).toMatch(/^Model 'sequential': compile: metrics must be a list, .*got the string "accuracy"$/);
    // the compile that failed left the earlier one in place: fit still reports its accuracy
    const h = m.fit(ops.ones([2, 2]), ops.array([0, 1]), { verbose: 0 });
    expect(Object.keys(h.history)).toEqual(['loss', 'accuracy']);

    expect(oneLine(() => keras.metrics.Accuracy(untyped({ foo: 1 })))).toBe("metrics.Accuracy: unknown option 'foo'; options: name, dtype");
    expect(oneLine(() => keras.metrics.BinaryAccuracy(untyped({ treshold: 0.7 })))).toBe("metrics.BinaryAccuracy: unknown option 'treshold'; options: name, dtype, threshold");
    expect(oneLine(() => keras.metrics.Mean(untyped(5)))).toBe('metrics.Mean: options must be an object, got number 5');
    expect(oneLine(() => keras.metrics.MeanSquaredError(untyped({ name: 7 })))).toBe('metrics.MeanSquaredError: name must be a non-empty string, got number 7');
    expect(oneLine(() => keras.metrics.SparseCategoricalAccuracy(untyped({ dtype: 'float64' })))).toBe("metrics.SparseCategoricalAccuracy: dtype must be 'float32' (kiln's metrics accumulate in float32), got the string \"float64\"");
    expect(oneLine(() => keras.metrics.BinaryAccuracy({ threshold: untyped('high') }))).toBe('metrics.BinaryAccuracy: threshold must be a finite number, got the string "high"');
    // the name as Keras's first positional argument, or in the options; threshold used
    expect(keras.metrics.Accuracy('exact').name).toBe('exact');
    expect(keras.metrics.CategoricalAccuracy({ name: 'cat', dtype: 'float32' }).name).toBe('cat');
    const b = keras.metrics.BinaryAccuracy({ threshold: 0.7 });
    b.updateState(ops.array([[1], [1], [0]], 'float32'), ops.array([[0.8], [0.6], [0.2]], 'float32'));
    expect(b.result().data[0]).toBeCloseTo(2 / 3, 6); // 0.6 is under 0.7: one of three wrong
  });

  it('applyGradients takes [gradient, variable] pairs: anything else is one line naming the pair', () => {
    const m = classifier();
    const [kernel, bias] = m.trainableWeights as [keras.Variable, keras.Variable];
    const opt = keras.optimizers.SGD({ learningRate: 0.5 });
    expect(oneLine(() => opt.applyGradients(untyped(5)))).toBe('SGD: applyGradients takes a list of [gradient, variable] pairs, got number 5');
    expect(oneLine(() => opt.applyGradients(untyped([[1, 2]])))).toBe('SGD: applyGradients: pair 0 is not [gradient, variable]: its second element is number 2');
    expect(oneLine(() => opt.applyGradients(untyped([[ops.onesLike(kernel), kernel], bias])))).toBe('SGD: applyGradients: pair 1 is not [gradient, variable]: it is a Variable');
    expect(oneLine(() => opt.applyGradients(untyped([[undefined, bias]])))).toBe("SGD: applyGradients: no gradient for variable 'dense/bias' (pair 0)");
    expect(Array.from(bias.data)).toEqual([0, 0, 0]);
    opt.applyGradients(untyped([[[1, 2, 4], bias]])); // nested arrays convert, as Keras converts
    expect(Array.from(bias.data)).toEqual([-0.5, -1, -2]);
  });

  it('reductions: a misspelt option is an error, not a reduction over every axis', () => {
    const x = ops.array([[1, 2, 3], [4, 5, 6]], 'float32');
    const cases: [string, () => unknown][] = [
      ['sum', () => ops.sum(x, untyped({ axes: 0 }))], ['max', () => ops.max(x, untyped({ axes: 0 }))], ['min', () => ops.min(x, untyped({ axes: 0 }))],
      ['prod', () => ops.prod(x, untyped({ axes: 0 }))], ['mean', () => ops.mean(x, untyped({ axes: 0 }))], ['variance', () => ops.variance(x, untyped({ axes: 0 }))],
      ['std', () => ops.std(x, untyped({ axes: 0 }))], ['logsumexp', () => ops.logsumexp(x, untyped({ axes: 0 }))],
    ];
    for (const [name, fn] of cases) expect(oneLine(fn)).toBe(`ops.${name}: unknown option 'axes'; options: axis, keepdims`);
    expect(oneLine(() => ops.mean(x, untyped({ axis: 1, keep_dims: true })))).toBe("ops.mean: unknown option 'keep_dims'; options: axis, keepdims");
    expect(Array.from(ops.sum(x, { axis: 0, keepdims: true }).data)).toEqual([5, 7, 9]);
    expect(Array.from(ops.mean(x, 1).data)).toEqual([2, 5]);
  });

  it('BinaryCrossentropy takes its axis (not ignored): the mean over axis 0 of the per-element losses', () => {
    const yTrue = ops.array([[1, 0, 1], [0, 0, 1]], 'float32'), yPred = ops.array([[0.9, 0.2, 0.6], [0.3, 0.1, 0.8]], 'float32');
    const bce = (t: number, p: number) => -(t * Math.log(p) + (1 - t) * Math.log(1 - p));
    const t = yTrue.toArray() as number[][], p = yPred.toArray() as number[][];
    const perColumn = [0, 1, 2].map((j) => (bce(t[0]![j]!, p[0]![j]!) + bce(t[1]![j]!, p[1]![j]!)) / 2);
    const got = keras.losses.BinaryCrossentropy({ axis: 0, reduction: 'none' })(yTrue, yPred);
    expect(got.shape).toEqual([3]);
    Array.from(got.data).forEach((v, j) => expect(v).toBeCloseTo(perColumn[j]!, 5));
  });
});
