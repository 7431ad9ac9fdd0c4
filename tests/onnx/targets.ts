// Runs an imported model's compiled artifacts: wasm through model.mjs, llvm through model_main and .npy files, cuda
// through model_main_emu (its kernels built for the CPU: no GPU needed).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compile } from '../../compiler.js';
import type { Model } from '../../frontend/models/model.js';
import type { TypedArray } from '../../ir/types.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';

export type Inputs = Record<string, { data: TypedArray; shape: readonly number[] }>;

/** Compiles model for target into dir and runs it on inputs (in the model's input order); outputs by name. */
export async function runCompiled(model: Model, target: 'wasm' | 'llvm' | 'cuda', dir: string, inputs: Inputs): Promise<Record<string, TypedArray>> {
  await compile(model, { target, outDir: dir, maxBatch: 8 });
  const list = model.inputSpecs.map((s) => inputs[s.name]!);
  if (target === 'wasm') {
    const { load } = (await import(pathToFileURL(path.join(dir, 'model.mjs')).href)) as { load: () => Promise<{ predict: (x: TypedArray[]) => TypedArray[] }> };
    const outs = (await load()).predict(list.map((i) => i.data));
    return Object.fromEntries(model.outputNames.map((n, k) => [n, outs[k]!]));
  }
  const files = list.map((v, i) => {
    const f = path.join(dir, `in${i}.npy`);
    writeFileSync(f, writeNpy(model.inputSpecs[i]!.dtype, v.shape, v.data));
    return f;
  });
  mkdirSync(path.join(dir, 'out'), { recursive: true });
  execFileSync(path.join(dir, target === 'cuda' ? 'model_main_emu' : 'model_main'), ['--out', path.join(dir, 'out'), ...files], { cwd: dir, env: { ...process.env, KILN_NUM_THREADS: '2' } });
  return Object.fromEntries(model.outputNames.map((n) => [n, readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${n.replace(/\//g, '_')}.npy`)))).data]));
}
