// `kiln compile --quantize int8 --calibrate x.npy` end to end on the built CLI, and its option errors in one line.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkQuantize } from '../../cli/common.js';
import { writeNpy } from '../../runtime/npy.js';
import { ensureBuilt, root } from '../built.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kiln(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), ...args], { cwd: root, env: { ...process.env, KILN_CACHE_DIR: path.join(tmp, 'cache') } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

describe('kiln compile --quantize', () => {
  it('checks its options: the kind, calibration data with it, inference only, every target', () => {
    const q = (o: Parameters<typeof checkQuantize>[0]) => () => checkQuantize(o);
    expect(checkQuantize({ target: 'llvm', quantize: 'int8', calibrate: 'x.npy' })).toBe('int8');
    expect(checkQuantize({ target: 'wasm' })).toBeUndefined();
    expect(q({ target: 'llvm', quantize: 'int4', calibrate: 'x.npy' })).toThrow(/^unknown quantization 'int4'; choose one of int8$/);
    expect(q({ target: 'llvm', quantize: 'int8' })).toThrow(/^--quantize int8 needs calibration data \(--calibrate samples.npy\)$/);
    expect(q({ target: 'llvm', calibrate: 'x.npy' })).toThrow(/^--calibrate gives calibration data for --quantize int8, which is missing$/);
    expect(q({ target: 'llvm', quantize: 'int8', calibrate: 'x.npy', train: true })).toThrow(/contradict each other/);
    expect(checkQuantize({ target: 'wasm', quantize: 'int8', calibrate: 'x.npy' })).toBe('int8');
    expect(checkQuantize({ target: 'cuda', quantize: 'int8', calibrate: 'x.npy' })).toBe('int8');
  });

  it('compiles the seed MLP with int8 weights from an .npy of samples; a bad .npy is one line', async () => {
    ensureBuilt();
    const x = path.join(tmp, 'x.npy'), bad = path.join(tmp, 'bad.npy'), out = path.join(tmp, 'out');
    writeFileSync(x, writeNpy('float32', [20, 784], Float32Array.from({ length: 20 * 784 }, (_, i) => (i * 7919 % 1000) / 1000)));
    writeFileSync(bad, writeNpy('float32', [20, 783], new Float32Array(20 * 783)));
    const model = path.join(root, 'examples', 'seed', 'sequential.ts');
    const ok = await kiln(['compile', model, '--target', 'llvm', '--quantize', 'int8', '--calibrate', x, '-o', out, '--max-batch', '4']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { params: { dtype: string }[]; quantization: Record<string, unknown> };
    expect(manifest.params.map((p) => p.dtype)).toEqual(['int8', 'int32', 'int8', 'int32']);
    expect(Object.keys(manifest.quantization)).toContain('dense/output');
    const wrong = await kiln(['compile', model, '--target', 'llvm', '--quantize', 'int8', '--calibrate', bad, '-o', path.join(tmp, 'o2')]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr.trim().split('\n')).toEqual(["kiln: quantize: calibration data of shape [20, 783] does not fit input 'input_layer' ([N, 784], N >= 1)"]);
    const method = await kiln(['compile', model, '--quantize', 'int8', '--calibrate', x, '--calibrate-method', 'kl', '-o', path.join(tmp, 'o3')]);
    expect(method.stderr.trim().split('\n')).toEqual(["kiln: --calibrate-method: unknown calibration method 'kl'; choose one of minmax, percentile (or percentile:P, e.g. percentile:99.99), mse"]);
    const alone = await kiln(['compile', model, '--calibrate-method', 'mse', '-o', path.join(tmp, 'o4')]);
    expect(alone.stderr.trim().split('\n')).toEqual(['kiln: --calibrate-method chooses how --quantize int8 calibrates, which is missing']);
    const two = await kiln(['compile', model, '--quantize', 'int8', '--calibrate', x, '--calibrate', x, '-o', path.join(tmp, 'o5')]);
    expect(two.stderr.trim().split('\n')).toEqual(["kiln: quantize: 2 calibration arrays for the model's 1 inputs (input_layer)"]);
  });
});
