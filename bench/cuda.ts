// Prepares the GPU check of the cuda target, to run on a machine with an NVIDIA GPU (which has no Node): compiles
// the seed MLP's inference (batch 1 and 256) and its Adam training step (batch 32, updates as outputs) with
// `compileCuda`, saves their inputs and the reference interpreter's outputs as .npy, and writes check.sh, which
// builds each model_main with nvcc there, compares its outputs with the saved ones, times it (`--bench`), and
// times PyTorch on the same model and weights in the same run.
//
//   npm run bench:cuda            # here: writes bench/cuda-build/
//   bash bench/cuda-build/check.sh   # on the GPU machine (carry bench/cuda-build)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCuda } from '../codegen/cuda/target.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import { writeNpy } from '../runtime/npy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'bench', 'cuda-build');
rmSync(out, { recursive: true, force: true });

keras.utils.setRandomSeed(7);
const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (Math.sin(i * 12.9898 + seed) + 1) / 2);

interface Case { name: string; graph: Graph; params: Record<string, Float32Array | Int32Array> }
const cases: Case[] = [];
for (const batch of [1, 256]) {
  const t = traceModel(model, batch);
  cases.push({ name: `predict_b${batch}`, graph: t.graph, params: Object.fromEntries(t.variables.map((v) => [v.path, v.data as Float32Array])) });
}
const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
const step = traceTrainStep(model, c, [[32, 784]], [[32]]);
cases.push({
  name: 'train_b32',
  graph: updatesAsOutputs(step.graph),
  params: Object.fromEntries(step.variables.map((v) => [v.path, v.data as Float32Array])),
});

for (const k of cases) {
  const dir = path.join(out, k.name);
  const weights = k.graph.params.map((p) => ({ name: String(p.attrs['name']), dtype: p.type.dtype, shape: p.type.shape, data: k.params[String(p.attrs['name'])]! }));
  compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: k.graph, batchSize: 1 }], weights, nvcc: false });
  const inputs: Record<string, Float32Array | Int32Array> = {};
  k.graph.inputs.forEach((n, i) => {
    const name = String(n.attrs['name']), size = n.type.shape.reduce((a, b) => a * b, 1);
    inputs[name] = n.type.dtype === 'int32' ? Int32Array.from({ length: size }, (_, j) => (name === 'rng_counter' ? 3 : (j * 7) % 10)) : values(size, i);
    writeFileSync(path.join(dir, `in${i}.npy`), writeNpy(n.type.dtype, n.type.shape, inputs[name]!));
  });
  mkdirSync(path.join(dir, 'expected'), { recursive: true });
  const ref = interpret(k.graph, inputs, k.params);
  for (const o of k.graph.outputs) {
    const v = ref.outputs.get(o.name)!;
    writeFileSync(path.join(dir, 'expected', `${o.name.replace(/\//g, '_')}.npy`), writeNpy(v.type.dtype, v.type.shape, v.data));
  }
  process.stderr.write(`prepared ${k.name}\n`);
}

writeFileSync(path.join(out, 'check.sh'), `#!/bin/bash
# The cuda target on a GPU: build each case with nvcc, compare with the interpreter's outputs, time it, and time
# PyTorch on the same MLP. Prepared by \`npm run bench:cuda\`; run from the repository root.
set -u
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for c in ${cases.map((k) => k.name).join(' ')}; do
  ( cd $c && make -s model_main >/dev/null ) || { echo "$c: nvcc build FAILED"; continue; }
  ins=$(ls $c/in*.npy | sort)
  $c/model_main --out $c/got $ins || { echo "$c: model_main FAILED"; continue; }
  python3 - "$c" <<'PY'
import glob, os, sys, numpy as np
c = sys.argv[1]
worst = 0.0
for f in sorted(glob.glob(f"{c}/expected/*.npy")):
    want, got = np.load(f), np.load(f"{c}/got/{os.path.basename(f)}")
    err = float(np.max(np.abs(got.astype(np.float64) - want) / (1e-6 + 1e-4 * np.abs(want)))) if want.size else 0.0
    worst = max(worst, err)
print(f"{c}: outputs {'MATCH' if worst <= 1 else 'DIFFER'} (worst error / (1e-6 + 1e-4 |want|) = {worst:.3f})")
PY
  echo "$c: kiln cuda $($c/model_main --bench 2000 $ins | tail -1) per call (memory block in and out included)"
done
python3 - <<'PY'
import time, torch
dev = "cuda"
m = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1)).to(dev).eval()
for b in (1, 256):
    x = torch.rand(b, 784)
    with torch.no_grad():
        for _ in range(200): m(x.to(dev)).cpu()
        torch.cuda.synchronize(); t = time.perf_counter(); n = 2000
        for _ in range(n): m(x.to(dev)).cpu()
        torch.cuda.synchronize()
    print(f"predict_b{b}: PyTorch {(time.perf_counter() - t) / n * 1e6:.1f} us per call (input in, output out)")
PY
`);
process.stderr.write(`wrote ${path.relative(root, out)}: run bash ${path.relative(root, path.join(out, 'check.sh'))} on a GPU machine\n`);
