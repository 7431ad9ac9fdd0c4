// The `kiln` command end to end: runs the built dist/cli/main.js on model files inside and outside the repository.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEDULE_STEPS } from '../codegen/loop/schedules/index.js';
import { parseGraph } from '../ir/parser.js';
import { printGraph } from '../ir/printer.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { readSafetensors } from '../runtime/safetensors.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const execFileP = promisify(execFile);
const cli = path.join(root, 'dist', 'cli', 'main.js');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** An empty object cache for one run: a warm cache must never hide how a first compile goes. */
const freshCache = () => mkdtempSync(path.join(outside, 'cache-'));

function kiln(args: string[], env: Record<string, string | undefined> = {}, cwd = root, command = [process.execPath, cli]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command[0]!, [...command.slice(1), ...args], { cwd, env: { ...process.env, KILN_CACHE_DIR: freshCache(), ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Non-empty lines of a stream. */
const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

const models: Record<string, string> = {
  good: `import * as keras from 'kiln';
import type { compile } from 'kiln/compiler';
await Promise.resolve();
export const where: string = import.meta.url;
export const api: typeof compile | undefined = undefined;
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(2)(inputs) });
`,
  typeError: `import * as keras from 'kiln';

const model = keras.Sequential([keras.layers.Dense('ten', { inputShape: [4] })]);
export default model;
`,
  shapeError: `import * as keras from 'kiln';

const a = keras.Input({ shape: [3] });
const b = keras.Input({ shape: [4] });
const x = keras.layers.Add()([a, b]);
export default keras.Model({ inputs: [a, b], outputs: x });
`,
  noDefault: `import * as keras from 'kiln';
export const model = keras.Sequential([keras.layers.Dense(3, { inputShape: [4] })]);
`,
  notModel: `import * as keras from 'kiln';
export default keras.layers.Dense(3);
`,
  nulName: `import * as keras from 'kiln';
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(2, { name: 'a\\0b' })(inputs) });
`,
};

mkdirSync(path.join(root, 'tests', '.tmp'), { recursive: true });
const inside = mkdtempSync(path.join(root, 'tests', '.tmp', 'cli-'));
const outside = mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-'));
afterAll(() => {
  rmSync(inside, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

/** Writes a model as `<dir>/<case>/model.ts` and returns its path. */
function modelFile(dir: string, name: string): string {
  mkdirSync(path.join(dir, name), { recursive: true });
  const file = path.join(dir, name, 'model.ts');
  writeFileSync(file, models[name]!);
  return file;
}

// each test runs several kiln processes, and the suites run many at once: on a small shared machine that takes
// longer than vitest's default
const slow = { timeout: 300_000 };

describe.concurrent('kiln', slow, () => {
  it('prints help and version', async () => {
    const help = await kiln(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: kiln/);
    expect(help.stdout).toMatch(/compile/);
    const sub = await kiln(['compile', '--help']);
    expect(sub.stdout).toMatch(/--target/);
    expect(sub.stdout).toMatch(/--emit/);
    const v = await kiln(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(version);
  });

  it('prints the traced graph of a seed model with --emit ir', async () => {
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--emit', 'ir', '--batch-size', '4']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/= input \{name=.*f32\[4,784\]/);
    expect(r.stdout).toMatch(/= matmul /);
  });

  it('compiles for --target cuda: model.cu, a Makefile, and the CPU build of its kernels (model_main_emu) that runs', async () => {
    const out = path.join(outside, 'cuda');
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--target', 'cuda', '--batch-size', '2', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const f of ['model.cu', 'model.h', 'kiln_cuda.h', 'kiln_cuda_host.h', 'Makefile', 'model_main_emu', 'manifest.json', 'weights.safetensors']) expect(existsSync(path.join(out, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'))).toMatchObject({ target: 'cuda', arch: 'sm_90' });
    const x = path.join(out, 'x.npy');
    writeFileSync(x, writeNpy('float32', [2, 784], new Float32Array(2 * 784).fill(0.5)));
    const run = await execFileP(path.join(out, 'model_main_emu'), [x, '--out', path.join(out, 'y')]).then(() => 0, () => 1);
    expect(run).toBe(0);
    const y = readNpy(new Uint8Array(readFileSync(path.join(out, 'y', 'dense_1.npy'))));
    expect(y.shape).toEqual([2, 10]);
    expect(Math.abs([...y.data].slice(0, 10).reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5); // a softmax row
  });

  it("runs the README's `npx kiln compile model.ts --target llvm -o build/model` in a new project with an empty object cache", async () => {
    // a project of its own: kiln in its node_modules, the model file and the output relative to its directory
    const project = mkdtempSync(path.join(outside, 'project-'));
    mkdirSync(path.join(project, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(root, path.join(project, 'node_modules', 'kiln'));
    symlinkSync(path.join('..', 'kiln', 'dist', 'cli', 'main.js'), path.join(project, 'node_modules', '.bin', 'kiln'));
    writeFileSync(path.join(project, 'model.ts'), models['good']!);
    const npx = path.join(path.dirname(process.execPath), 'npx');
    // as a user's shell runs it: without the npm settings of the npm that started these tests (undefined: unset)
    const npmEnv = Object.fromEntries(Object.keys(process.env).filter((k) => /^npm_/i.test(k)).map((k) => [k, undefined]));
    // a kiln built without its runtime's objects (gcc compiles them into the empty cache), then as npm run build
    // leaves it (they come prebuilt: none compiled)
    for (const [name, prebuilt, compiled] of [['model', path.join(project, 'none'), 3], ['model2', undefined, 0]] as const) {
      const cache = path.join(project, `cache-${name}`);
      const r = await kiln(['kiln', 'compile', 'model.ts', '--target', 'llvm', '-o', `build/${name}`], { ...npmEnv, KILN_CACHE_DIR: cache, KILN_PREBUILT_OBJECTS: prebuilt }, project, [npx]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const objects = existsSync(cache) ? readdirSync(cache).filter((f) => f.endsWith('.o')).length : 0;
      if (compiled) expect(objects).toBeGreaterThanOrEqual(compiled); // the runtime was compiled, not found
      else expect(objects).toBe(0);
      // model_main equals x W + b with the artifact's weights
      const out = path.join(project, 'build', name);
      const x = Float32Array.of(1, -2, 0.5);
      writeFileSync(path.join(out, 'x.npy'), writeNpy('float32', [1, 3], x));
      await execFileP(path.join(out, 'model_main'), ['--out', 'y', 'x.npy'], { cwd: out });
      const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { outputs: { name: string }[] };
      const y = readNpy(new Uint8Array(readFileSync(path.join(out, 'y', `${manifest.outputs[0]!.name}.npy`))));
      const [w, b] = readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors')))).tensors.map((t) => t.data);
      expect(y.shape).toEqual([1, 2]);
      for (let j = 0; j < 2; j++) {
        const want = b![j]! + [0, 1, 2].reduce((acc, k) => acc + x[k]! * w![k * 2 + j]!, 0);
        expect(Math.abs(y.data[j]! - want)).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('reports a model file that does not exist in one line, for every target and with --timings', async () => {
    const rs = await Promise.all([[], ['--target', 'llvm', '--timings']].map((extra) =>
      kiln(['compile', 'examples/seed/no_such_model.ts', '-o', 'build/never-written', ...extra])));
    for (const r of rs) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(lines(r.stderr)).toEqual(['kiln: cannot find model file examples/seed/no_such_model.ts']);
    }
  });

  it('refuses an unknown target in one line', async () => {
    const bad = await kiln(['compile', 'examples/seed/sequential.ts', '--target', 'tpu']);
    expect(bad.code).not.toBe(0);
    expect(lines(bad.stderr)).toEqual(["kiln: unknown target 'tpu'; targets are wasm, llvm, cuda"]);
  });

  it('prints an error of the code generator with one kiln: prefix', async () => {
    const r = await kiln(['compile', modelFile(outside, 'nulName'), '--target', 'llvm', '-o', path.join(outside, 'nulName', 'out')]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['kiln: the name "a\\u0000b" contains a NUL character, which a C string cannot hold']);
  });

  for (const [where, dir] of [['inside the repository', inside], ['outside the repository', outside]] as const) {
    describe(where, () => {
      it('loads a model that imports kiln (top-level await, import.meta, kiln/compiler types)', async () => {
        const r = await kiln(['compile', modelFile(dir, 'good'), '--emit', 'ir']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/= matmul /);
      });

      it('reports a type error as one located line', async () => {
        const r = await kiln(['compile', modelFile(dir, 'typeError'), '--emit', 'ir']);
        expect(r.code).toBe(1);
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr.trim()).toMatch(/^.*model\.ts:3:\d+ .+/);
        expect(r.stderr).toMatch(/not assignable to parameter of type 'number'/);
      });

      it('reports a shape error as one line located in the model file', async () => {
        const r = await kiln(['compile', modelFile(dir, 'shapeError'), '--emit', 'ir']);
        expect(r.code).toBe(1);
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr.trim()).toMatch(/^.*shapeError[/\\]model\.ts:5:\d+ .*matching shapes.*\(None, 3\) and \(None, 4\)/);
      });

      it('reports a missing default export', async () => {
        const r = await kiln(['compile', modelFile(dir, 'noDefault'), '--emit', 'ir']);
        expect(r.code).toBe(1);
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr).toMatch(/noDefault[/\\]model\.ts has no default export/);
      });

      it('reports a default export that is not a model', async () => {
        const r = await kiln(['compile', modelFile(dir, 'notModel'), '--emit', 'ir']);
        expect(r.code).toBe(1);
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr).toMatch(/notModel[/\\]model\.ts: the default export is a Dense layer 'dense', not a keras model/);
      });
    });
  }

  it('shows the stack trace with KILN_DEBUG=1', async () => {
    mkdirSync(path.join(outside, 'debug'), { recursive: true });
    const file = path.join(outside, 'debug', 'model.ts');
    writeFileSync(file, models['shapeError']!);
    const r = await kiln(['compile', file, '--emit', 'ir'], { KILN_DEBUG: '1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model\.ts:5:\d+ /);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

describe.concurrent('kiln compile --dump-after', slow, () => {
  const passes = `canonicalize, empty, dce, trees, fuse, lower, simplify, ${SCHEDULE_STEPS.map((s) => `schedule:${s}`).join(', ')}, schedule, legalize, launches, memplan`;

  it('lists the passes in --help', async () => {
    const r = await kiln(['compile', '--help']);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`--dump-after <pass>`);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(passes);
  });

  it('prints the graph after a graph pass, the plan after fuse, loop IR after schedule, the arena after memplan', async () => {
    const [graph, plan, loops, memory] = await Promise.all(['dce', 'fuse', 'schedule', 'memplan'].map((p) =>
      kiln(['compile', 'examples/seed/sequential.ts', '--dump-after', p, '--batch-size', '2'])));
    for (const r of [graph, plan, loops, memory]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(graph.stdout).toMatch(/^graph @predict \{\n {2}%0 = input \{name="input_layer"\} : f32\[2,784\]\n/);
    expect(graph.stdout).toMatch(/= reduce_max %\d+ \{axes=\[1\], keepdims=true\} : f32\[2,1\]/);
    expect(lines(plan.stdout)).toHaveLength(2);
    expect(lines(plan.stdout)[0]).toMatch(/^k0_matmul: 1 nest\(s\) \[.*matmul.*\] writes %\d+$/);
    expect(loops.stdout).toMatch(/^program @predict\n/);
    expect(loops.stdout).toMatch(/\nkernel k1_\w+ {2}# ops: .*reduce_max/);
    expect(loops.stdout).toMatch(/ vector \{/);
    expect(memory.stdout).toMatch(/^arena \d+ bytes \(unshared \d+\)\n {2}\w+ @ 0\n/);
  });

  it('prints the schedule chosen for the --target and --cpu: register tiles for llvm, blocks, threads and shared tiles for cuda', async () => {
    const [llvm, avx2, cuda] = await Promise.all([['llvm', 'skylake-avx512'], ['llvm', 'x86-64-v3'], ['cuda']].map(([t, cpu]) =>
      kiln(['compile', 'examples/seed/sequential.ts', '--target', t!, '--dump-after', 'schedule', '--batch-size', '64', ...(cpu ? ['--cpu', cpu] : [])])));
    for (const r of [llvm, avx2, cuda]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(llvm.stdout).toMatch(/local acc\d+: f32\[256\] register/); // AVX-512: a 4 x 64 accumulator tile
    expect(avx2.stdout).toMatch(/local acc\d+: f32\[64\] register/); // AVX2's 16 ymm: 4 x 16
    expect(avx2.stdout).not.toMatch(/local acc\d+: f32\[256\] register/);
    expect(cuda.stdout).toMatch(/^ {2}for g\d+ in 0\.\.\d+ block \{$/m);
    expect(cuda.stdout).toMatch(/ thread \{$/m);
    expect(cuda.stdout).toMatch(/local As\d+: f32\[\d+\] shared/);
    expect(cuda.stdout).not.toMatch(/ vector \{/);
  });

  it('prints the program the renderers get after legalize: llvm\'s relu as compares and selects, wasm\'s f32.max kept', async () => {
    const [scheduled, llvm, wasm] = await Promise.all([['schedule', 'llvm'], ['legalize', 'llvm'], ['legalize', 'wasm']].map(([p, t]) =>
      kiln(['compile', 'examples/seed/sequential.ts', '--target', t!, '--dump-after', p!])));
    for (const r of [scheduled, llvm, wasm]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^program @predict\n/);
    }
    expect(scheduled.stdout).toMatch(/= max\(t\d+, 0\.0\)/);
    expect(llvm.stdout).not.toMatch(/ max\(/);
    expect(llvm.stdout).toMatch(/= select\(t\d+ > 0\.0, t\d+, select\(t\d+ != t\d+, t\d+, 0\.0\)\)/);
    expect(wasm.stdout).toMatch(/= max\(t\d+, 0\.0\)/);
  });

  it('prints the kernel after each schedule transform by name: schedule:tile, schedule:pack, schedule:vectorize', async () => {
    // wasm's 4 x 8 tiles: 16 row tiles read each panel of B, so B is packed
    const [tile, pack, vectorize, none] = await Promise.all(['tile', 'pack', 'vectorize', 'bind'].map((p) =>
      kiln(['compile', 'examples/seed/sequential.ts', '--dump-after', `schedule:${p}`, '--batch-size', '64'])));
    for (const r of [tile, pack, vectorize, none]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(tile.stdout).toMatch(/^# tile \(cpu-matmul\)\nkernel k0_matmul {2}# ops: .*matmul/);
    expect(pack.stdout).toMatch(/^# pack \(cpu-matmul\)\n/);
    expect(pack.stdout).toMatch(/\n {8}pack_k0_matmul\[\(p\d+ \* 784 \+ p\d+\) \* 8 \+ c\d+\] = /);
    expect(vectorize.stdout).toMatch(/^# vectorize \(cpu-matmul\)\n/);
    expect(vectorize.stdout).toMatch(/ vector \{/);
    expect(none.stdout).toMatch(/^# bind: not applied to this program \(steps applied: tile, .*\)\n$/);
  });

  it('refuses an unknown schedule step in one line listing every pass and step', async () => {
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--dump-after', 'schedule:tiles']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`kiln: unknown pass 'schedule:tiles'; passes are ${passes}`]);
  });

  it('prints the training step with --train (the model file calls model.compile)', async () => {
    const r = await kiln(['compile', 'examples/seed/losses.ts', '--train', '--dump-after', 'fuse', '--batch-size', '4']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.stdout).length).toBeGreaterThanOrEqual(2);
    expect(lines(r.stdout).length).toBeLessThanOrEqual(6);
    expect(r.stdout).toMatch(/random_uniform/); // dropout in training mode
  });

  it('refuses an unknown pass in one line listing the passes, before loading the model', async () => {
    const r = await kiln(['compile', 'examples/seed/no_such_model.ts', '--dump-after', 'fusion']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([`kiln: unknown pass 'fusion'; passes are ${passes}`]);
  });

  it('refuses --train on a model that was never compiled, and --emit with --dump-after', async () => {
    const [train, both] = await Promise.all([
      kiln(['compile', 'examples/seed/sequential.ts', '--train', '--dump-after', 'fuse']),
      kiln(['compile', 'examples/seed/sequential.ts', '--emit', 'ir', '--dump-after', 'fuse']),
    ]);
    expect(train.code).toBe(1);
    expect(lines(train.stderr)).toEqual(["kiln: model 'sequential' is not compiled: the training step needs model.compile({ optimizer, loss }) in the model file"]);
    expect(both.code).toBe(1);
    expect(lines(both.stderr)).toEqual(['kiln: choose one of --emit and --dump-after']);
  });
});

/** Model files that misbehave while they run; each writes `<dir>/<case>/model.ts`. */
const hostile: Record<string, string> = {
  exits: `import * as keras from 'kiln';
process.exit(3);
export default keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
`,
  neverSettles: `import * as keras from 'kiln';
await new Promise(() => {});
export default keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
`,
  loops: `import * as keras from 'kiln';
for (;;) { /* spin */ }
export default keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
`,
  waitsWithTimer: `import * as keras from 'kiln';
setInterval(() => {}, 1000);
await new Promise(() => {});
export default keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
`,
  badFit: `import * as keras from 'kiln';

const model = keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
model.compile({ optimizer: 'sgd', loss: 'mse' });
const x = keras.ops.zeros([4, 3]);
const y = keras.ops.zeros([4, 5]);
model.fit(x, y, { epochs: 1, batchSize: 2 });
export default model;
`,
  chatty: `import * as keras from 'kiln';

console.log('hello from the model file');
process.stdout.write('a raw write\\n');
const model = keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
model.summary();
model.compile({ optimizer: 'sgd', loss: 'mse' });
model.fit(keras.ops.zeros([4, 3]), keras.ops.zeros([4, 2]), { epochs: 2, batchSize: 2 });
export default model;
`,
};

function hostileFile(name: string): string {
  mkdirSync(path.join(outside, name), { recursive: true });
  const file = path.join(outside, name, 'model.ts');
  writeFileSync(file, hostile[name]!);
  return file;
}

/** Every file under a directory (relative path → contents), for comparing an output before and after. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => { const p = path.join(e.parentPath, e.name); return [path.relative(dir, p), readFileSync(p, 'base64')]; }));
}

describe.concurrent('kiln compile: model files run in a child process', slow, () => {
  it('reports a model file that calls process.exit in one line and writes nothing', async () => {
    const out = path.join(outside, 'exits', 'out');
    const r = await kiln(['compile', hostileFile('exits'), '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([`${path.relative(root, path.join(outside, 'exits', 'model.ts'))} called process.exit(3) while loading`]);
    expect(existsSync(out)).toBe(false);
  });

  it('reports a top-level await that can never settle in one line and writes nothing', async () => {
    const out = path.join(outside, 'neverSettles', 'out');
    const r = await kiln(['compile', hostileFile('neverSettles'), '-o', out]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/neverSettles[/\\]model\.ts: its top-level await never settles/);
    expect(existsSync(out)).toBe(false);
  });

  it('stops an endless loop, or a wait that a timer keeps alive, after --timeout seconds', async () => {
    const [loops, waits] = await Promise.all(['loops', 'waitsWithTimer'].map((name) =>
      kiln(['compile', hostileFile(name), '--timeout', '1', '-o', path.join(outside, name, 'out')])));
    for (const [name, r] of [['loops', loops!], ['waitsWithTimer', waits!]] as const) {
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([`${path.relative(root, path.join(outside, name, 'model.ts'))}: did not finish within 1 s (an endless loop or a promise that never settles?)`]);
      expect(existsSync(path.join(outside, name, 'out'))).toBe(false);
    }
  });

  it('refuses a --timeout that is not a number of seconds', async () => {
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--timeout', 'soon']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--timeout <seconds>.*expected a number of seconds/);
  });

  it('locates an error thrown inside fit at the model file line that called fit', async () => {
    const r = await kiln(['compile', hostileFile('badFit'), '--emit', 'ir']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr).at(-1)).toMatch(/^.*badFit[/\\]model\.ts:7:\d+ mean_squared_error: y_true shape \[2,5\] does not match y_pred shape \[2,2\]$/);
  });

  it('prints only the IR on stdout with --emit ir and --dump-after: the model file output goes to stderr', async () => {
    const file = hostileFile('chatty');
    const [emit, dump] = await Promise.all([kiln(['compile', file, '--emit', 'ir']), kiln(['compile', file, '--dump-after', 'dce'])]);
    for (const r of [emit, dump]) {
      expect(r.code).toBe(0);
      expect(printGraph(parseGraph(r.stdout))).toBe(r.stdout); // the parser reads nothing but graph text
      expect(r.stdout).toMatch(/= matmul /);
      expect(r.stderr).toMatch(/^hello from the model file\na raw write\nModel: "sequential"/);
      expect(r.stderr).toMatch(/Epoch 2\/2/);
    }
  });
});

describe.concurrent('kiln compile: the output directory is replaced whole or not at all', slow, () => {
  it('leaves the previous output as it was, and nothing beside it, when a compile fails', async () => {
    const dir = mkdtempSync(path.join(outside, 'fail-'));
    const out = path.join(dir, 'model');
    expect((await kiln(['compile', 'examples/seed/sequential.ts', '-o', out])).code).toBe(0);
    const before = snapshot(out);
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--target', 'llvm', '--cpu', 'bogus', '--batch-size', '2', '-o', out]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^kiln: llvm: (opt|llc)-14 failed: .*bogus/);
    expect(snapshot(out)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['model']);
  });

  it('creates nothing, not even the parent folders, when a compile into a new path fails', async () => {
    const dir = mkdtempSync(path.join(outside, 'fresh-'));
    const r = await kiln(['compile', 'examples/seed/sequential.ts', '--target', 'llvm', '--cpu', 'bogus', '-o', path.join(dir, 'a', 'b', 'model')]);
    expect(r.code).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('gives one line for an output directory that cannot be written (under /proc, a file, a folder of other files)', async () => {
    const dir = mkdtempSync(path.join(outside, 'bad-'));
    writeFileSync(path.join(dir, 'file'), 'x');
    mkdirSync(path.join(dir, 'mine'));
    writeFileSync(path.join(dir, 'mine', 'notes.txt'), 'keep me');
    const [proc, deep, file, mine] = await Promise.all([path.join('/proc', 'kiln-x'), path.join('/proc', 'kiln-x', 'y'), path.join(dir, 'file'), path.join(dir, 'mine')]
      .map((o) => kiln(['compile', 'examples/seed/sequential.ts', '-o', o])));
    expect(lines(proc!.stderr)).toEqual(['kiln: cannot write /proc/kiln-x: no such file or directory']);
    expect(lines(deep!.stderr)).toEqual(['kiln: cannot write /proc/kiln-x/y: no such file or directory']);
    expect(lines(file!.stderr)).toEqual([`kiln: cannot write ${path.join(dir, 'file')}: it exists and is not a directory`]);
    expect(lines(mine!.stderr)).toEqual([`kiln: will not replace ${path.join(dir, 'mine')}: it is not empty and holds no kiln output (manifest.json or model.o); choose another -o or empty it`]);
    for (const r of [proc, deep, file, mine]) expect(r!.code).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['file', 'mine']);
    expect(readdirSync(path.join(dir, 'mine'))).toEqual(['notes.txt']);
  });

  it('lets two compiles into one directory finish with one complete output, and removes builds left by killed compiles', async () => {
    const dir = mkdtempSync(path.join(outside, 'race-'));
    const out = path.join(dir, 'model');
    const stale = path.join(dir, '.model.kiln-999999999-0123456789ab');
    mkdirSync(stale);
    writeFileSync(path.join(stale, 'model.wasm'), 'partial');
    const runs = await Promise.all([2, 3].map((b) => kiln(['compile', 'examples/seed/sequential.ts', '--max-batch', String(b), '-o', out])));
    for (const r of runs) expect(r.code).toBe(0);
    expect(readdirSync(dir)).toEqual(['model']);
    expect(readdirSync(out)).toEqual(expect.arrayContaining(['manifest.json', 'model.ir', 'model.mjs', 'model.wasm', 'weights.safetensors']));
    const { entries } = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { entries: Record<string, { batchSize: number }> };
    const batch = entries['predict']!.batchSize;
    expect([2, 3]).toContain(batch);
    expect(readFileSync(path.join(out, 'model.ir'), 'utf8')).toContain(`: f32[${batch},784]`);
    // the loader of this output runs its own model.wasm at its batch size (5 rows: a chunk and single rows, or a
    // padded chunk)
    const { load } = (await import(pathToFileURL(path.join(out, 'model.mjs')).href)) as { load: () => Promise<{ predict: (x: Float32Array[]) => Float32Array[] }> };
    const m = await load();
    const [y] = m.predict([new Float32Array(5 * 784).fill(0.5)]);
    expect(y).toHaveLength(5 * 10);
  });
});

describe('the kiln package', () => {
  it('ships what an installed kiln needs: the built CLI, the C, CUDA and wasm runtime sources, and @types/node for model files', async () => {
    // what `npm install <tarball>` gets; checked without packing (--ignore-scripts skips the prepack build)
    const { stdout } = await execFileP('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
    const files = new Set((JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    // every file, in subfolders too (runtime/c/firmware)
    const runtime = (sub: string) => readdirSync(path.join(root, 'runtime', sub), { recursive: true, encoding: 'utf8' })
      .filter((f) => statSync(path.join(root, 'runtime', sub, f)).isFile()).map((f) => `runtime/${sub}/${f}`);
    for (const f of ['package.json', 'dist/cli/main.js', 'dist/cli/child.js', 'dist/compiler.js', 'dist/frontend/index.d.ts', ...runtime('c'), ...runtime('cuda'), ...runtime('wasm')]) {
      expect(files.has(f), f).toBe(true);
    }
    // cli/loader.ts type-checks model files against @types/node, and runs them with tsx: both must install with kiln
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies)).toEqual(expect.arrayContaining(['@types/node', 'ts-morph', 'tsx']));
  });
});
