// `kiln compile`'s caches end to end: type checks once per content, the persistent compile cache, --no-check,
// --timings, `kiln cache`, and what each command loads (lazy code generators), on the built dist/cli/main.js.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { kilnFingerprint } from '../cli/cache.js';
import { parseTscOutput } from '../cli/typecheck.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = path.join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cache-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kiln(args: string[], env: Record<string, string | undefined>, cwd = tmp): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Writes files under a new folder of tmp; returns the folder. */
function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmp, 'p-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

const dense = (units: number, extra = '') => `import * as keras from 'kiln';
${extra}
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(${units})(inputs) });
`;
const checkEntries = (cache: string) => (existsSync(path.join(cache, 'check')) ? readdirSync(path.join(cache, 'check')).filter((n) => n.endsWith('.json')) : []);
const artifactEntries = (cache: string) => (existsSync(path.join(cache, 'artifacts')) ? readdirSync(path.join(cache, 'artifacts')).filter((n) => !n.startsWith('.')) : []);
const filesOf = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(path.join(dir, f))).digest('hex')]));

const slow = { timeout: 300_000 };

describe('type checks, once per content', slow, () => {
  it('reports a type error from the cache exactly as from a fresh check, and rechecks a damaged entry', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'model.ts': dense(2, "const units: number = 'four';") });
    const fresh = await kiln(['compile', path.join(dir, 'model.ts'), '--emit', 'ir'], { KILN_CACHE_DIR: cache });
    expect(fresh.code).toBe(1);
    expect(fresh.stderr).toMatch(/^p-\w+\/model\.ts:2:7 Type 'string' is not assignable to type 'number'\.\n$/);
    const [entry] = checkEntries(cache);
    expect(entry).toBeDefined();
    const file = path.join(cache, 'check', entry!);
    utimesSync(file, new Date(0), new Date(0));
    const cached = await kiln(['compile', path.join(dir, 'model.ts'), '--emit', 'ir'], { KILN_CACHE_DIR: cache });
    expect(cached).toEqual(fresh);
    expect(statSync(file).mtimeMs).toBe(0); // read, not written again: the errors came from the cache
    // an entry whose diagnostics no longer match its hash is not used: the file is checked again
    const damaged = JSON.parse(readFileSync(file, 'utf8')) as { diagnostics: unknown[]; hash: string };
    writeFileSync(file, JSON.stringify({ ...damaged, diagnostics: [] }));
    expect(await kiln(['compile', path.join(dir, 'model.ts'), '--emit', 'ir'], { KILN_CACHE_DIR: cache })).toEqual(fresh);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(damaged);
  });

  it('misses when the model file or a file it imports changes; --no-check skips the check', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'units.ts': "export const units: number = 'two';\n", 'model.ts': dense(2, "import { units } from './units.js';\nexport const u = units;") });
    const model = path.join(dir, 'model.ts');
    const bad = await kiln(['compile', model, '--emit', 'ir'], { KILN_CACHE_DIR: cache });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^p-\w+\/units\.ts:1:14 Type 'string' is not assignable to type 'number'\.\n$/);
    // the model runs fine (units is unused by the model): only the check stops it
    const unchecked = await kiln(['compile', model, '--emit', 'ir', '--no-check'], { KILN_CACHE_DIR: cache });
    expect(unchecked.stderr).toBe('');
    expect(unchecked.stdout).toMatch(/= matmul /);
    writeFileSync(path.join(dir, 'units.ts'), 'export const units: number = 2;\n');
    const fixed = await kiln(['compile', model, '--emit', 'ir'], { KILN_CACHE_DIR: cache });
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
    writeFileSync(model, `${readFileSync(model, 'utf8')}export const broken: string = 3;\n`);
    const again = await kiln(['compile', model, '--emit', 'ir'], { KILN_CACHE_DIR: cache });
    expect(again.stderr).toMatch(/^p-\w+\/model\.ts:6:14 Type 'number' is not assignable to type 'string'\.\n$/);
    expect(checkEntries(cache)).toHaveLength(3);
  });

  it("gives ts-morph's diagnostics with TypeScript 7's native compiler", async () => {
    const dir = project({ 'model.ts': `import * as keras from 'kiln';
const layer = keras.layers.Dense('ten', { inputShape: [4] });
const o: { a: { b: number } } = { a: { b: 'x' } };
export default keras.Sequential([layer]);
` });
    const args = ['compile', path.join(dir, 'model.ts'), '--emit', 'ir'];
    const native = await kiln(args, { KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'cache-')) });
    const morph = await kiln(args, { KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'cache-')), KILN_TYPECHECK: 'ts-morph' });
    expect(native.code).toBe(1);
    expect(native.stderr.trim().split('\n')).toHaveLength(2);
    expect(native.stderr).toMatch(/model\.ts:2:34 Argument of type 'string' is not assignable to parameter of type 'number'\./);
    expect(morph).toEqual(native);
  });

  it('--timeout bounds the type check too: a hung tsc is killed and reported in one line', async () => {
    const dir = project({ 'model.ts': dense(2), 'tsc': '#!/bin/sh\nsleep 300\n' });
    chmodSync(path.join(dir, 'tsc'), 0o755);
    const r = await kiln(['compile', path.join(dir, 'model.ts'), '--emit', 'ir', '--timeout', '8'], { KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'cache-')), KILN_TSC: path.join(dir, 'tsc') });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `kiln: type-checking ${path.relative(tmp, path.join(dir, 'model.ts'))} did not finish within 8 s (--timeout sets the limit; --no-check skips the check)\n` });
  });

  it("parses native tsc's output: chained messages flattened as ts-morph flattens them, global errors", () => {
    const out = "a/m.ts(3,5): error TS2322: Type '{ b: string; }' is not assignable to type '{ b: number; }'.\n"
      + "  Types of property 'b' are incompatible.\n    Type 'string' is not assignable to type 'number'.\n"
      + 'error TS2318: Cannot find global type \'Array\'.\n';
    expect(parseTscOutput(out)).toEqual([
      { file: '/a/m.ts', line: 3, col: 5, text: "Type '{ b: string; }' is not assignable to type '{ b: number; }'.   Types of property 'b' are incompatible.     Type 'string' is not assignable to type 'number'." },
      { text: "Cannot find global type 'Array'." },
    ]);
  });
});

describe('the compile cache', slow, () => {
  it('a hit gives the same files; a changed model file or option misses; a damaged entry is rebuilt, never used', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'model.ts': dense(4) });
    const model = path.join(dir, 'model.ts');
    const compile = (out: string, ...more: string[]) => kiln(['compile', model, '--target', 'llvm', '-o', path.join(dir, out), '--timings', ...more], { KILN_CACHE_DIR: cache });
    const first = await compile('a');
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/^write .*\(compile cache miss: stored\)$/m);
    expect(first.stderr).toMatch(/^check .*\(beside load and run\)$/m);
    for (const phase of ['load', 'check', 'run', 'trace', 'passes', 'render', 'external tools', 'write', 'total']) expect(first.stderr).toMatch(new RegExp(`^${phase} +\\d+ ms`, 'm'));
    const [entryA] = artifactEntries(cache);
    const hit = await compile('b');
    expect(hit.stderr).toMatch(/^write .*\(compile cache hit\)$/m);
    expect(hit.stderr).toMatch(/^check .*\(from the cache; beside load and run\)$/m);
    expect(hit.stderr).not.toMatch(/^passes /m);
    expect(hit.stdout).toBe(first.stdout.split(path.join(dir, 'a')).join(path.join(dir, 'b')));
    expect(filesOf(path.join(dir, 'b'))).toEqual(filesOf(path.join(dir, 'a')));
    expect(statSync(path.join(dir, 'b', 'model_main')).mode).toBe(statSync(path.join(dir, 'a', 'model_main')).mode);
    expect(artifactEntries(cache)).toHaveLength(1);
    // options that change the artifact miss
    for (const [out, flag] of [['c', ['--max-batch', '8']], ['d', ['--embed-weights']]] as const) {
      const r = await compile(out, ...flag);
      expect(r.stderr).toMatch(/\(compile cache miss: stored\)/);
    }
    // so does a changed model file
    writeFileSync(model, dense(5));
    expect((await compile('e')).stderr).toMatch(/\(compile cache miss: stored\)/);
    expect(artifactEntries(cache)).toHaveLength(4);
    // a damaged entry: detected by its hashes, rebuilt, and the output is a fresh compile's
    writeFileSync(model, dense(4));
    appendFileSync(path.join(cache, 'artifacts', entryA!, 'files', 'model.ir'), '# damaged\n');
    const rebuilt = await compile('f');
    expect(rebuilt.stderr).toMatch(/\(compile cache miss: stored\)/);
    expect(filesOf(path.join(dir, 'f'))).toEqual(filesOf(path.join(dir, 'a')));
    expect((await compile('g')).stderr).toMatch(/\(compile cache hit\)/);
    expect(filesOf(path.join(dir, 'g'))).toEqual(filesOf(path.join(dir, 'a')));
  });

  it('two compiles at once share an empty cache: both complete and alike, one entry', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'model.ts': dense(6) });
    const both = await Promise.all(['x', 'y'].map((out) => kiln(['compile', path.join(dir, 'model.ts'), '--target', 'wasm', '-o', path.join(dir, out)], { KILN_CACHE_DIR: cache })));
    expect(both.map((r) => r.stderr)).toEqual(['', '']);
    expect(filesOf(path.join(dir, 'y'))).toEqual(filesOf(path.join(dir, 'x')));
    expect(artifactEntries(cache)).toHaveLength(1);
    expect(readdirSync(path.join(cache, 'artifacts')).filter((n) => n.startsWith('.'))).toEqual([]); // no temporary folder left
    const hit = await kiln(['compile', path.join(dir, 'model.ts'), '--target', 'wasm', '-o', path.join(dir, 'z'), '--timings'], { KILN_CACHE_DIR: cache });
    expect(hit.stderr).toMatch(/\(compile cache hit\)/);
    expect(filesOf(path.join(dir, 'z'))).toEqual(filesOf(path.join(dir, 'x')));
  });

  it("kiln's fingerprint changes with its version and its build", () => {
    const pkg = mkdtempSync(path.join(tmp, 'pkg-'));
    mkdirSync(path.join(pkg, 'dist'));
    writeFileSync(path.join(pkg, 'package.json'), '{"version":"1.0.0"}');
    writeFileSync(path.join(pkg, 'dist', 'a.js'), 'x');
    const a = kilnFingerprint(pkg);
    expect(kilnFingerprint(pkg)).toBe(a);
    writeFileSync(path.join(pkg, 'package.json'), '{"version":"1.0.1"}');
    const b = kilnFingerprint(pkg);
    expect(b).not.toBe(a);
    writeFileSync(path.join(pkg, 'dist', 'a.js'), 'xy');
    expect(kilnFingerprint(pkg)).not.toBe(b);
  });

  it('kiln cache info and clear; unknown options and subcommands are errors', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'model.ts': dense(3) });
    // (no prebuilt runtime objects: they compile into the cache, which clear then empties)
    expect((await kiln(['compile', path.join(dir, 'model.ts'), '--target', 'llvm', '-o', path.join(dir, 'out')], { KILN_CACHE_DIR: cache, KILN_PREBUILT_OBJECTS: path.join(tmp, 'none') })).code).toBe(0);
    const info = await kiln(['cache', 'info'], { KILN_CACHE_DIR: cache });
    expect(info.stdout).toMatch(new RegExp(`^cache: ${cache}\ncompiled artifacts: 1 entries, .*\ntype checks: 1 entries, .*\nruntime objects: [1-9]\\d* entries, .*\ndirect-mode entries: 1 entries, `));
    const clear = await kiln(['cache', 'clear'], { KILN_CACHE_DIR: cache });
    expect(clear.code).toBe(0);
    expect((await kiln(['cache', 'info'], { KILN_CACHE_DIR: cache })).stdout).toMatch(/artifacts: 0 entries, 0 B\ntype checks: 0 entries, 0 B\nruntime objects: 0 entries, 0 B\ndirect-mode entries: 0 entries, 0 B/);
    const unknown = await kiln(['compile', path.join(dir, 'model.ts'), '--no-cheque'], { KILN_CACHE_DIR: cache });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown option '--no-cheque'/);
    const sub = await kiln(['cache', 'purge'], { KILN_CACHE_DIR: cache });
    expect(sub.code).toBe(1);
    expect(sub.stderr).toMatch(/unknown command 'purge'/);
  });
});

describe('what each command loads', slow, () => {
  /** The URLs of every module loaded by the kiln command and its compile process (an ESM load hook in both). */
  async function loaded(args: string[], env: Record<string, string> = {}, cwd = tmp): Promise<{ run: Run; urls: string[] }> {
    const log = path.join(mkdtempSync(path.join(tmp, 'trace-')), 'loaded.txt');
    const hook = `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }`;
    const trace = path.join(path.dirname(log), 'trace.mjs');
    writeFileSync(trace, `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));\n`);
    const run = await kiln(args, { KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'cache-')), NODE_OPTIONS: `--import ${trace}`, ...env }, cwd);
    return { run, urls: existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [] };
  }
  const dir = project({ 'model.ts': dense(2) });
  const model = path.join(dir, 'model.ts');
  const has = (urls: string[], re: RegExp) => urls.some((u) => re.test(u));

  it('llvm loads no binaryen, --emit ir no code generator, and neither loads ts-morph', async () => {
    const llvm = await loaded(['compile', model, '--target', 'llvm', '-o', path.join(dir, 'llvm')]);
    expect(llvm.run.stderr).toBe('');
    expect(has(llvm.urls, /\/dist\/codegen\/llvm\/target\.js$/)).toBe(true); // the trace sees the compile process
    expect(has(llvm.urls, /\/node_modules\/binaryen\//)).toBe(false);
    expect(has(llvm.urls, /\/node_modules\/(ts-morph|@ts-morph)\//)).toBe(false);
    const ir = await loaded(['compile', model, '--emit', 'ir']);
    expect(ir.run.stdout).toMatch(/= matmul /);
    expect(has(ir.urls, /\/dist\/frontend\/index\.js$/)).toBe(true);
    expect(has(ir.urls, /\/dist\/codegen\/(wasm|llvm|cuda)\/target\.js$|\/node_modules\/(binaryen|ts-morph)\//)).toBe(false);
  });

  it('the kiln process loads no pipeline (loop IR, schedules) unless --help or --dump-after needs its pass names', async () => {
    const info = await loaded(['cache', 'info']);
    expect(info.run.code).toBe(0);
    expect(has(info.urls, /\/dist\/cli\/command\.js$/)).toBe(true);
    expect(has(info.urls, /\/dist\/driver\/pipeline\.js$/)).toBe(false);
    const help = await loaded(['compile', '--help']);
    expect(help.run.stdout).toMatch(/--dump-after <pass> .*\n.*\n.* of: canonicalize, /);
  });

  it('a model file that imports only kiln runs without tsx, as tsx runs it: the same IR; tsx where the tsconfig changes how it compiles', async () => {
    // a field over a base class's setter: assigned (the setter runs) where useDefineForClassFields is false, defined
    // (it does not) by default; the model's width says which
    const fields = (imports: string) => `import * as keras from 'kiln';${imports}
class Base { set n(v: number) { (globalThis as Record<string, unknown>)['kilnSetter'] = v; } }
class Sub extends Base { n = 2; }
new Sub();
const units = (globalThis as Record<string, unknown>)['kilnSetter'] === 2 ? 5 : 4;
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(units)(inputs) });
`;
    const run = async (dir: string) => {
      const r = await loaded(['compile', path.join(dir, 'model.ts'), '--emit', 'ir', '--no-check'], {}, dir);
      expect(r.run.code, r.run.stderr).toBe(0);
      return { ir: r.run.stdout, tsx: has(r.urls, /\/node_modules\/tsx\//) };
    };
    const tsconfig = (options: string) => `{ // tsx reads comments and trailing commas\n  "compilerOptions": { ${options}, },\n}\n`;
    const plain = await run(project({ 'model.ts': fields('') }));
    const local = await run(project({ 'model.ts': fields("\nimport { one } from './one.ts';\nvoid one;"), 'one.ts': 'export const one = 1;\n' }));
    const es2022 = await run(project({ 'model.ts': fields(''), 'tsconfig.json': tsconfig('"target": "ES2022", "strict": true') }));
    const assigning = await run(project({ 'model.ts': fields(''), 'tsconfig.json': tsconfig('"useDefineForClassFields": false') }));
    const es2020 = await run(project({ 'model.ts': fields(''), 'tsconfig.json': tsconfig('"target": "es2020"') }));
    expect([plain.tsx, local.tsx, es2022.tsx, assigning.tsx, es2020.tsx]).toEqual([false, true, false, true, true]);
    expect(plain.ir).toBe(local.ir);
    expect(plain.ir).toContain(': f32[3,4]');
    expect(es2022.ir).toBe(plain.ir);
    for (const ir of [assigning.ir, es2020.ir]) expect(ir).toContain(': f32[3,5]');
  });

  it('a compile\'s process starts before the command is parsed and takes its job as a message; it ends when the command ends without one', async () => {
    const log = path.join(mkdtempSync(path.join(tmp, 'procs-')), 'procs.txt');
    const start = path.join(path.dirname(log), 'start.mjs');
    // every node process of the command: its pid and whether it got a job argument (argv past the script)
    writeFileSync(start, `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(log)}, JSON.stringify({ pid: process.pid, script: process.argv[1], args: process.argv.length - 2 }) + '\\n');\n`);
    const procs = () => readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; script: string; args: number });
    const env = { KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'cache-')), NODE_OPTIONS: `--import ${start}` };
    const ok = await kiln(['compile', model, '--emit', 'ir'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/= matmul /);
    const children = procs().filter((p) => p.script.endsWith(path.join('cli', 'child.js')));
    expect(children.map((p) => p.args)).toEqual([0]);
    rmSync(log);
    const bad = await kiln(['compile', model, '--no-such-flag'], env);
    expect(bad.stderr).toMatch(/unknown option '--no-such-flag'/);
    const left = procs().filter((p) => p.script.endsWith(path.join('cli', 'child.js')));
    expect(left.length).toBe(1);
    // it exits once its parent has gone (bounded: a process left waiting fails here instead of hanging the suite)
    const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
    for (let i = 0; i < 200 && alive(left[0]!.pid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(left[0]!.pid)).toBe(false);
  });

  it('wasm loads no binaryen (kiln writes the binary itself); the ts-morph fallback loads ts-morph, and --no-check does not', async () => {
    const wasm = await loaded(['compile', model, '--target', 'wasm', '-o', path.join(dir, 'wasm')]);
    expect(wasm.run.stderr).toBe('');
    expect(has(wasm.urls, /\/dist\/codegen\/wasm\/encoder\.js$/)).toBe(true); // the trace sees the compile process
    expect(has(wasm.urls, /\/node_modules\/binaryen\//)).toBe(false);
    const morph = await loaded(['compile', model, '--emit', 'ir'], { KILN_TYPECHECK: 'ts-morph' });
    expect(morph.run.code).toBe(0);
    expect(has(morph.urls, /\/node_modules\/ts-morph\//)).toBe(true);
    const unchecked = await loaded(['compile', model, '--emit', 'ir', '--no-check'], { KILN_TYPECHECK: 'ts-morph' });
    expect(unchecked.run.code).toBe(0);
    expect(has(unchecked.urls, /\/node_modules\/ts-morph\//)).toBe(false);
  });
});
