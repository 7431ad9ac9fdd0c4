// Keras 3 `.weights.h5` files through h5wasm: `layers/<key>/vars/<i>` datasets, as keras/src/saving/saving_lib.py writes them.
import fs from 'node:fs';
import type { Group as H5Group, File as H5File } from 'h5wasm';
import { formatKerasShape } from '../tensor.js';
import type { Model } from '../models/model.js';
import { weightLayout } from './layout.js';

type H5 = typeof import('h5wasm').default;
let h5: Promise<H5> | undefined;

/** h5wasm, loaded on first use (its wasm module takes a moment to start). */
async function hdf5(): Promise<H5> {
  h5 ??= import('h5wasm/node').then(async (m) => {
    await m.default.ready;
    return m.default as unknown as H5;
  });
  return h5;
}

/**
 * fn with writes to file descriptor 2 dropped: h5wasm cannot turn off HDF5's automatic error printing, which writes
 * the library's whole error stack (some 40 lines) there when a file does not open; the caller's error says enough.
 */
function quietly<T>(fn: () => T): T {
  const write = fs.writeSync;
  fs.writeSync = ((fd: number, data: string | ArrayBufferView, ...rest: unknown[]) => {
    if (fd !== 2) return (write as (...a: unknown[]) => number)(fd, data, ...rest);
    // as if written: (fd, string, ...) or (fd, buffer, offset, length, ...)
    if (typeof data === 'string') return Buffer.byteLength(data);
    return typeof rest[1] === 'number' ? rest[1] : data.byteLength - (typeof rest[0] === 'number' ? rest[0] : 0);
  }) as unknown as typeof fs.writeSync;
  try {
    return fn();
  } finally {
    fs.writeSync = write;
  }
}

function openGroup(root: H5Group, path: string): H5Group {
  let g = root;
  for (const part of path.split('/')) g = (g.keys().includes(part) ? g.get(part) : g.create_group(part)) as H5Group;
  return g;
}

/** Writes the model's weights in Keras 3's HDF5 layout to `file` (a path on disk). */
export async function writeWeightsH5(model: Model, file: string, values?: WeightValues): Promise<void> {
  const lib = await hdf5();
  const f = new lib.File(file, 'w');
  try {
    writeLayout(model, f, values);
  } finally {
    f.close();
  }
}

/** Values to write instead of the variables' current ones (a checkpoint's copy). */
export type WeightValues = ReadonlyMap<import('../tensor.js').Variable, import('../../ir/types.js').TypedArray>;

function writeLayout(model: Model, f: H5File, values?: WeightValues): void {
  for (const { key, groups } of weightLayout(model)) {
    for (const g of groups) {
      const vars = openGroup(f, `layers/${key}/${g.path}`);
      vars.create_attribute('name', g.name);
      g.vars.forEach((v, i) => vars.create_dataset({ name: String(i), data: (values?.get(v) ?? v.data).slice(), shape: [...v.shape], dtype: v.dtype === 'float32' ? '<f4' : '<i4' }));
    }
  }
  openGroup(f, 'vars').create_attribute('name', model.name);
}

/**
 * Loads weights from a Keras 3 HDF5 file into the model. Every variable must be found with its shape; a variable group
 * with more or fewer datasets than the layer has weights is an error naming the file, the group and the layer.
 */
export async function readWeightsH5(model: Model, file: string): Promise<void> {
  const lib = await hdf5();
  const f = quietly(() => new lib.File(file, 'r'));
  if (f.file_id < 0) throw new Error(`${file}: not a readable HDF5 file (truncated or corrupt)`);
  try {
    const values: [import('../tensor.js').Variable, Float32Array | Int32Array][] = [];
    if (!f.keys().includes('layers')) throw new Error(`${file}: not a Keras 3 weights file (no 'layers' group)`);
    for (const { layer, key, groups } of weightLayout(model)) {
      for (const g of groups) {
        const path = `layers/${key}/${g.path}`;
        const group = f.get(path) as H5Group | null;
        if (!group) {
          if (g.vars.length === 0) continue;
          throw new Error(`${file}: has no group '${path}' for layer '${layer.name}' (${layer.className})`);
        }
        const names = group.keys().filter((k) => /^\d+$/.test(k));
        if (names.length !== g.vars.length) {
          throw new Error(`${file}: group '${path}' holds ${names.length} weight(s), layer '${layer.name}' (${layer.className}) has ${g.vars.length}`);
        }
        g.vars.forEach((v, i) => {
          const ds = group.get(String(i)) as import('h5wasm').Dataset;
          const shape = ds.shape ?? [];
          if (shape.length !== v.shape.length || shape.some((d, j) => d !== v.shape[j])) {
            throw new Error(`${file}: '${path}/${i}' has shape ${formatKerasShape(shape)}, weight '${v.path}' of layer '${layer.name}' is ${formatKerasShape(v.shape)}`);
          }
          const raw = ds.value as ArrayLike<number> | number; // a scalar dataset reads as a number
          const list = typeof raw === 'number' ? [raw] : raw;
          values.push([v, v.dtype === 'float32' ? Float32Array.from(list) : Int32Array.from(list)]);
        });
      }
    }
    // assign only once everything is read: a bad file leaves the model as it was
    for (const [v, data] of values) v.assign(data);
  } finally {
    f.close();
  }
}
