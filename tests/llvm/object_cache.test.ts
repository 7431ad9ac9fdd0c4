// The runtime's object cache (codegen/native.ts startCompileCached): an object is keyed by its flags, its source and
// the files of its folder it includes, transitively, and by nothing else; so the runtime's objects, which do not
// include model.h, are compiled once for every model (they were compiled again for each new model, 0.8 s of CPU), and
// once with kiln itself (npm run build: cli/prebuild.ts), where compiles find them after their cache.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCompileCached } from '../../codegen/native.js';
import { compileLlvm, prebuildHostObjects } from '../../codegen/llvm/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { modelInputs } from '../passes/differential.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-object-cache-'));
const cache = path.join(tmp, 'cache'), src = path.join(tmp, 'src');
const saved = { cache: process.env['KILN_CACHE_DIR'], prebuilt: process.env['KILN_PREBUILT_OBJECTS'] };
const restore = (name: string, v: string | undefined) => (v === undefined ? delete process.env[name] : (process.env[name] = v));
beforeAll(() => {
  process.env['KILN_CACHE_DIR'] = cache;
  process.env['KILN_PREBUILT_OBJECTS'] = path.join(tmp, 'no-prebuilt'); // none: every object compiles into the cache
});
afterAll(() => {
  restore('KILN_CACHE_DIR', saved.cache);
  restore('KILN_PREBUILT_OBJECTS', saved.prebuilt);
  rmSync(tmp, { recursive: true, force: true });
});

const write = (files: Record<string, string>) => {
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(src, f), text);
};
const cached = () => readdirSync(cache).filter((f) => f.endsWith('.o')).sort();
/** Compiles rt.c and main.c through the cache; returns what `nm` says each object defines. */
function build(): Record<string, string> {
  startCompileCached('llvm', ['-O2'], ['rt', 'main'].map((f) => [path.join(src, `${f}.c`), path.join(src, `${f}.o`)]))();
  return Object.fromEntries(['rt', 'main'].map((f) => [f, execFileSync('nm', ['--defined-only', path.join(src, `${f}.o`)], { encoding: 'utf8' })]));
}

describe('the object cache', () => {
  it('keys each object by what it includes, transitively, and nothing else', { timeout: 60_000 }, () => {
    execFileSync('mkdir', ['-p', src]);
    write({
      'rt.h': '#include "core.h"\n', 'core.h': 'int rt_value(void);\n#define RT 1\n',
      'rt.c': '#include "rt.h"\nint rt_value(void) { return RT; }\n',
      'model.h': '#define ROWS 4\n', 'main.c': '#include "model.h"\n#include "rt.h"\nint rows4(void) { return ROWS; }\n',
    });
    let nm = build();
    expect(nm['rt']).toContain('rt_value');
    expect(nm['main']).toContain('rows4');
    const first = cached();
    expect(first).toHaveLength(2);
    // another model: a new main.o, the runtime's object reused
    write({ 'model.h': '#define ROWS 8\n', 'main.c': '#include "model.h"\n#include "rt.h"\nint rows8(void) { return ROWS; }\n' });
    nm = build();
    expect(nm['main']).toContain('rows8');
    expect(nm['rt']).toContain('rt_value');
    expect(cached()).toHaveLength(3);
    expect(cached()).toEqual(expect.arrayContaining(first));
    // a header that rt.c includes through rt.h changed: rt.o is compiled again (and main.o, which includes it too)
    write({ 'core.h': 'int rt_value(void);\n#define RT 2\nint rt_extra(void);\n', 'rt.c': '#include "rt.h"\nint rt_value(void) { return RT; }\nint rt_extra(void) { return 0; }\n' });
    nm = build();
    expect(nm['rt']).toContain('rt_extra');
    expect(cached()).toHaveLength(5);
    // the same sources again: all hits
    build();
    expect(cached()).toHaveLength(5);
  });

  it('reports a source gcc rejects as one error, and caches nothing of it', { timeout: 60_000 }, () => {
    write({ 'rt.c': '#include "rt.h"\nint rt_value(void) { return undeclared; }\n' });
    const before = cached();
    expect(() => build()).toThrow(/^llvm: gcc failed: .*undeclared/s);
    expect(cached()).toEqual(before);
    expect(readdirSync(cache).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('model_main.o is one object for every model (model_main.c sizes its memory at run time): a second model compiles none', { timeout: 120_000 }, () => {
    process.env['KILN_CACHE_DIR'] = path.join(tmp, 'models');
    try {
      const compileModel = (units: number, inputs: number, tag = '') => {
        keras.backend.clearSession();
        const m = keras.Sequential([keras.layers.Dense(units, { activation: 'relu', inputShape: [inputs] }), keras.layers.Dense(3)]);
        const t = traceModel(m, 2), params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
        const dir = path.join(tmp, `model-${units}${tag}`);
        compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: t.graph, batchSize: 2 }], weights: weightsOf(t.graph, params), threads: 1 });
        return { dir, g: t.graph, params };
      };
      const objects = () => readdirSync(path.join(tmp, 'models')).filter((f) => f.endsWith('.o')).length;
      compileModel(8, 5);
      const first = objects();
      expect(first).toBe(4); // kiln_runtime, kiln_rows, kiln_math, model_main
      const b = compileModel(300, 17); // another model: another model.h, memory size
      expect(objects()).toBe(first);
      const inputs = modelInputs(b.g, 5);
      expect(outputDiffs(b.g, inputs, b.params, runMain(path.join(b.dir, 'model_main'), b.dir, b.g, inputs), 'llvm')).toEqual([]);
    } finally {
      process.env['KILN_CACHE_DIR'] = cache;
    }
  });
  it('the runtime objects prebuilt with kiln (npm run build): a compile with an empty cache compiles none of them', { timeout: 120_000 }, () => {
    const prebuilt = path.join(tmp, 'prebuilt'), empty = path.join(tmp, 'empty-cache');
    const files = prebuildHostObjects(prebuilt);
    expect(files).toHaveLength(4); // kiln_runtime, kiln_rows, kiln_math, model_main
    expect(readdirSync(prebuilt).sort()).toEqual(files.map((f) => path.basename(f)).sort());
    // a stale object (an older runtime's) is dropped by the next prebuild
    writeFileSync(path.join(prebuilt, 'stale.o'), '');
    expect(prebuildHostObjects(prebuilt)).toEqual(files);
    expect(readdirSync(prebuilt)).not.toContain('stale.o');
    process.env['KILN_PREBUILT_OBJECTS'] = prebuilt;
    process.env['KILN_CACHE_DIR'] = empty;
    try {
      keras.backend.clearSession();
      const m = keras.Sequential([keras.layers.Dense(6, { activation: 'relu', inputShape: [4] }), keras.layers.Dense(2)]);
      const t = traceModel(m, 3), params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
      const dir = path.join(tmp, 'model-prebuilt');
      compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: t.graph, batchSize: 3 }], weights: weightsOf(t.graph, params), threads: 1 });
      let inCache: string[] = [];
      try { inCache = readdirSync(empty).filter((f) => f.endsWith('.o')); } catch { /* never made: nothing compiled */ }
      expect(inCache).toEqual([]);
      const inputs = modelInputs(t.graph, 5);
      expect(outputDiffs(t.graph, inputs, params, runMain(path.join(dir, 'model_main'), dir, t.graph, inputs), 'llvm')).toEqual([]);
    } finally {
      process.env['KILN_PREBUILT_OBJECTS'] = path.join(tmp, 'no-prebuilt');
      process.env['KILN_CACHE_DIR'] = cache;
    }
  });
});
