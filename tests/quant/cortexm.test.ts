// The int8 seed MLP as Cortex-M4 firmware (freestanding runtime, int8 weights in flash) under QEMU: its probabilities
// equal the interpreter's on the quantized graph within 1e-5 (softmax in float32 on the FPU, newlib's expf), and it
// needs a quarter of the float32 image's weight flash.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile, quantize } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { interpret } from '../../ir/interpreter.js';

const missing = ['arm-none-eabi-gcc', 'qemu-system-arm'].filter((t) => !hasTool(t));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-m4-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(missing.length > 0)(`the int8 seed MLP on a Cortex-M4 (mps2-an386 under QEMU)${missing.length ? `: skipped, ${missing.join(' and ')} not installed` : ''}`, () => {
  it('prints the interpreter\'s probabilities of the quantized graph, with int8 weights in flash', async () => {
    keras.utils.setRandomSeed(4);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const [[xTrain]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
    const calibrate = { shape: [200, 784], data: (xTrain.data as Float32Array).subarray(0, 200 * 784) };
    const dir = path.join(tmp, 'm4');
    const res = await compile(model, { target: 'llvm', triple: 'thumbv7em-none-eabihf', embedWeights: true, outDir: dir, quantize: 'int8', calibrate });
    expect(res.sizes!['weightBytes']).toBe(784 * 64 + 64 * 10 + 4 * (64 + 10));
    const fw = path.join(dir, 'firmware');
    const run = spawnSync('qemu-system-arm', ['-M', 'mps2-an386', '-nographic', '-semihosting-config', 'enable=on,target=native', '-kernel', 'firmware.elf'],
      { cwd: fw, encoding: 'utf8', timeout: 60_000 });
    expect(run.error, 'qemu did not finish within 60 s').toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    const body = readFileSync(path.join(fw, 'samples.h'), 'utf8').split('kiln_samples')[1]!;
    const rows = [...body.matchAll(/\{([^{}]*)\}/g)].map((m) => Float32Array.from(m[1]!.split(',').map((v) => Number(v.trim().replace(/f$/, '')))));
    const lines = run.stdout.trim().split('\n').filter((l) => l.startsWith('sample '));
    expect(lines).toHaveLength(rows.length);
    const q = quantize(model, calibrate, { batchSize: 1 });
    lines.forEach((line, i) => {
      const want = Array.from(interpret(q.graph, { input_layer: rows[i]! }, q.params).outputs.get('dense_1')!.data);
      const m = /^sample (\d+): class (\d+): (.*)$/.exec(line)!;
      expect(Number(m[2])).toBe(want.indexOf(Math.max(...want)));
      m[3]!.trim().split(/\s+/).map(Number).forEach((p, j) => expect(Math.abs(p - want[j]!), `sample ${i} class ${j}`).toBeLessThanOrEqual(1e-5));
    });
  }, 300_000);
});
