// Prepares the GPU check of the cuda target, to run on a machine with an NVIDIA GPU (which has no Node): builds
// here, with nvcc, model_main for the seed MLP (inference at batch 1 and 256, the Adam step at 32), the seed CNN,
// the Transformer block and the LSTM/GRU model (inference and training steps, updates as outputs), and
// float32 matmuls of 1024 and 4096; saves their inputs and the reference interpreter's outputs as .npy; builds
// model_train for the seed MLP with the bundled digits; and writes check.sh, which runs everything there,
// compares with the saved outputs (the matmuls with NumPy in float64), times each case (whole call, and the
// launches alone) and PyTorch on the same shapes, in the same run.
//
//   npm run bench:cuda               # here: writes bench/cuda-build/ (needs nvcc)
//   bash bench/cuda-build/check.sh   # on the GPU machine (carry bench/cuda-build)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, loadModelFile } from '../compiler.js';
import { compileCuda, hasNvcc } from '../codegen/cuda/target.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { traceTrainStep } from '../frontend/models/training.js';
import { type Graph, nodeName, updatesAsOutputs } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import { writeNpy } from '../runtime/npy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'bench', 'cuda-build');
if (!hasNvcc()) throw new Error('bench:cuda builds the GPU executables here and needs nvcc on the PATH');
rmSync(out, { recursive: true, force: true });

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (Math.sin(i * 12.9898 + seed) + 1) / 2);
const example = (name: string) => loadModelFile(path.join(root, 'examples', 'seed', `${name}.ts`));

interface Case { name: string; graph: Graph; params: Record<string, Float32Array | Int32Array>; check: boolean }
const cases: Case[] = [];
const byPath = (vars: readonly keras.Variable[]) => Object.fromEntries(vars.map((v) => [v.path, v.data as Float32Array]));
function predict(name: string, model: keras.Model, batch: number, check = true): void {
  const t = traceModel(model, batch);
  cases.push({ name, graph: t.graph, params: byPath(t.variables), check });
}
function train(name: string, model: keras.Model, batch: number): void {
  const c = model.compiled!;
  const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
  const step = traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets);
  cases.push({ name, graph: updatesAsOutputs(step.graph), params: byPath(step.variables), check: true });
}

keras.utils.setRandomSeed(7);
const mlp = await example('losses');
predict('mlp_predict_b1', mlp, 1);
predict('mlp_predict_b256', mlp, 256);
train('mlp_train_b32', mlp, 32);
const cnn = await example('cnn');
predict('cnn_predict_b64', cnn, 64);
train('cnn_train_b32', cnn, 32);
const transformer = await example('transformer');
predict('transformer_predict_b32', transformer, 32);
train('transformer_train_b16', transformer, 16);
const sequence = await example('sequence');
predict('sequence_predict_b32', sequence, 32);
for (const n of [1024, 4096]) {
  const x = keras.Input({ shape: [n] });
  predict(`matmul_${n}`, keras.Model({ inputs: x, outputs: keras.layers.Dense(n, { useBias: false })(x) }), n, false);
}

for (const k of cases) {
  const dir = path.join(out, k.name);
  const weights = k.graph.params.map((p) => ({ name: nodeName(p), dtype: p.type.dtype, shape: p.type.shape, data: k.params[nodeName(p)]! }));
  const t0 = performance.now();
  compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: k.graph, batchSize: 1 }], weights });
  const built = performance.now() - t0;
  if (!k.check) { // big: NumPy makes the inputs and weights there and checks in float64
    writeFileSync(path.join(dir, 'params.json'), JSON.stringify(weights.map((w) => ({ name: w.name, shape: w.shape }))));
    rmSync(path.join(dir, 'weights.safetensors'));
    process.stderr.write(`prepared ${k.name} (${(built / 1e3).toFixed(1)} s)\n`);
    continue;
  }
  const inputs: Record<string, Float32Array | Int32Array> = {};
  k.graph.inputs.forEach((n, i) => {
    const name = nodeName(n), size = n.type.shape.reduce((a, b) => a * b, 1);
    inputs[name] = n.type.dtype === 'int32' ? Int32Array.from({ length: size }, (_, j) => (name === 'rng_counter' ? 3 : (j * 7) % 4)) : values(size, i);
    writeFileSync(path.join(dir, `in${i}.npy`), writeNpy(n.type.dtype, n.type.shape, inputs[name]!));
  });
  mkdirSync(path.join(dir, 'expected'), { recursive: true });
  const ref = interpret(k.graph, inputs, k.params);
  for (const o of k.graph.outputs) {
    const v = ref.outputs.get(o.name)!;
    writeFileSync(path.join(dir, 'expected', `${o.name.replace(/\//g, '_')}.npy`), writeNpy(v.type.dtype, v.type.shape, v.data));
  }
  process.stderr.write(`prepared ${k.name} (nvcc and emulated builds ${(built / 1e3).toFixed(1)} s)\n`);
}

// model_train on the GPU: the seed MLP's predict and Adam trainStep entries sharing the device memory
const trainDir = path.join(out, 'mlp_fit');
await compile(mlp, { target: 'cuda', train: true, batchSize: 32, outDir: trainDir });
const [[xTrain, yTrain]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
writeFileSync(path.join(trainDir, 'x.npy'), writeNpy('float32', [8000, 784], xTrain.data));
writeFileSync(path.join(trainDir, 'y.npy'), writeNpy('int32', [8000], yTrain.data));

const checked = cases.filter((k) => k.check).map((k) => k.name);
writeFileSync(path.join(out, 'check.sh'), `#!/bin/bash
# The cuda target on a GPU. Prepared by \`npm run bench:cuda\` (which built every executable with nvcc); run it
# there from the repository root: it compares each case with the interpreter's outputs, times it (median per
# call with its copies, and the launches alone with KILN_CUDA_PROFILE), then PyTorch on the same shapes.
set -u
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for c in ${checked.join(' ')}; do
  ins=$(ls $c/in*.npy | sort)
  $c/model_main --out $c/got $ins || { echo "$c: model_main FAILED"; continue; }
  python3 - "$c" <<'PY'
import glob, os, sys, numpy as np
c = sys.argv[1]
worst, where = 0.0, ''
for f in sorted(glob.glob(f"{c}/expected/*.npy")):
    want, got = np.load(f), np.load(f"{c}/got/{os.path.basename(f)}")
    err = float(np.max(np.abs(got.astype(np.float64) - want) / (1e-6 + 1e-4 * np.abs(want)))) if want.size else 0.0
    if err > worst: worst, where = err, os.path.basename(f)
print(f"{c}: outputs {'MATCH' if worst <= 1 else 'DIFFER'} (worst |got - want| / (1e-6 + 1e-4 |want|) = {worst:.3f} {where})")
PY
  t=$($c/model_main --bench 1000 $ins | tail -1)
  l=$(KILN_CUDA_PROFILE=1 $c/model_main --bench 200 $ins 2>&1 >/dev/null | tail -1)
  echo "$c: kiln cuda $t per call; $l"
done
python3 - <<'PY'
import json, struct, numpy as np
for n in (1024, 4096):
    c = f"matmul_{n}"
    rng = np.random.default_rng(n)
    x, w = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    np.save(f"{c}/in0.npy", x)
    (p,) = json.load(open(f"{c}/params.json"))
    header = json.dumps({p["name"]: {"dtype": "F32", "shape": [n, n], "data_offsets": [0, w.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(f"{c}/weights.safetensors", "wb") as f: f.write(struct.pack("<Q", len(header)) + header + w.tobytes())
    np.save(f"{c}/want.npy", x[:256].astype(np.float64) @ w.astype(np.float64))
PY
for n in 1024 4096; do
  c=matmul_$n
  $c/model_main --out $c/got $c/in0.npy || { echo "$c: model_main FAILED"; continue; }
  python3 -c "
import glob, numpy as np
want = np.load('$c/want.npy'); got = np.load(glob.glob('$c/got/*.npy')[0])[:256]
err = float(np.max(np.abs(got - want) / want))
print('$c: first 256 rows vs NumPy float64:', 'MATCH' if err < 1e-5 else 'DIFFER', f'(max relative error {err:.2e})')"
  l=$(KILN_CUDA_PROFILE=1 $c/model_main --bench 20 $c/in0.npy 2>&1 >/dev/null | tail -1)
  echo "$c: kiln cuda $l ($n^3 float32)"
done
echo "mlp_fit: model_train, seed MLP, 8,000 digits, 5 epochs, batch 32, Adam, 20% held out:"
(cd mlp_fit && ./model_train --epochs 5 --batch-size 32 --validation-split 0.2 --out trained.safetensors x.npy y.npy | tail -2 &&
  KILN_CUDA_PROFILE=1 ./model_train --bench 500 --batch-size 32 x.npy y.npy 2>&1 | tail -2)
python3 - <<'PY'
import time, torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
def per_call(f, n):
    for _ in range(20): f()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6
mlp = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1)).to(dev)
mlp.eval()
for b in (1, 256):
    x = torch.rand(b, 784)
    with torch.no_grad(): print(f"mlp_predict_b{b}: PyTorch {per_call(lambda: mlp(x.to(dev)).cpu(), 1000):.1f} us per call (input in, output out)")
mlp.train()
opt = torch.optim.Adam(mlp.parameters(), 1e-3)
x, y = torch.rand(32, 784, device=dev), torch.randint(0, 10, (32,), device=dev)
def step():
    opt.zero_grad(); loss = torch.nn.functional.nll_loss(torch.log(mlp(x)), y); loss.backward(); opt.step()
print(f"mlp_train_b32: PyTorch {per_call(step, 500):.1f} us per Adam step (data on the device)")
cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10), torch.nn.Softmax(dim=1)).to(dev).eval()
x = torch.rand(64, 1, 28, 28)
with torch.no_grad(): print(f"cnn_predict_b64: PyTorch {per_call(lambda: cnn(x.to(dev)).cpu(), 500):.1f} us per call (input in, output out)")
for n in (1024, 4096):
    a, b = torch.rand(n, n, device=dev), torch.rand(n, n, device=dev)
    us = per_call(lambda: a @ b, 20)
    print(f"matmul_{n}: PyTorch {us:.1f} us per matmul, {2 * n ** 3 / us / 1e6:.1f} TFLOP/s (float32, no TF32)")
PY
`);
process.stderr.write(`wrote ${path.relative(root, out)}: run bash ${path.relative(root, path.join(out, 'check.sh'))} on a GPU machine\n`);
