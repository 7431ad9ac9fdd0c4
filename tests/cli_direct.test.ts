// `kiln compile`'s direct mode (cli/direct.ts, cli/record.ts) end to end on the built dist/cli/main.js: an unchanged
// compile is restored without running the model file, and any change to what the compile depends on misses.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDirect } from '../cli/direct.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = path.join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-direct-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Whether the model file ran (it appends to a log). */
  ran: boolean;
  /** The --timings note of the direct row: 'hit …', 'stored …', 'not stored …', or undefined. */
  direct: string | undefined;
}

/** One `kiln compile model.ts (or file) --target llvm -o out --timings ...` in `dir`; the model files of `project` log their runs to dir/ran.log. */
function compile(dir: string, cache: string, more: string[] = [], env: Record<string, string> = {}, file = 'model.ts'): Promise<Run> {
  const log = path.join(dir, 'ran.log');
  const before = existsSync(log) ? readFileSync(log, 'utf8').length : 0;
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'compile', file, '--target', 'llvm', '-o', 'out', '--timings', ...more],
      { cwd: dir, env: { ...process.env, KILN_CACHE_DIR: cache, RUN_LOG: log, ...env } }, (err, stdout, stderr) => {
        const ran = (existsSync(log) ? readFileSync(log, 'utf8').length : 0) > before;
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr, ran, direct: /^direct +\d+ ms {2}\((.*)\)$/m.exec(stderr)?.[1] });
      });
  });
}

/** A folder of files; model.ts appends to $RUN_LOG whenever it runs. */
function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmp, 'p-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

/** A model file whose Dense layer has `units` units; `head` goes before it (imports, reads). */
const model = (units: string, head = '') => `import { appendFileSync } from 'node:fs';
import * as keras from 'kiln';
${head}
appendFileSync(process.env['RUN_LOG']!, 'ran\\n');
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(${units})(inputs) });
`;
const filesOf = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(path.join(dir, f))).digest('hex')]));
/** The units of the compiled model's output, from its manifest. */
const units = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'out', 'manifest.json'), 'utf8')) as { outputs: { shape: number[] }[] }).outputs[0]!.shape.at(-1);

const slow = { timeout: 300_000 };

describe('the direct mode', slow, () => {
  it('restores an unchanged compile without running the model file; a changed model file, import, data file or option misses', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({
      'units.ts': 'export const extra = 1;\n',
      'units.json': '{ "units": 2 }',
      'model.ts': model('units + extra', `import { readFileSync } from 'node:fs';\nimport { extra } from './units.js';\nconst { units } = JSON.parse(readFileSync(new URL('./units.json', import.meta.url), 'utf8')) as { units: number };`),
    });
    const first = await compile(dir, cache);
    expect(first.code).toBe(0);
    expect([first.ran, first.direct]).toEqual([true, 'stored for the direct mode']);
    const files = filesOf(path.join(dir, 'out'));
    const hit = await compile(dir, cache);
    expect([hit.code, hit.ran, hit.direct]).toEqual([0, false, 'hit: the model file and all it read unchanged; not run']);
    expect(hit.stdout).toBe(first.stdout);
    expect(filesOf(path.join(dir, 'out'))).toEqual(files);
    expect(units(dir)).toBe(3);
    // each change runs the model file again and builds what it now says
    const changes: [string, () => void, number][] = [
      ['data file', () => writeFileSync(path.join(dir, 'units.json'), '{ "units": 4 }'), 5],
      ['import', () => writeFileSync(path.join(dir, 'units.ts'), 'export const extra = 2;\n'), 6],
      ['model file', () => writeFileSync(path.join(dir, 'model.ts'), `${readFileSync(path.join(dir, 'model.ts'), 'utf8')}// edited\n`), 6],
    ];
    for (const [what, change, shape] of changes) {
      change();
      const r = await compile(dir, cache);
      expect([what, r.code, r.ran, r.direct]).toEqual([what, 0, true, 'stored for the direct mode']);
      expect([what, units(dir)]).toEqual([what, shape]);
      expect([what, (await compile(dir, cache)).ran]).toEqual([what, false]);
    }
    const option = await compile(dir, cache, ['--max-batch', '8']);
    expect([option.ran, option.direct]).toEqual([true, 'stored for the direct mode']);
    expect(units(dir)).toBe(6);
    expect((await compile(dir, cache, ['--max-batch=8'])).ran).toBe(false); // the same flag, spelled as commander also reads it
  });

  it('misses when a file the run looked for appears, an environment variable it read or kiln itself changes', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const dir = project({ 'model.ts': model("existsSync(new URL('./wide', import.meta.url)) ? 5 : Number(process.env['UNITS'] ?? 2)", "import { existsSync } from 'node:fs';") });
    expect((await compile(dir, cache)).ran).toBe(true);
    expect((await compile(dir, cache)).ran).toBe(false);
    const env = await compile(dir, cache, [], { UNITS: '3' });
    expect([env.ran, units(dir)]).toEqual([true, 3]);
    expect((await compile(dir, cache, [], { UNITS: '3' })).ran).toBe(false);
    writeFileSync(path.join(dir, 'wide'), '');
    const appeared = await compile(dir, cache, [], { UNITS: '3' });
    expect([appeared.ran, units(dir)]).toEqual([true, 5]);
    // a rebuilt kiln (a file of its build with another time) has another fingerprint
    expect((await compile(dir, cache, [], { UNITS: '3' })).ran).toBe(false);
    const built = path.join(root, 'dist', 'cli', 'root.js'), { atime, mtime } = statSync(built);
    utimesSync(built, atime, new Date(mtime.getTime() + 1000));
    try {
      expect((await compile(dir, cache, [], { UNITS: '3' })).ran).toBe(true);
    } finally {
      utimesSync(built, atime, mtime);
    }
  });

  it('stores nothing for a run that draws random numbers or changes a file it read; never uses a damaged entry; a --no-check entry does not skip a check', async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const random = project({ 'model.ts': model('Math.random() < 2 ? 2 : 3') });
    const r = await compile(random, cache);
    expect([r.code, r.direct]).toEqual([0, 'not stored: the model file used Math.random()']);
    expect((await compile(random, cache)).ran).toBe(true);
    // nor for one that changes a file it read: what it read is not what the file holds now
    const rewrite = project({ 'n.txt': '2', 'model.ts': model("rewrite('n.txt')", "import { readFileSync, writeFileSync } from 'node:fs';\nconst rewrite = (f: string) => { const n = readFileSync(f, 'utf8'); writeFileSync(f, n); return Number(n); };") });
    const rewritten = await compile(rewrite, cache);
    expect([rewritten.code, rewritten.direct]).toEqual([0, `not stored: the model file used a file that changed while it ran (${path.join(rewrite, 'n.txt')})`]);
    const dir = project({ 'model.ts': model('2') });
    const first = await compile(dir, cache);
    const entries = readdirSync(path.join(cache, 'direct'));
    expect(entries).toHaveLength(1); // the random run's was not stored
    const file = path.join(cache, 'direct', entries[0]!);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { entry: { stdout: string }; hash: string };
    writeFileSync(file, JSON.stringify({ ...stored, entry: { ...stored.entry, stdout: 'forged\n' } }));
    const damaged = await compile(dir, cache);
    expect([damaged.ran, damaged.stdout]).toEqual([true, first.stdout]);
    // a damaged compile-cache artifact: the lookup's restore fails, the usual path rebuilds it
    for (const artifact of readdirSync(path.join(cache, 'artifacts')).filter((n) => !n.startsWith('.'))) writeFileSync(path.join(cache, 'artifacts', artifact, 'files', 'model.ir'), '# damaged\n');
    const rebuilt = await compile(dir, cache);
    expect([rebuilt.code, rebuilt.ran]).toEqual([0, true]);
    expect(filesOf(path.join(dir, 'out'))['model.ir']).not.toBe(createHash('sha256').update('# damaged\n').digest('hex'));
    // a type error compiled with --no-check is still reported by a checked compile
    writeFileSync(path.join(dir, 'model.ts'), model('2', "const n: number = 'two';"));
    expect((await compile(dir, cache, ['--no-check'])).code).toBe(0);
    const checked = await compile(dir, cache);
    expect(checked.code).toBe(1);
    expect(checked.stderr).toMatch(/model\.ts:3:7 Type 'string' is not assignable to type 'number'\./);
  });

  it("counts the clock when the model's own files read it, not when packages do (a .keras file's h5wasm and binaryen)", async () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const clock = project({ 'model.ts': model('Date.now() > 0 ? 2 : 3') });
    expect((await compile(clock, cache)).direct).toBe('not stored: the model file used Date.now()');
    const dir = project({});
    const keras = (await compile(dir, cache, [], {}, path.join(root, 'tests', 'fixtures', 'keras', 'seq.keras')));
    expect([keras.code, keras.direct]).toEqual([0, 'stored for the direct mode']);
    expect((await compile(dir, cache, [], {}, path.join(root, 'tests', 'fixtures', 'keras', 'seq.keras'))).direct).toMatch(/^hit: /);
  });

  it('understands only plain compile command lines, each flag once', () => {
    expect(parseDirect(['compile', 'm.ts', '-t', 'llvm', '--out=b', '--train', '--timeout', '0'])).toEqual({ model: 'm.ts', flags: { target: 'llvm', out: 'b', train: true, timeout: '0' } });
    expect(parseDirect(['compile', 'm.ts', '--quantize', 'int8', '--calibrate', 'x.npy', '--calibrate-method', 'mse'])).toEqual({ model: 'm.ts', flags: { quantize: 'int8', calibrate: 'x.npy', calibrateMethod: 'mse' } });
    for (const argv of [['compile'], ['compile', 'm.ts', '--emit', 'ir'], ['compile', 'm.ts', '-tllvm'], ['compile', 'm.ts', '-t', 'llvm', '--target', 'wasm'],
      ['compile', 'm.ts', 'n.ts'], ['compile', 'm.ts', '--help'], ['compile', 'm.ts', '--timeout', 'x'], ['compile', 'm.ts', '--batch-size', '-1'], ['export', 'm.ts'],
      ['compile', 'm.ts', '--train=yes'], ['compile', 'm.ts', '--unknown']]) {
      expect([argv, parseDirect(argv)]).toEqual([argv, undefined]);
    }
  });
});
