// The llvm target's renderer processes (codegen/llvm/render_child.ts): started before the passes, each waits for the
// job file, renders its modules or nothing (a null job, too few modules), reports a failure in one line, and a compile
// that fails before it sends the job ends them (tests/llvm/parts.test.ts: the modules they render are the text this
// process renders for them, and model.o the same).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serialize } from 'node:v8';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm, dotIsa, hostCpu, llvmCaps } from '../../codegen/llvm/target.js';
import { type PartsJob, planParts, renderJobPart } from '../../codegen/llvm/render.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-renderers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const child = fileURLToPath(new URL('../../codegen/llvm/render_child.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Runs renderer `index` of `count` in a fresh folder on the job (written first): its exit status, stderr and files. */
function renderer(job: unknown, index: number, count: number): { status: number | null; stderr: string; files: string[]; dir: string } {
  const dir = mkdtempSync(path.join(tmp, 'r-'));
  writeFileSync(path.join(dir, 'job'), serialize(job));
  const r = spawnSync(process.execPath, ['--import', tsx, child, 'job', String(index), String(count)], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, files: readdirSync(dir).filter((f) => f !== 'job').sort(), dir };
}

describe('llvm renderer processes', () => {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(3);
  // (three modules of at least PART_WEIGHT statements)
  const model = keras.Sequential([keras.layers.Dense(48, { activation: 'relu', inputShape: [40] }),
    ...Array.from({ length: 16 }, () => keras.layers.Dense(48, { activation: 'tanh' })), keras.layers.Dense(10, { activation: 'softmax' })]);
  const t = traceModel(model, 3), g = t.graph;
  const c = runPipeline(g, { caps: { ...llvmCaps(hostCpu()), threads: 2 } });
  const entries = [{ name: 'predict', program: c.program, memory: c.memory }], layout = layoutModule(entries);
  const job = planParts(entries, layout, 'model', 3, {}, undefined, dotIsa(hostCpu(), undefined), 2);
  const tools = (p: number) => [['cp', [`m${p}.ll`, `m${p}.copy`]] as const];
  const full = { job, lls: Array.from({ length: job.n }, (_, p) => `m${p}.ll`), tools: Array.from({ length: job.n }, (_, p) => tools(p)) };

  it('renders the modules p % (count + 1) = index, each as this process renders it, and runs its tools', () => {
    expect(job.n).toBe(3);
    const r = renderer(full, 1, 1);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.files).toEqual(['m1.copy', 'm1.ll']);
    expect(readFileSync(path.join(r.dir, 'm1.ll'), 'utf8')).toBe(renderJobPart(job, 1));
    expect(readFileSync(path.join(r.dir, 'm1.copy'), 'utf8')).toBe(renderJobPart(job, 1));
    // renderer 1 of 2 (with this process, 3): only module 1 of 3; renderer 2: module 2
    expect(renderer(full, 1, 2).files).toEqual(['m1.copy', 'm1.ll']);
    expect(renderer(full, 2, 2).files).toEqual(['m2.copy', 'm2.ll']);
  });

  it('a null job or one of fewer modules: nothing done, no error', () => {
    expect(renderer(null, 1, 1)).toMatchObject({ status: 0, stderr: '', files: [] });
    expect(renderer(full, 3, 3)).toMatchObject({ status: 0, stderr: '', files: [] });
  });

  it('a module that does not render, or a tool that fails: exit status 1 and the error in one line, as sh reports it', () => {
    const broken: PartsJob = { ...job, offsets: { predict: {} } };
    const r = renderer({ ...full, job: broken }, 1, 1);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^llvm: unknown buffer \S+\n$/);
    const failing = renderer({ ...full, tools: full.tools.map(() => [['false', []]]) }, 1, 1);
    expect(failing.status).toBe(1);
    expect(failing.stderr).toBe('llvm: false failed: exit status 1\n');
  });

  it('a compile that fails after starting its renderers ends them: its own error, no job file, no renderer left', () => {
    const dir = path.join(tmp, 'failed');
    const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
    // (the entry's name is checked after the renderers start, when model_desc.c is written)
    expect(() => compileLlvm({ outDir: dir, entries: [{ name: 'not C', graph: g, batchSize: 3 }], weights: weightsOf(g, params), threads: 2, parts: 2 }))
      .toThrow(/^entry name "not C" is not a C identifier$/);
    expect(readdirSync(dir).filter((f) => f.startsWith('.kiln'))).toEqual([]);
    const running = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('render_child');
      } catch {
        return false;
      }
    }).map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ')).filter((cmd) => cmd.includes(dir));
    expect(running).toEqual([]);
  });
});
