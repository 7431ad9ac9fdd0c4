// The llvm target's host build in modules that opt and llc build at once (render.ts renderLlvmParts): every kernel
// defined in one module, the entry calling the others' as hidden symbols of model.o, the same outputs as one module.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { modelInputs } from '../passes/differential.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-parts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** model.o's symbols as name -> "BIND VISIBILITY" (readelf). */
function symbols(obj: string): Map<string, string> {
  const out = execFileSync('readelf', ['-s', '--wide', obj], { encoding: 'utf8' });
  return new Map(out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 8 && f[3] === 'FUNC').map((f) => [f[7]!, `${f[4]} ${f[5]}`]));
}

describe('llvm modules built at once', () => {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(7);
  const model = keras.Sequential([keras.layers.Dense(48, { activation: 'relu', inputShape: [40] }),
    ...Array.from({ length: 10 }, () => keras.layers.Dense(48, { activation: 'tanh' })), keras.layers.Dense(10, { activation: 'softmax' })]);
  const t = traceModel(model, 3), g = t.graph;
  const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
  const build = (parts: number) => {
    const dir = path.join(tmp, `p${parts}`);
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 3 }], weights: weightsOf(g, params), threads: 2, parts });
    return dir;
  };

  it('split: each kernel in one module, the others\' hidden in model.o, outputs equal the interpreter and one module\'s', () => {
    const one = build(1), two = build(2);
    expect(existsSync(path.join(one, 'model.1.ll'))).toBe(false);
    const lls = ['model.ll', 'model.1.ll'].map((f) => readFileSync(path.join(two, f), 'utf8'));
    const defined = lls.map((ll) => [...ll.matchAll(/^define [^@\n]*@(\w*predict_k\d+\w*?)\(/gm)].map((m) => m[1]!).filter((f) => !/_par\d+$/.test(f)));
    const kernels = [...readFileSync(path.join(one, 'model.ll'), 'utf8').matchAll(/^define [^@\n]*@(predict_k\d+\w*?)\(/gm)].map((m) => m[1]!).filter((f) => !/_par\d+$/.test(f));
    expect(defined[0]!.length, 'a kernel in each module').toBeGreaterThan(0);
    expect(defined[1]!.length, 'a kernel in each module').toBeGreaterThan(0);
    // the kernels of the second module are kiln_-prefixed, hidden, and declared (hidden) in the first, which calls them
    expect([...defined[0]!, ...defined[1]!.map((f) => f.replace(/^kiln_/, ''))].sort()).toEqual([...kernels].sort());
    for (const f of defined[1]!) {
      expect(f).toMatch(/^kiln_predict_k\d+/);
      expect(lls[0]).toMatch(new RegExp(`^declare hidden void @${f}\\(`, 'm'));
      expect(lls[1]).toMatch(new RegExp(`^define hidden void @${f}\\(`, 'm'));
    }
    const syms = symbols(path.join(two, 'model.o'));
    expect(syms.get('kiln_predict')).toBe('GLOBAL DEFAULT');
    for (const f of defined[1]!) expect(syms.get(f), f).toBe('GLOBAL HIDDEN');
    const inputs = modelInputs(g, 3);
    const outs = [one, two].map((dir) => runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' }));
    expect(outputDiffs(g, inputs, params, outs[1]!, 'llvm, 2 modules')).toEqual([]);
    for (const [name, v] of outs[0]!) expect(Buffer.from(outs[1]!.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
  });
});
