// Prepares the GPU check of the cuda target: every goal case of issue 14 (the seed MLP's Adam step at batch 32 and
// 1024 and its inference at 1024; the same for examples/seed/cnn.ts) built here with nvcc into bench/cuda-build/,
// each with its inputs and the reference interpreter's outputs as .npy, model_train for the seed MLP with the
// bundled digits, and bench/cuda-check/ (check.sh, compare.py, peers.py, table.py). check.sh, run on a machine with
// an NVIDIA GPU, PyTorch and JAX but no Node, checks each case, times it (whole call, and the launches alone) and
// the same steps in PyTorch (captured as a CUDA graph) and JAX (jax.jit) in the same run, and prints one table.
//
//   npm run bench:cuda               # here: writes bench/cuda-build/ (needs nvcc)
//   bash bench/cuda-build/check.sh   # on the GPU machine (carry bench/cuda-build)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, loadModelFile } from '../compiler.js';
import { CUDA_CAPS, compileCuda, hasNvcc } from '../codegen/cuda/target.js';
import { H100, launchShapes } from '../codegen/loop/gpu.js';
import { reductionTrees } from '../codegen/loop/reduction_trees.js';
import { runPipeline } from '../driver/pipeline.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { traceTrainStep } from '../frontend/models/training.js';
import { type Graph, nodeName, updatesAsOutputs } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import { readNpy, writeNpy } from '../runtime/npy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'bench', 'cuda-build');
if (!hasNvcc()) throw new Error('bench:cuda builds the GPU executables here and needs nvcc on the PATH');
rmSync(out, { recursive: true, force: true });

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (Math.sin(i * 12.9898 + seed) + 1) / 2);
const example = (name: string) => loadModelFile(path.join(root, 'examples', 'seed', `${name}.ts`));

/** A case: the entry timed, and the entry checked (a training step's updates as outputs: the same step). */
interface Case { name: string; batch: number; timed: { name: 'predict' | 'trainStep'; graph: Graph }; checked: Graph; params: Record<string, Float32Array | Int32Array> }
const cases: Case[] = [];
const byPath = (vars: readonly keras.Variable[]) => Object.fromEntries(vars.map((v) => [v.path, v.data as Float32Array]));
function predict(name: string, model: keras.Model, batch: number): void {
  const t = traceModel(model, batch);
  cases.push({ name, batch, timed: { name: 'predict', graph: t.graph }, checked: t.graph, params: byPath(t.variables) });
}
function train(name: string, model: keras.Model, batch: number): void {
  const c = model.compiled!;
  const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
  const step = traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets);
  cases.push({ name, batch, timed: { name: 'trainStep', graph: step.graph }, checked: updatesAsOutputs(step.graph), params: byPath(step.variables) });
}

keras.utils.setRandomSeed(7);
const mlp = await example('losses');
train('mlp_train_b32', mlp, 32);
train('mlp_train_b1024', mlp, 1024);
predict('mlp_predict_b1024', mlp, 1024);
const cnn = await example('cnn');
train('cnn_train_b32', cnn, 32);
train('cnn_train_b1024', cnn, 1024);
predict('cnn_predict_b1024', cnn, 1024);

const estimates: string[] = [], launches: string[] = [];
for (const k of cases) {
  const dir = path.join(out, k.name);
  const g = k.checked;
  const weights = g.params.map((p) => ({ name: nodeName(p), dtype: p.type.dtype, shape: p.type.shape, data: k.params[nodeName(p)]! }));
  // a training case's check runs the step with its updates as outputs as the artifact's predict entry
  const entries = [{ name: k.timed.name as 'predict' | 'trainStep', graph: k.timed.graph, batchSize: k.batch }, ...(k.timed.graph === g ? [] : [{ name: 'predict' as const, graph: g, batchSize: k.batch }])];
  const t0 = performance.now();
  compileCuda({ outDir: dir, entries, weights });
  const built = performance.now() - t0;
  writeFileSync(path.join(dir, 'entry'), `${k.timed.name}\n`);
  writeFileSync(path.join(dir, 'check_entry'), `${entries[entries.length - 1]!.name}\n`);
  const inputs: Record<string, Float32Array | Int32Array> = {};
  g.inputs.forEach((n, i) => {
    const name = nodeName(n), size = n.type.shape.reduce((a, b) => a * b, 1);
    inputs[name] = n.type.dtype === 'int32' ? Int32Array.from({ length: size }, (_, j) => (name === 'rng_counter' ? 3 : (j * 7) % 10)) : values(size, i);
    writeFileSync(path.join(dir, `in${i}.npy`), writeNpy(n.type.dtype, n.type.shape, inputs[name]!));
  });
  mkdirSync(path.join(dir, 'expected'), { recursive: true });
  const t1 = performance.now();
  // the GPU sums in the declared trees' order (codegen/loop/reduction_trees.ts): so does the reference
  const ref = interpret(reductionTrees(g, H100), inputs, k.params);
  for (const o of g.outputs) {
    const v = ref.outputs.get(o.name)!;
    writeFileSync(path.join(dir, 'expected', `${o.name.replace(/\//g, '_')}.npy`), writeNpy(v.type.dtype, v.type.shape, v.data));
  }
  // the emulated build (the same model.cu on the CPU) against the expected outputs before any GPU time, as
  // compare.py will check the GPU's (within 1e-6 + 1e-4 |want|: nvcc's -fmad=true may contract multiply-adds into
  // FMAs there), and how many outputs are bit for bit (the sums follow the declared trees, and kiln_cuda.h computes
  // exp, log and the other transcendental ops in double rounded once, as the interpreter: all of them, here)
  const t2 = performance.now();
  const ins = g.inputs.map((_, i) => `in${i}.npy`);
  execFileSync(path.join(dir, 'model_main_emu'), ['--entry', entries[entries.length - 1]!.name, '--out', 'emu', ...ins], { cwd: dir, stdio: 'ignore' });
  let exact = 0;
  const bad = g.outputs.filter((o) => {
    const f = `${o.name.replace(/\//g, '_')}.npy`;
    const [got, want] = ['emu', 'expected'].map((d) => readNpy(readFileSync(path.join(dir, d, f))).data);
    if (Buffer.from(got!.buffer, got!.byteOffset, got!.byteLength).equals(Buffer.from(want!.buffer, want!.byteOffset, want!.byteLength))) { exact++; return false; }
    return want!.some((w, i) => (Number.isNaN(w) ? !Number.isNaN(got![i]!) : !(Math.abs(got![i]! - w) <= 1e-6 + 1e-4 * Math.abs(w))));
  });
  rmSync(path.join(dir, 'emu'), { recursive: true });
  if (bad.length) throw new Error(`bench:cuda: ${k.name}: the emulated build differs from the interpreter on ${bad.map((o) => o.name).join(', ')}`);
  process.stderr.write(`prepared ${k.name} (emulated build matches, ${exact} of ${g.outputs.length} outputs bit for bit, ${((performance.now() - t2) / 1e3).toFixed(1)} s; nvcc and emulated builds ${(built / 1e3).toFixed(1)} s, interpreter ${((performance.now() - t1) / 1e3).toFixed(1)} s)\n`);
  // the cost model's estimate of the timed entry (bench/results-cuda.md), beside its launches
  const ls = launchShapes(runPipeline(k.timed.graph, { caps: CUDA_CAPS }).program);
  const cycles = ls.reduce((a, l) => a + l.cycles, 0);
  estimates.push(`${k.name}\t${ls.length} launches\t${cycles} cycles\t${(cycles / 1980).toFixed(1)} us at 1.98 GHz`);
  for (const l of ls) launches.push(`${k.name}\t${l.kernel}\t${l.grid}${l.nests > 1 ? ` (${l.nests} nests)` : ''} x ${l.block}\t${l.cycles} cycles`);
}

// model_train on the GPU: the seed MLP's predict and Adam trainStep entries sharing the device memory
const trainDir = path.join(out, 'mlp_fit');
await compile(mlp, { target: 'cuda', train: true, batchSize: 32, outDir: trainDir });
const [[xTrain, yTrain]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
writeFileSync(path.join(trainDir, 'x.npy'), writeNpy('float32', [8000, 784], xTrain.data));
writeFileSync(path.join(trainDir, 'y.npy'), writeNpy('int32', [8000], yTrain.data));

const scripts = path.join(root, 'bench', 'cuda-check');
for (const f of ['check.sh', 'compare.py', 'peers.py', 'table.py']) copyFileSync(path.join(scripts, f), path.join(out, f));
writeFileSync(path.join(out, 'cases.txt'), `${cases.map((k) => k.name).join('\n')}\n`);
writeFileSync(path.join(out, 'estimates.txt'), `${estimates.join('\n')}\n`);
// each launch's estimate (as --dump-after launches prints them), to set beside a profile of the GPU run
writeFileSync(path.join(out, 'launches.txt'), `${launches.join('\n')}\n`);
process.stderr.write(`wrote ${path.relative(root, out)}: run bash ${path.relative(root, path.join(out, 'check.sh'))} on a GPU machine\n`);
