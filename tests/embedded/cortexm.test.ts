// The seed MLP as Cortex-M4 firmware (--triple thumbv7em-none-eabihf): built from the artifact with arm-none-eabi-gcc,
// run on QEMU's mps2-an386 board; its classes and probabilities (semihosting) equal the interpreter's within 1e-5.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { readSafetensors } from '../../runtime/safetensors.js';
import { elfSizes } from '../../codegen/llvm/elf.js';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { ensureBuilt, root } from '../built.js';

const missing = ['arm-none-eabi-gcc', 'qemu-system-arm'].filter((t) => !hasTool(t));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cortexm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `kiln compile examples/seed/sequential.ts` with args into dir: exit code, stdout and stderr. */
function kiln(dir: string, args: string[]) {
  return spawnSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '--target', 'llvm', ...args, '-o', dir], { cwd: root, encoding: 'utf8' });
}

/** The rows of firmware/samples.h (floats written with 9 significant digits: each float32 exactly). */
function samples(file: string): Float32Array[] {
  const body = readFileSync(file, 'utf8').split('kiln_samples')[1]!;
  return [...body.matchAll(/\{([^{}]*)\}/g)].map((m) => Float32Array.from(m[1]!.split(',').map((v) => Number(v.trim().replace(/f$/, '')))));
}

describe.skipIf(missing.length > 0)(`the seed MLP on a Cortex-M4 (mps2-an386 under QEMU)${missing.length ? `: skipped, ${missing.join(' and ')} not installed` : ''}`, () => {
  const dir = path.join(tmp, 'mlp');
  let stdout = '';
  beforeAll(() => {
    ensureBuilt();
    const r = kiln(dir, ['--triple', 'thumbv7em-none-eabihf', '--embed-weights']);
    if (r.status !== 0) throw new Error(r.stderr);
    stdout = r.stdout;
  }, 300_000);

  it('prints the classes and probabilities of the interpreter (float32 on the FPU: within 1e-5)', () => {
    const fw = path.join(dir, 'firmware');
    const run = spawnSync('qemu-system-arm', ['-M', 'mps2-an386', '-nographic', '-semihosting-config', 'enable=on,target=native', '-kernel', 'firmware.elf'],
      { cwd: fw, encoding: 'utf8', timeout: 60_000 });
    expect(run.error, 'qemu did not finish within 60 s').toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    const rows = samples(path.join(fw, 'samples.h'));
    const lines = run.stdout.trim().split('\n').filter((l) => l.startsWith('sample '));
    expect(lines).toHaveLength(rows.length);

    const weights = readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'weights.safetensors')))).tensors;
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, weights[i]!.data as Float32Array)));
    const x = new Float32Array(rows.length * 784);
    rows.forEach((r, i) => x.set(r, i * 784));
    const want = (model.predict(new keras.Tensor('float32', [rows.length, 784], x), { backend: 'interpreter' }) as keras.Tensor).data;
    lines.forEach((line, i) => {
      const m = /^sample (\d+): class (\d+): (.*)$/.exec(line)!;
      const probs = m[3]!.trim().split(/\s+/).map(Number);
      const ref = Array.from(want.subarray(i * 10, i * 10 + 10));
      expect(Number(m[1])).toBe(i);
      expect(Number(m[2])).toBe(ref.indexOf(Math.max(...ref)));
      probs.forEach((p, j) => expect(Math.abs(p - ref[j]!), `sample ${i} class ${j}`).toBeLessThanOrEqual(1e-5));
    });
  });

  it('keeps model code + runtime core within 16 KB of flash, the weights in flash and RAM = the model memory + buffers', () => {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const s = manifest.sizes;
    expect(manifest.runtime).toBe('freestanding');
    expect(s.codeFlashBytes).toBeLessThanOrEqual(16 * 1024);
    expect(s.weightBytes).toBe((784 * 64 + 64 + 64 * 10 + 10) * 4);
    expect(s.flashBytes).toBeGreaterThanOrEqual(s.weightBytes);
    // RAM: the memory block (arena + input, no weights), the batch in and out, the stack's and newlib's few KB
    expect(s.memoryBytes).toBeLessThan(s.weightBytes / 10);
    expect(s.firmware.ramBytes).toBeLessThan(s.memoryBytes + 16 * 1024);
    expect(s.firmware.flashBytes).toBeGreaterThan(s.weightBytes);
    expect(stdout).toMatch(/^sizes: model code [\d,]+ B, runtime code [\d,]+ B, .*arena [\d,]+ B.*; firmware image: flash [\d,]+ B, RAM [\d,]+ B$/m);
    // the weights' array is placed in flash (below 0x20000000), not copied to RAM
    const nm = spawnSync('arm-none-eabi-nm', ['firmware.elf'], { cwd: path.join(dir, 'firmware'), encoding: 'utf8' }).stdout;
    const at = /^([0-9a-f]+) [TR] kiln_flash$/m.exec(nm); // rodata inside the flash .text section
    expect(at, 'kiln_flash is in the image').not.toBeNull();
    expect(parseInt(at![1]!, 16)).toBeLessThan(0x20000000);
  });

  it('kiln_math.c\'s freestanding rintf, floorf, ceilf, fmaxf, fminf equal newlib\'s on the M4', () => {
    const fw = path.join(dir, 'firmware'), out = path.join(tmp, 'libm');
    const cpu = ['-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16'];
    const renamed = ['rintf', 'floorf', 'ceilf', 'fmaxf', 'fminf'].map((f) => `-D${f}=kiln_t_${f}`);
    execFileSync('mkdir', ['-p', out]);
    execFileSync('arm-none-eabi-gcc', [...cpu, '-Os', '-std=c99', '-DKILN_FREESTANDING', ...renamed, '-c', path.join(root, 'runtime/c/kiln_math.c'), '-o', path.join(out, 'kiln_math.o')]);
    execFileSync('arm-none-eabi-gcc', [...cpu, '-O2', '-std=c99', '-fno-builtin', '-T', path.join(fw, 'mps2-an386.ld'), '-nostartfiles', '--specs=rdimon.specs',
      path.join(fw, 'startup.c'), path.join(root, 'tests/embedded/libm_test.c'), path.join(out, 'kiln_math.o'), '-lm', '-o', path.join(out, 'libm_test.elf')]);
    const run = spawnSync('qemu-system-arm', ['-M', 'mps2-an386', '-nographic', '-semihosting-config', 'enable=on,target=native', '-kernel', 'libm_test.elf'],
      { cwd: out, encoding: 'utf8', timeout: 60_000 });
    expect(run.stdout).toBe('ok\n');
  });

  it('the runtime core and the model object need no stdio, malloc, threads, files or libm', () => {
    const need = (f: string) => elfSizes(readFileSync(path.join(dir, f)), f).undefined;
    expect(need('firmware/kiln_core.o').filter((s) => !['memcpy', 'memmove', 'memset', 'strcmp'].includes(s))).toEqual([]);
    expect(need('firmware/kiln_math.o').filter((s) => !['memcpy'].includes(s))).toEqual([]);
    // the seed MLP's kernels call only what kiln_math.c provides (rintf, fmaxf: no FPU instruction on ARMv7E-M)
    const provided = ['rintf', 'floorf', 'ceilf', 'fmaxf', 'fminf'];
    expect(need('model.o').filter((s) => !s.startsWith('kiln_') && !provided.includes(s) && !s.startsWith('__aeabi_'))).toEqual([]);
  });
});
