// Layers and models as Keras users meet them: construction, calling, weights, names, summary, errors, Dropout.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { seedMlp, titleBody } from './seed_models.js';
import { uniform } from './helpers.js';

const ops = keras.ops;
type Dense = InstanceType<typeof keras.layers.Dense>;

beforeEach(() => keras.backend.clearSession());

describe('construction with and without new', () => {
  const L = keras.layers;
  it.each([
    ['Dense', () => new L.Dense(3), () => L.Dense(3)],
    ['Activation', () => new L.Activation('relu'), () => L.Activation('relu')],
    ['Flatten', () => new L.Flatten(), () => L.Flatten()],
    ['Reshape', () => new L.Reshape([2, 2]), () => L.Reshape([2, 2])],
    ['Dropout', () => new L.Dropout(0.5), () => L.Dropout(0.5)],
    ['Add', () => new L.Add(), () => L.Add()],
    ['Concatenate', () => new L.Concatenate(), () => L.Concatenate()],
    ['Sequential', () => new keras.Sequential([L.Dense(2)]), () => keras.Sequential([L.Dense(2)])],
  ] as const)('%s', (className, withNew, without) => {
    for (const layer of [withNew(), without()]) {
      expect(layer).toBeInstanceOf(keras.layers.Layer);
      expect(layer.className).toBe(className);
      expect(typeof layer).toBe('function'); // callable: layer(x)
    }
  });

  it('keras.Model', () => {
    const inputs = keras.Input({ shape: [3] });
    const outputs = keras.layers.Dense(2)(inputs);
    for (const m of [new keras.Model({ inputs, outputs }), keras.Model({ inputs, outputs })]) {
      expect(m).toBeInstanceOf(keras.Functional);
      expect(m).toBeInstanceOf(keras.Model);
    }
  });
});

describe('calling layers and models', () => {
  it('layer(x) computes on tensors and nested arrays, and records a node on KerasTensors', () => {
    const dense = keras.layers.Dense(3);
    expect(dense(ops.ones([2, 4])).shape).toEqual([2, 3]);
    expect(dense([[1, 2, 3, 4]]).shape).toEqual([1, 3]);
    const sym = dense(keras.Input({ shape: [4] }));
    expect(sym).toBeInstanceOf(keras.layers.KerasTensor);
    expect(sym.shape).toEqual([null, 3]);
  });

  it('model(x) equals model.predict(x), and a model is callable on KerasTensors as a layer', () => {
    const model = seedMlp.kiln();
    const x = uniform([4, 784], 1);
    expect((model(x) as keras.Tensor).data).toEqual((model.predict(x) as keras.Tensor).data);
    const inputs = keras.Input({ shape: [784] });
    const outer = keras.Model({ inputs, outputs: keras.layers.Dense(2)(model(inputs)) });
    expect(outer.predict(x).shape).toEqual([4, 2]);
    expect(outer.countParams()).toBe(50_890 + 10 * 2 + 2);
  });

  it('Dense applies to the last axis of rank-3 inputs', () => {
    expect(keras.layers.Dense(5)(ops.ones([2, 3, 4])).shape).toEqual([2, 3, 5]);
  });
});

describe('getWeights / setWeights', () => {
  it('round-trips on a layer, in Keras order (kernel, bias), as copies', () => {
    const dense = keras.layers.Dense(3);
    dense.build([null, 2]);
    const kernel = [[1, 2, 3], [4, 5, 6]], bias = [0.5, -0.5, 0];
    dense.setWeights([kernel, bias]);
    const [k, b] = dense.getWeights();
    expect(k!.toArray()).toEqual(kernel);
    expect(b!.toArray()).toEqual(bias);
    expect(k!.dtype).toBe('float32'); // integer values were cast to the weight's dtype
    k!.data[0] = 100; // a copy: the layer is unchanged
    expect(dense.kernel.data[0]).toBe(1);
    expect(dense([[1, 1]]).toArray()).toEqual([[5.5, 6.5, 9]]);
  });

  it('round-trips on a model', () => {
    const a = titleBody.kiln(), b = titleBody.kiln();
    b.setWeights(a.getWeights());
    const xs = [uniform([2, 100], 1), uniform([2, 500], 2)];
    const [pa, da] = a.predict(xs) as keras.Tensor[];
    const [pb, db] = b.predict(xs) as keras.Tensor[];
    expect(pb!.data).toEqual(pa!.data);
    expect(db!.data).toEqual(da!.data);
  });

  it('names the layer, the weight and the shapes when shapes or counts are wrong', () => {
    const dense = keras.layers.Dense(3, { name: 'probe' });
    dense.build([null, 2]);
    expect(() => dense.setWeights([ops.ones([3, 2]), ops.ones([3])])).toThrow("Layer 'probe': weight 'probe/kernel' has shape (2, 3), got (3, 2)");
    expect(() => dense.setWeights([ops.ones([2, 3])])).toThrow("Layer 'probe': setWeights expects 2 arrays (probe/kernel, probe/bias), got 1");
    const model = seedMlp.kiln();
    expect(() => model.setWeights(model.getWeights().slice(1))).toThrow(/expects 4 arrays .*dense\/kernel.*got 3/);
  });
});

describe('Keras-style automatic names', () => {
  it('counts per class name from 0, and clearSession resets', () => {
    const names = () => [keras.layers.Dense(1), keras.layers.Dense(1), keras.layers.Dropout(0.1), keras.layers.Activation('relu'),
      keras.layers.Flatten(), keras.layers.Concatenate(), keras.layers.Dense(1, { name: 'mine' })].map((l) => l.name);
    expect(names()).toEqual(['dense', 'dense_1', 'dropout', 'activation', 'flatten', 'concatenate', 'mine']);
    expect(names()).toEqual(['dense_2', 'dense_3', 'dropout_1', 'activation_1', 'flatten_1', 'concatenate_1', 'mine']);
    keras.backend.clearSession();
    expect(keras.layers.Dense(1).name).toBe('dense');
  });

  it('models and inputs', () => {
    const inputs = keras.Input({ shape: [2] });
    expect(inputs.name).toBe('input_layer');
    expect(keras.Model({ inputs, outputs: keras.layers.Dense(1)(inputs) }).name).toBe('functional');
    expect(keras.Sequential().name).toBe('sequential');
    expect(keras.Sequential().name).toBe('sequential_1');
  });
});

describe('summary()', () => {
  const lines = (m: keras.Model): string[] => {
    const out: string[] = [];
    m.summary((l) => out.push(l));
    return out;
  };

  it('prints the Keras 3 table for the seed MLP', () => {
    const out = lines(seedMlp.kiln());
    const text = out.join('\n');
    expect(out[0]).toBe('Model: "sequential"');
    for (const h of ['Layer (type)', 'Output Shape', 'Param #']) expect(text).toContain(h);
    expect(out).toContainEqual(expect.stringMatching(/^│ dense \(Dense\) +│ \(None, 64\) +│ +50,240 │$/));
    expect(out).toContainEqual(expect.stringMatching(/^│ dropout \(Dropout\) +│ \(None, 64\) +│ +0 │$/));
    expect(out).toContainEqual(expect.stringMatching(/^│ dense_1 \(Dense\) +│ \(None, 10\) +│ +650 │$/));
    expect(out.slice(-3)).toEqual([
      ' Total params: 50,890 (198.79 KB)', ' Trainable params: 50,890 (198.79 KB)', ' Non-trainable params: 0 (0.00 B)',
    ]);
  });

  it('shows inputs and connections for the title/body model', () => {
    const text = lines(titleBody.kiln()).join('\n');
    for (const s of ['Connected to', 'title (InputLayer)', '(None, 100)', 'title[0][0]', 'concatenate[0][0]', '32,064']) {
      expect(text).toContain(s);
    }
    expect(text).toContain(' Total params: 39,173 (153.02 KB)');
  });
});

describe('clear errors that name the layer', () => {
  it.each([
    ['eager call', (d: Dense) => d(ops.ones([2, 100])), /Layer 'dense' \(Dense\).*784.*\(2, 100\)/],
    ['symbolic call', (d: Dense) => d(keras.Input({ shape: [100] })), /Layer 'dense' \(Dense\).*784.*\(None, 100\)/],
  ] as const)('Dense built for 784 features, %s on 100', (_name, call, message) => {
    const dense = keras.layers.Dense(64, { inputShape: [784] });
    keras.Sequential([dense]);
    expect(() => call(dense)).toThrow(message);
  });

  it('a model names the input and both shapes', () => {
    const model = seedMlp.kiln();
    expect(() => model.predict(ops.ones([2, 100]))).toThrow(/input 'input_layer' expects shape \(None, 784\), got \(2, 100\)/);
    expect(() => model(ops.ones([2, 100]))).toThrow(/\(None, 784\), got \(2, 100\)/);
  });

  it('Reshape names the layer when sizes differ', () => {
    expect(() => keras.layers.Reshape([5])(keras.Input({ shape: [2, 3] }))).toThrow(/Layer 'reshape'.*total size/);
  });

  it('Dense needs a known last dimension', () => {
    expect(() => keras.layers.Dense(2)(keras.Input({ shape: [null] }))).toThrow(/Layer 'dense'.*known last input dimension/);
  });
});

describe('Dropout', () => {
  const x = ops.add(uniform([200, 50], 3), 2); // no zeros in the input

  it.each([[{}], [{ training: false }]])('is the identity when not training (%j)', (opts) => {
    expect(keras.layers.Dropout(0.3)(x, opts).data).toEqual(x.data);
  });

  it.each([0.2, 0.5, 0.8])('with training, rate %f zeroes about that fraction and scales the rest by 1/(1-rate)', (rate) => {
    const y = keras.layers.Dropout(rate)(x, { training: true });
    let zeros = 0;
    y.data.forEach((v, i) => {
      if (v === 0) zeros++;
      else expect(Math.abs(v - x.data[i]! / (1 - rate))).toBeLessThan(1e-5);
    });
    // 10,000 Bernoulli draws: the standard deviation of the fraction is at most 0.005
    expect(Math.abs(zeros / x.size - rate)).toBeLessThan(0.03);
  });

  it('draws a new mask on every training call', () => {
    const drop = keras.layers.Dropout(0.5);
    expect(drop(x, { training: true }).data).not.toEqual(drop(x, { training: true }).data);
  });

  it('a given seed fixes the mask, as Keras\'s seed argument', () => {
    const a = keras.layers.Dropout(0.5, { seed: 42 })(x, { training: true });
    const b = keras.layers.Dropout(0.5, { seed: 42 })(x, { training: true });
    expect(b.data).toEqual(a.data);
  });

  it('rate 0 is the identity even when training; rates outside [0, 1) are rejected', () => {
    expect(keras.layers.Dropout(0)(x, { training: true }).data).toEqual(x.data);
    expect(() => keras.layers.Dropout(1)).toThrow(/rate must be in \[0, 1\)/);
  });

  it('in the seed MLP: model(x, { training: true }) differs from inference, model(x) does not', () => {
    const model = seedMlp.kiln();
    const xs = uniform([8, 784], 4);
    const infer = (model.predict(xs) as keras.Tensor).data;
    expect((model(xs) as keras.Tensor).data).toEqual(infer);
    expect((model(xs, { training: true }) as keras.Tensor).data).not.toEqual(infer);
  });
});

// BUG (frontend/models/model.ts normalizeInputs / executor.ts): Keras casts inputs to the model's input dtype;
// kiln passes an int32 tensor through and the interpreter rejects it ("expects f32[1,3], got Int32Array").
it('predict casts integer inputs to the float32 input dtype, as Keras', () => {
  const model = keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
  expect(model.predict([[1, 2, 3]]).data).toEqual(model.predict(ops.array([[1, 2, 3]], 'float32')).data);
});
