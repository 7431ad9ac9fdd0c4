// Keras 3 files both ways, against files that Python Keras 3.15.1 wrote (tests/fixtures/keras, made by
// tests/fixtures/make_keras_fixtures.py): kiln predicts what Keras predicted, writes what Keras writes, and round-trips.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import h5wasm from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { readNpy } from '../../runtime/npy.js';
import { readSafetensors } from '../../runtime/safetensors.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'keras');
// seq, vol and masked hold every layer class the other five lack (see the KERAS_CONFIG coverage test)
const NAMES = ['mlp', 'multi_io', 'cnn', 'rnn', 'mha', 'seq', 'vol', 'masked'] as const;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-keras-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => { await h5wasm.ready; });

const npy = (file: string) => {
  const a = readNpy(new Uint8Array(readFileSync(path.join(FIX, file))));
  return new keras.Tensor(a.dtype, a.shape, a.data);
};
/** <name>.x0.npy, <name>.x1.npy, ... (or .y*): the fixture's inputs (or Keras's predictions) in order. */
const numbered = (name: string, xy: 'x' | 'y') => {
  const out: keras.Tensor[] = [];
  while (existsSync(path.join(FIX, `${name}.${xy}${out.length}.npy`))) out.push(npy(`${name}.${xy}${out.length}.npy`));
  return out;
};
const inputs = (name: string) => numbered(name, 'x');
const outputs = (name: string) => numbered(name, 'y');
const predictList = (m: keras.Model, xs: keras.Tensor[]) => {
  const y = m.predict(xs.length === 1 ? xs[0]! : xs);
  return Array.isArray(y) ? y : [y];
};

/** Every dataset of an HDF5 file with its shape, and every group's `name` attribute. */
function h5Tree(bytes: Uint8Array): string[] {
  const file = path.join(mkdtempSync(path.join(tmp, 'h5-')), 'w.h5');
  writeFileSync(file, bytes);
  const f = new h5wasm.File(file, 'r');
  const out: string[] = [];
  const walk = (g: InstanceType<typeof h5wasm.Group>, at: string) => {
    for (const k of g.keys()) {
      const c = g.get(k)!;
      if (c instanceof h5wasm.Dataset) out.push(`${at}${k} ${JSON.stringify(c.shape)}`);
      else if (c instanceof h5wasm.Group) { out.push(`${at}${k}/`); walk(c, `${at}${k}/`); }
    }
  };
  walk(f, '');
  f.close();
  return out.sort();
}

const unzip = (file: string) => unzipSync(new Uint8Array(readFileSync(file)));
type Json = Record<string, unknown>;

/** A layer config's keys in order, each initializer's with the keys of its own config. */
const configKeys = (c: Json) => Object.entries(c).map(([k, v]) => (k.endsWith('_initializer') && v ? `${k}{${Object.keys((v as Json)['config'] as Json).join()}}` : k));

const maskOps = (l: Json) => String(l['module']).startsWith('keras.src.ops');
const hasMaskOps = (config: Json) => ((config['config'] as Json)['layers'] as Json[]).some(maskOps);

/**
 * The config's structure: class names and config keys of the model and each layer, layer names and connections; the
 * layers by name with `byName` (Keras's mask ops lengthen paths and so move layers in its depth order).
 */
function structure(config: Json, byName: boolean): unknown {
  const c = config['config'] as Json;
  const all = (c['layers'] as Json[]).filter((l) => !maskOps(l));
  const layers = byName ? all.sort((a, b) => String(a['name']).localeCompare(String(b['name']))) : all;
  return {
    top: Object.keys(config).sort(), model: Object.keys(c).sort(), classes: [config['module'], config['class_name']],
    // less the ops that compute Keras's masks (not_equal, any), which kiln does not write: it carries masks itself
    layers: layers.map((l) => ({
      keys: Object.keys(l).sort(), cls: l['class_name'], config: configKeys(l['config'] as Json), build: l['build_config'],
      // kwargs aside: Keras passes the masks it computed (kiln carries them along the graph itself)
      inbound: JSON.stringify(((l['inbound_nodes'] ?? null) as Json[] | null)?.map((n) => n['args']) ?? null),
    })),
    io: [c['input_layers'], c['output_layers']],
  };
}

describe.each(NAMES)('the Keras 3 fixture %s', (name) => {
  it('loads with keras.saving.loadModel and predicts what Keras predicted', async () => {
    const m = await keras.saving.loadModel(path.join(FIX, `${name}.keras`));
    const got = predictList(m, inputs(name));
    const want = outputs(name);
    expect(got.length).toBe(want.length);
    got.forEach((y, i) => {
      expect(y.shape).toEqual(want[i]!.shape);
      y.data.forEach((v, j) => expect(Math.abs(v - want[i]!.data[j]!)).toBeLessThan(1e-5 + 1e-5 * Math.abs(want[i]!.data[j]!)));
    });
  });

  it('saves a .keras that is structurally what Keras wrote (config keys, weight groups) and loads back identically', async () => {
    const m = await keras.saving.loadModel(path.join(FIX, `${name}.keras`));
    const file = path.join(tmp, `${name}.keras`);
    await m.save(file);
    const mine = unzip(file), theirs = unzip(path.join(FIX, `${name}.keras`));
    expect(Object.keys(mine).sort()).toEqual(Object.keys(theirs).sort());
    expect(Object.keys(JSON.parse(strFromU8(mine['metadata.json']!)) as Json)).toEqual(['keras_version', 'date_saved']);
    const cfg = (b: Uint8Array) => JSON.parse(strFromU8(b)) as Json;
    const byName = hasMaskOps(cfg(theirs['config.json']!));
    expect(byName).toBe(name === 'masked');
    expect(structure(cfg(mine['config.json']!), byName)).toEqual(structure(cfg(theirs['config.json']!), byName));
    expect(h5Tree(mine['model.weights.h5']!)).toEqual(h5Tree(theirs['model.weights.h5']!));

    const back = await keras.saving.loadModel(file);
    const xs = inputs(name);
    const a = predictList(m, xs), b = predictList(back, xs);
    a.forEach((y, i) => expect(b[i]!.data).toEqual(y.data));
    expect(back.weights.map((w) => w.path)).toEqual(m.weights.map((w) => w.path));
  });

  it('trains identically for one step after a save and load', async () => {
    const m = await keras.saving.loadModel(path.join(FIX, `${name}.keras`));
    const file = path.join(tmp, `${name}-train.keras`);
    await m.save(file);
    const back = await keras.saving.loadModel(file);
    const xs = inputs(name), ys = outputs(name).map((y) => keras.ops.multiply(y, 0.5));
    for (const model of [m, back]) {
      model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.1 }), loss: 'mse' });
      model.fit(xs.length === 1 ? xs[0]! : xs, ys.length === 1 ? ys[0]! : ys, { epochs: 1, batchSize: 3, verbose: 0, shuffle: false });
    }
    const before = (await keras.saving.loadModel(file)).weights;
    expect(m.weights.some((w, i) => w.trainable && w.data.some((v, j) => v !== before[i]!.data[j]))).toBe(true);
    back.weights.forEach((w, i) => expect(w.data).toEqual(m.weights[i]!.data));
  });
});

it('the fixtures hold every layer class kiln has', () => {
  const classes = new Set(NAMES.flatMap((name) => {
    const config = JSON.parse(strFromU8(unzip(path.join(FIX, `${name}.keras`))['config.json']!)) as Json;
    return ((config['config'] as Json)['layers'] as Json[]).map((l) => l['class_name']);
  }));
  // Lambda aside: a .keras file holds its Python bytecode, which kiln cannot load (the errors are tested below)
  const kiln = Object.keys(keras.layers).filter((k) => /^[A-Z]/.test(k) && !['Input', 'Layer', 'KerasTensor', 'LayerError', 'Lambda'].includes(k));
  expect(kiln.filter((k) => !classes.has(k))).toEqual([]);
});

it('saving a model with a Lambda is one error naming the layer, and writes no file', async () => {
  const m = keras.Sequential([keras.Input({ shape: [4] }), keras.layers.Lambda((x) => keras.ops.multiply(x as keras.Tensor, 2), { name: 'twice' }), keras.layers.Dense(2)]);
  const file = path.join(tmp, 'lambda.keras');
  await expect(m.save(file)).rejects.toThrow(/^layer 'twice' \(Lambda\) cannot be saved in a Keras file: its function is JavaScript code; /);
  expect(existsSync(file)).toBe(false);
});

it('a model built in TypeScript with the wrappers and masks saves, loads back and predicts identically', async () => {
  const tokens = keras.Input({ shape: [5], dtype: 'int32' }), x = keras.Input({ shape: [5, 3] });
  const h = keras.layers.Bidirectional(keras.layers.SimpleRNN(2, { returnSequences: true }), { mergeMode: 'ave' })(keras.layers.Embedding(7, 3, { maskZero: true })(tokens));
  const g = keras.layers.TimeDistributed(keras.layers.Dense(3))(keras.layers.Masking({ maskValue: 1 })(x));
  const m = keras.Model({ inputs: [tokens, x], outputs: [keras.layers.TimeDistributed(keras.layers.Dense(1))(h), g] });
  const file = path.join(tmp, 'wrappers.keras');
  await m.save(file);
  const back = await keras.saving.loadModel(file);
  const xs = [new keras.Tensor('int32', [2, 5], Int32Array.from([1, 4, 0, 6, 0, 3, 0, 0, 2, 5])), new keras.Tensor('float32', [2, 5, 3], Float32Array.from({ length: 30 }, (_, i) => (i % 7 === 0 ? 1 : Math.sin(i))))];
  const a = predictList(m, xs), b = predictList(back, xs);
  expect(a.length).toBe(2);
  a.forEach((y, i) => expect(b[i]!.data).toEqual(y.data));
  expect(back.weights.map((w) => w.data)).toEqual(m.weights.map((w) => w.data));
});

describe('weights files', () => {
  const mlp = () => keras.Sequential([
    keras.Input({ shape: [8] }), keras.layers.Dense(16, { activation: 'relu' }), keras.layers.Dropout(0.25), keras.layers.Dense(3, { activation: 'softmax' }),
  ]);

  it('loadWeights reads a .weights.h5 that Keras wrote into a model built in TypeScript', async () => {
    const m = mlp();
    await m.loadWeights(path.join(FIX, 'mlp.weights.h5'));
    const y = m.predict(npy('mlp.x0.npy')), want = npy('mlp.y0.npy');
    y.data.forEach((v, j) => expect(Math.abs(v - want.data[j]!)).toBeLessThan(1e-6));
  });

  it('saveWeights writes the groups and datasets Keras writes, and loadWeights reads them back', async () => {
    const m = mlp();
    const file = path.join(tmp, 'mine.weights.h5');
    await m.saveWeights(file);
    expect(h5Tree(new Uint8Array(readFileSync(file)))).toEqual(h5Tree(new Uint8Array(readFileSync(path.join(FIX, 'mlp.weights.h5')))));
    const other = mlp();
    await other.loadWeights(file);
    other.weights.forEach((w, i) => expect(w.data).toEqual(m.weights[i]!.data));
  });

  it('.safetensors by Keras weight path both ways', async () => {
    const m = mlp(), other = mlp();
    const file = path.join(tmp, 'w.safetensors');
    await m.saveWeights(file);
    expect(readSafetensors(new Uint8Array(readFileSync(file))).tensors.map((t) => t.name)).toEqual(m.weights.map((w) => w.path));
    await other.loadWeights(file); // other layer names (dense_2, ...): in order
    other.weights.forEach((w, i) => expect(w.data).toEqual(m.weights[i]!.data));
    const renamed = mlp();
    renamed.weights[0]!.assign(keras.ops.zerosLike(renamed.weights[0]!));
    await renamed.saveWeights(file);
    await expect(m.loadWeights(file)).resolves.toBeUndefined();
    m.weights.forEach((w, i) => expect(w.data).toEqual(renamed.weights[i]!.data));
  });

  it('a file that does not fit the model is an error naming the file, and leaves the weights as they were', async () => {
    const wide = keras.Sequential([keras.Input({ shape: [8] }), keras.layers.Dense(17), keras.layers.Dense(3)]);
    const before = wide.getWeights();
    const file = path.join(FIX, 'mlp.weights.h5');
    await expect(wide.loadWeights(file)).rejects.toThrow(`${file}: 'layers/dense/vars/0' has shape (8, 16), weight 'dense`);
    wide.weights.forEach((w, i) => expect(w.data).toEqual(before[i]!.data));
    const deeper = keras.Sequential([keras.Input({ shape: [8] }), keras.layers.Dense(16), keras.layers.Dense(3), keras.layers.Dense(3)]);
    await expect(deeper.loadWeights(file)).rejects.toThrow(/has no group 'layers\/dense_2\/vars' for layer 'dense_\d+' \(Dense\)/);
    await expect(wide.loadWeights(path.join(tmp, 'none.weights.h5'))).rejects.toThrow(`${path.join(tmp, 'none.weights.h5')}: no such file`);
    await expect(wide.loadWeights(path.join(FIX, 'mlp.x0.npy'))).rejects.toThrow(/mlp\.x0\.npy: a weights file must end in \.weights\.h5 or \.h5 or \.safetensors/);
  });

  it('a corrupt .safetensors is an error naming the file', async () => {
    const m = mlp(), file = path.join(tmp, 'good.safetensors'), cut = path.join(tmp, 'cut.safetensors');
    await m.saveWeights(file);
    writeFileSync(cut, readFileSync(file).subarray(0, 60));
    await expect(m.loadWeights(cut)).rejects.toThrow(new RegExp(`^${cut}: safetensors: header of \\d+ bytes runs past the end of the file \\(60 bytes\\)$`));
  });
});

describe('.keras files kiln cannot load', () => {
  const edit = (fn: (c: Json) => void) => {
    const entries = unzip(path.join(FIX, 'cnn.keras'));
    const c = JSON.parse(strFromU8(entries['config.json']!)) as Json;
    fn(c);
    const file = path.join(tmp, 'edited.keras');
    writeFileSync(file, zipSync({ ...entries, 'config.json': strToU8(JSON.stringify(c)) }));
    return file;
  };
  const layersOf = (c: Json) => (c['config'] as Json)['layers'] as Json[];

  it('a layer kiln does not have is one error naming it and the file', async () => {
    const file = edit((c) => { layersOf(c)[1]!['class_name'] = 'Conv2DTranspose'; });
    await expect(keras.saving.loadModel(file)).rejects.toThrow(new RegExp(`^${file}: layer 'conv2d' is a Keras Conv2DTranspose, which kiln does not have \\(kiln has Dense, `));
  });

  it('a Lambda (Python bytecode) is one error naming it and the file', async () => {
    const file = edit((c) => { layersOf(c)[1]!['class_name'] = 'Lambda'; });
    await expect(keras.saving.loadModel(file)).rejects.toThrow(new RegExp(`^${file}: layer 'conv2d' is a Keras Lambda, whose function is Python bytecode kiln cannot load; `));
  });

  it('a Bidirectional whose backward_layer is not its layer run backwards is an error naming it', async () => {
    const entries = unzip(path.join(FIX, 'masked.keras'));
    const c = JSON.parse(strFromU8(entries['config.json']!)) as Json;
    const bi = layersOf(c).find((l) => l['name'] === 'bidirectional')!['config'] as Json;
    ((bi['backward_layer'] as Json)['config'] as Json)['units'] = 5;
    const file = path.join(tmp, 'backward.keras');
    writeFileSync(file, zipSync({ ...entries, 'config.json': strToU8(JSON.stringify(c)) }));
    await expect(keras.saving.loadModel(file)).rejects.toThrow(`${file}: layer 'bidirectional' (Bidirectional): a backward_layer other than the layer run backwards is not supported by kiln`);
  });

  it('an option kiln does not implement is an error naming the layer and the file', async () => {
    const file = edit((c) => { (layersOf(c)[2]!['config'] as Json)['renorm'] = true; });
    await expect(keras.saving.loadModel(file)).rejects.toThrow(`${file}: layer 'batch_normalization' (BatchNormalization): BatchNormalization 'batch_normalization': option 'renorm' is not supported by kiln`);
  });

  it('a file that is not a zip, or lacks config.json', async () => {
    const bad = path.join(tmp, 'bad.keras');
    writeFileSync(bad, 'not a zip');
    await expect(keras.saving.loadModel(bad)).rejects.toThrow(`${bad}: not a .keras file`);
    writeFileSync(bad, zipSync({ 'metadata.json': strToU8('{}') }));
    await expect(keras.saving.loadModel(bad)).rejects.toThrow(`${bad}: not a Keras 3 .keras file (no config.json inside)`);
  });

  it('a config.json of another shape, or a bad input shape in it, is an error naming the file', async () => {
    const entries = unzip(path.join(FIX, 'cnn.keras')), bad = path.join(tmp, 'shape.keras');
    for (const config of ['null', '[1, 2]', '{"class_name": "Sequential"}']) {
      writeFileSync(bad, zipSync({ ...entries, 'config.json': strToU8(config) }));
      await expect(keras.saving.loadModel(bad), config).rejects.toThrow(new RegExp(`^${bad}: config\\.json: not a Keras model config \\(`));
    }
    const file = edit((c) => { (layersOf(c)[0]!['config'] as Json)['batch_shape'] = [null, -3, 8, 1]; });
    await expect(keras.saving.loadModel(file)).rejects.toThrow(`${file}: config.json: keras.Input: shape (-3, 8, 1) has an invalid dimension -3`);
  });

  it('a truncated model.weights.h5 inside, or a corrupt .weights.h5, is one error naming the file', async () => {
    const entries = unzip(path.join(FIX, 'mlp.keras')), w = entries['model.weights.h5']!, bad = path.join(tmp, 'cut.keras');
    writeFileSync(bad, zipSync({ ...entries, 'model.weights.h5': w.subarray(0, w.length >> 1) }));
    await expect(keras.saving.loadModel(bad)).rejects.toThrow(`${bad}: model.weights.h5: not a readable HDF5 file (truncated or corrupt)`);
    const m = await keras.saving.loadModel(path.join(FIX, 'mlp.keras')), h5 = path.join(tmp, 'cut.weights.h5');
    writeFileSync(h5, w.subarray(0, 1000));
    await expect(m.loadWeights(h5)).rejects.toThrow(`${h5}: not a readable HDF5 file (truncated or corrupt)`);
  });
});
