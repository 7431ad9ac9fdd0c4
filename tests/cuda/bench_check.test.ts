// bench/cuda-check's scripts, which run once, blind, on the GPU machine: compare.py tells MATCH from DIFFER (values,
// NaN, shape) and table.py turns check.sh's results into one table with the peers' ratios. Needs python3 and NumPy.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../runtime/npy.js';

const scripts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'cuda-check');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const py = (args: string[]) => spawnSync('python3', args, { cwd: tmp, encoding: 'utf8' });

describe('bench/cuda-check', () => {
  it('check.sh parses', () => {
    expect(spawnSync('bash', ['-n', path.join(scripts, 'check.sh')], { encoding: 'utf8' }).status).toBe(0);
  });

  it('compare.py: MATCH within 1e-6 + 1e-4 |want|, DIFFER past it, on a NaN the interpreter does not have, on a shape', (ctx) => {
    if (!numpy) return ctx.skip('python3 with NumPy is not installed');
    const want = Float32Array.of(1, -2, Number.NaN, 1000);
    const compare = (got: Float32Array, shape = [4], line = false) => {
      const c = `c${Math.random().toString(36).slice(2)}`;
      mkdirSync(path.join(tmp, c, 'expected'), { recursive: true });
      mkdirSync(path.join(tmp, c, 'got'));
      writeFileSync(path.join(tmp, c, 'expected', 'y.npy'), writeNpy('float32', [4], want));
      writeFileSync(path.join(tmp, c, 'got', 'y.npy'), writeNpy('float32', shape, got));
      const r = py([path.join(scripts, 'compare.py'), c]);
      expect(r.status, r.stderr).toBe(0);
      return line ? r.stdout : r.stdout.split(' ')[0];
    };
    // the expected outputs follow the GPU's declared reduction trees, so a bit-for-bit result is reported as such
    expect(compare(Float32Array.of(1, -2, Number.NaN, 1000), [4], true)).toMatch(/^MATCH \(1 outputs, bit for bit;/);
    expect(compare(Float32Array.of(1, -2, Number.NaN, 1000.05), [4], true)).toMatch(/^MATCH \(1 outputs;/);
    expect(compare(Float32Array.of(1, -2, Number.NaN, 1000.05))).toBe('MATCH');
    expect(compare(Float32Array.of(1, -2, Number.NaN, 1000.2))).toBe('DIFFER');
    expect(compare(Float32Array.of(1, Number.NaN, Number.NaN, 1000))).toBe('DIFFER');
    expect(compare(Float32Array.of(1, -2, 0, 1000))).toBe('DIFFER');
    expect(compare(Float32Array.of(1, -2, Number.NaN, 1000), [2, 2])).toBe('DIFFER');
  });

  it('table.py: one row per case with the peers\' ratios to kiln\'s launches, "-" where a number is missing', () => {
    writeFileSync(path.join(tmp, 'results.tsv'), ['all\tgpu\tNVIDIA H200, 570.1', 'mlp_train_b32\tcheck\tMATCH', 'mlp_train_b32\tkiln_launches\t20.0',
      'mlp_train_b32\tkiln_call\t31.5', 'mlp_train_b32\ttorch\t140.0', 'mlp_train_b32\tjax\t160.0', 'cnn_train_b32\tcheck\tFAILED', 'cnn_train_b32\ttorch\t245.0', ''].join('\n'));
    // the cost model's estimates (bench/cuda.ts's estimates.txt) beside the measurements, where the file has the case
    writeFileSync(path.join(tmp, 'estimates.txt'), 'mlp_train_b32\t4 launches\t82688 cycles\t41.8 us at 1.98 GHz\n');
    const r = py([path.join(scripts, 'table.py'), 'results.tsv']);
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toContain('NVIDIA H200, 570.1');
    expect(rows[3]!.split('|').map((x) => x.trim())).toEqual(['mlp_train_b32', 'MATCH', '20.0', '31.5', '140.0', '160.0', '7.00x', '8.00x', '25', '41.8', '0.48x']);
    expect(rows[4]!.split('|').map((x) => x.trim())).toEqual(['cnn_train_b32', 'FAILED', '-', '-', '245.0', '-', '-', '-', '80', '-', '-']);
  });
});
