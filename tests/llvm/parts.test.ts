// The llvm target's host build in modules that opt and llc build at once (render.ts renderLlvmParts): every kernel
// defined in one module, the entry calling the others' as hidden symbols of model.o, the same outputs as one module;
// each module's tools started as soon as it is rendered give the same model.o as tools run after the whole render.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm, dotIsa, hostCpu, llvmCaps } from '../../codegen/llvm/target.js';
import { renderLlvmParts } from '../../codegen/llvm/render.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { runPipeline } from '../../driver/pipeline.js';
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

  it('pipelined: model.o is the one opt, llc and ld -r make of the modules rendered whole, one after another', () => {
    const dir = build(2);
    // the modules as the whole render gives them (no callback), and with a callback: the same text, as written
    const c = runPipeline(g, { caps: { ...llvmCaps(hostCpu()), threads: 2 } });
    const entries = [{ name: 'predict', program: c.program, memory: c.memory }], layout = layoutModule(entries);
    const given: string[] = [];
    const dot = dotIsa(hostCpu(), undefined), whole = renderLlvmParts(entries, layout, 'model', 2, {}, undefined, dot);
    expect(renderLlvmParts(entries, layout, 'model', 2, {}, undefined, dot, (ir) => given.push(ir))).toEqual(whole);
    expect(given).toEqual(whole);
    expect(whole.length).toBe(2);
    expect(['model.ll', 'model.1.ll'].map((f) => readFileSync(path.join(dir, f), 'utf8'))).toEqual(whole);
    const seq = path.join(tmp, 'sequential');
    mkdirSync(seq, { recursive: true });
    const mcpu = `-mcpu=${hostCpu()}`;
    whole.forEach((ir, p) => {
      writeFileSync(path.join(seq, `m${p}.ll`), ir);
      execFileSync('opt-14', ['-O3', mcpu, `m${p}.ll`, '-o', `m${p}.bc`], { cwd: seq });
      execFileSync('llc-14', ['-O3', mcpu, '-relocation-model=pic', '-filetype=obj', `m${p}.bc`, '-o', `m${p}.part.o`], { cwd: seq });
    });
    execFileSync('ld', ['-r', '-o', 'model.o', 'm0.part.o', 'm1.part.o'], { cwd: seq });
    expect(readFileSync(path.join(dir, 'model.o')).equals(readFileSync(path.join(seq, 'model.o')))).toBe(true);
  });
});
