// Saving and loading models and weights in Keras 3's formats: `.keras` (zip), `.weights.h5` and `.safetensors`.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import { readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';
import { formatKerasShape } from '../tensor.js';
import type { Model } from '../models/model.js';
import { modelConfig, modelFromConfig } from './config.js';
import { type WeightValues, readWeightsH5, writeWeightsH5 } from './h5.js';

/** The Keras version whose files kiln writes and reads (metadata.json's keras_version). */
export const KERAS_VERSION = '3.15.1';

/** Runs fn with a path in a fresh temporary folder (h5wasm reads and writes files, not buffers); removes the folder. */
async function withTempFile<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-h5-'));
  try {
    return await fn(path.join(dir, 'model.weights.h5'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function kind(file: string, what: string, allowed: string[], reading = true): string {
  if (reading && !existsSync(file)) throw new Error(`${file}: no such file`);
  const ext = allowed.find((e) => file.endsWith(e));
  if (!ext) throw new Error(`${file}: ${what} must end in ${allowed.join(' or ')}`);
  return ext;
}

/** Writes the weights: `.weights.h5` in Keras 3's HDF5 layout, or `.safetensors` keyed by Keras weight paths. */
export async function saveWeights(model: Model, file: string, values?: WeightValues): Promise<void> {
  const ext = kind(file, 'a weights file', ['.weights.h5', '.safetensors'], false);
  if (ext === '.safetensors') {
    writeFileSync(file, writeSafetensors(model.weights.map((w) => ({ name: w.path, dtype: w.dtype, shape: [...w.shape], data: values?.get(w) ?? w.data }))));
    return;
  }
  // written in a temporary folder first: a failed save leaves no half-written file
  await withTempFile(async (tmp) => {
    await writeWeightsH5(model, tmp, values);
    writeFileSync(file, readFileSync(tmp));
  });
}

/**
 * Loads weights written by Keras 3 or kiln into a built model: a `.weights.h5` file (by Keras's layer groups), or a
 * `.safetensors` file (by Keras weight path, as `saveWeights` and `model_train` write them; in order when no path matches).
 */
export async function loadWeights(model: Model, file: string): Promise<void> {
  const ext = kind(file, 'a weights file', ['.weights.h5', '.h5', '.safetensors']);
  if (!model.built) throw new Error(`${file}: model '${model.name}' is not built yet; give it an input shape before loading weights`);
  if (ext !== '.safetensors') return readWeightsH5(model, file);
  let tensors: ReturnType<typeof readSafetensors>['tensors'];
  try {
    ({ tensors } = readSafetensors(new Uint8Array(readFileSync(file))));
  } catch (e) {
    // the reader's message says what is wrong, not in which file
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  // keyed by weight path; a file of another instance of the architecture (other layer names) loads in order
  const inOrder = model.weights.every((w) => !byName.has(w.path)) && tensors.length === model.weights.length;
  const values = model.weights.map((w, i) => {
    const t = inOrder ? tensors[i] : byName.get(w.path);
    if (!t) throw new Error(`${file}: has no tensor '${w.path}' (it has ${[...byName.keys()].join(', ')})`);
    if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
      throw new Error(`${file}: tensor '${w.path}' has shape ${formatKerasShape(t.shape)}, the model's weight is ${formatKerasShape(w.shape)}`);
    }
    return t.data;
  });
  model.weights.forEach((w, i) => w.assign(values[i]!));
}

/** Saves a Sequential or Functional model as a Keras 3 `.keras` file: config.json, metadata.json and model.weights.h5 in a zip. */
export async function saveModel(model: Model, file: string, values?: WeightValues): Promise<void> {
  kind(file, 'a model file', ['.keras'], false);
  const config = JSON.stringify(modelConfig(model));
  const date = new Date().toISOString().replace(/T(\d+):(\d+):(\d+).*/, '@$1:$2:$3');
  const metadata = JSON.stringify({ keras_version: KERAS_VERSION, date_saved: date });
  const weights = await withTempFile(async (tmp) => {
    await writeWeightsH5(model, tmp, values);
    return new Uint8Array(readFileSync(tmp));
  });
  writeFileSync(file, zipSync({ 'metadata.json': strToU8(metadata), 'config.json': strToU8(config), 'model.weights.h5': weights }, { level: 0 }));
}

/**
 * Loads a `.keras` file written by Keras 3 or kiln: rebuilds the Sequential or Functional model from config.json and
 * loads its weights. A layer kiln does not have is an error naming the layer and the file.
 * @example const model = await keras.saving.loadModel('model.keras');
 */
export async function loadModel(file: string): Promise<Model> {
  kind(file, 'a model file', ['.keras']);
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(new Uint8Array(readFileSync(file)));
  } catch (e) {
    throw new Error(`${file}: not a .keras file (${(e as Error).message})`);
  }
  for (const need of ['config.json', 'model.weights.h5']) {
    if (!entries[need]) throw new Error(`${file}: not a Keras 3 .keras file (no ${need} inside)`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(strFromU8(entries['config.json']!)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: config.json: ${(e as Error).message}`);
  }
  let model: Model;
  try {
    model = modelFromConfig(json, file);
  } catch (e) {
    // a config.json unlike the ones Keras writes fails deep inside (a TypeError, keras.Input's checks): name the file
    const msg = (e as Error).message;
    throw msg.startsWith(file) ? e : new Error(`${file}: config.json: ${e instanceof TypeError ? `not a Keras model config (${msg})` : msg}`);
  }
  await withTempFile(async (tmp) => {
    writeFileSync(tmp, entries['model.weights.h5']!);
    try {
      await readWeightsH5(model, tmp);
    } catch (e) {
      throw new Error(`${file}: model.weights.h5${(e as Error).message.slice(tmp.length)}`);
    }
  });
  return model;
}
