// `kiln compile`'s direct mode, as ccache's: a compile whose command line, model file, every file its run read and
// every environment variable it read are unchanged since a compile that succeeded restores that compile's artifact
// from the compile cache without loading the compiler or running the model file. Imports nothing heavy: the `kiln`
// command tries it before loading anything else (cli/main.ts); a miss goes the usual way (cli/command.ts), whose
// compile process records what the run read (cli/record.ts) and stores the entry.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, hasArtifact, hashOf, kilnFingerprint, restoreArtifact, writeAtomically } from './cache.js';
import { buildDirAtomically, defaultOutDir } from './outdir.js';
import { packageRoot } from './root.js';

/** A `kiln compile` command line the direct mode understands: the model file and the flags as given. */
export interface DirectRequest {
  model: string;
  flags: Record<string, string | true>;
}

/** What a direct-mode entry maps a request to: the state of every input and environment variable, the artifact, the output. */
export interface DirectEntry {
  inputs: [string, string | null][];
  env: [string, string | null][];
  artifact: string;
  stdout: string;
}

const VALUED: Record<string, string> = {
  '-t': 'target', '--target': 'target', '-o': 'out', '--out': 'out', '--cpu': 'cpu', '--triple': 'triple', '--runtime': 'runtime',
  '--weights': 'weights', '--quantize': 'quantize', '--calibrate': 'calibrate', '--calibrate-method': 'calibrateMethod', '--batch-size': 'batchSize',
  '--max-batch': 'maxBatch', '--timeout': 'timeout', '--distributed': 'distributed',
};
const BOOLEAN: Record<string, string> = { '--train': 'train', '--embed-weights': 'embedWeights', '--no-check': 'noCheck', '--timings': 'timings' };
/** Flags naming files: resolved against the working directory in the key. */
const PATHS = ['out', 'weights', 'calibrate'];
/** Environment variables that change what kiln builds or where tsx resolves, beside those the run itself reads. */
const KEY_ENV = ['KILN_TYPECHECK', 'TSX_TSCONFIG_PATH', 'NODE_OPTIONS', 'PATH'];

/**
 * `kiln compile MODEL [flags]` with only flags the direct mode knows, each once, in the forms `--flag value`,
 * `--flag=value`, `-t value`, `-o value`; anything else (help, --emit, --dump-after, an unknown or repeated flag) is
 * undefined: the usual path handles, or rejects, it.
 */
export function parseDirect(argv: readonly string[]): DirectRequest | undefined {
  if (argv[0] !== 'compile') return undefined;
  const flags: Record<string, string | true> = {};
  let model: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      if (model !== undefined) return undefined;
      model = a;
      continue;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    let key = VALUED[name], value: string | true | undefined;
    if (key !== undefined) {
      value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    } else if ((key = BOOLEAN[name]) !== undefined && eq < 0) {
      value = true;
    } else {
      return undefined;
    }
    if (Object.hasOwn(flags, key)) return undefined;
    flags[key] = value;
  }
  // --timeout as the usual path accepts it: a number of seconds, 0 or more (it bounds the model file's run, which a hit skips)
  const timeout = flags['timeout'];
  if (timeout !== undefined && (timeout === true || timeout.trim() === '' || !(Number(timeout) >= 0) || !Number.isFinite(Number(timeout)))) return undefined;
  return model === undefined ? undefined : { model, flags };
}

/** The first-level key: kiln's build, the host, Node, the working directory, the model file's path, the flags and KEY_ENV. */
export function directKey(r: DirectRequest): string {
  const { timeout: _timeout, timings: _timings, ...keyed } = r.flags;
  const flags = Object.entries(keyed).map(([k, v]) => [k, PATHS.includes(k) && typeof v === 'string' ? path.resolve(v) : v]).sort();
  return hashOf(['kiln direct 1', kilnFingerprint(), hostId(), process.version, process.cwd(), path.resolve(r.model),
    JSON.stringify(flags), JSON.stringify(KEY_ENV.map((k) => process.env[k] ?? null))]);
}

/** The machine, as much of it as any target's build depends on: architecture, CPU model and features, core count. */
function hostId(): string {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l)) ?? '';
  } catch { /* not Linux */ }
  const cpus = os.cpus();
  return `${process.arch} ${cpus.length} ${cpus[0]?.model ?? ''} ${flags}`;
}

const entryFile = (key: string) => path.join(cacheDir(), 'direct', `${key}.json`);

/** The entry of a key, or undefined when absent or damaged (its hash does not match). */
function readEntry(key: string): DirectEntry | undefined {
  try {
    const { entry, hash } = JSON.parse(readFileSync(entryFile(key), 'utf8')) as { entry: DirectEntry; hash: string };
    return hashOf([JSON.stringify(entry)]) === hash ? entry : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The direct mode's lookup: when argv is a compile the direct mode understands and its entry's inputs, environment
 * and artifact are all as stored, writes the artifact to the output folder, prints what the compile printed, and
 * returns true. Any difference, or any problem at all, returns false: the usual path then runs (and reports).
 */
export function tryDirect(argv: readonly string[]): boolean {
  if (process.env['KILN_DIRECT'] === '0') return false;
  const r = parseDirect(argv);
  if (!r) return false;
  const start = performance.now();
  try {
    const entry = readEntry(directKey(r));
    if (!entry || !entry.env.every(([k, v]) => (process.env[k] ?? null) === v)) return false;
    if (!entry.inputs.every(([p, state]) => fileState(p) === state) || !hasArtifact(entry.artifact)) return false;
    const looked = performance.now();
    const out = typeof r.flags['out'] === 'string' ? r.flags['out'] : defaultOutDir(r.model);
    buildDirAtomically(out, (dir) => {
      const files = restoreArtifact(entry.artifact, dir);
      if (!files) throw new Error('damaged compile-cache entry'); // removed by restoreArtifact: the usual path rebuilds it
      return files;
    });
    process.stdout.write(entry.stdout);
    if (r.flags['timings']) {
      const rows: [string, number, string][] = [['load', start, ''], ['direct', looked - start, 'hit: the model file and all it read unchanged; not run'],
        ['write', performance.now() - looked, 'compile cache hit'], ['total', performance.now(), 'wall, this command']];
      process.stderr.write(`${timingLines(rows)}\n`);
    }
    return true;
  } catch {
    return false;
  }
}

/** `--timings`' rows, [phase, milliseconds, note], as its lines on stderr (without the last newline). */
export function timingLines(rows: readonly [string, number, string][]): string {
  return rows.map(([name, ms, note]) => `${name.padEnd(15)}${ms.toFixed(0).padStart(7)} ms${note ? `  (${note})` : ''}`).join('\n');
}

/**
 * Stores the direct-mode entry of a compile that succeeded: `recorded` inputs and environment from its compile
 * process, plus the model file, its local imports (the type check read them), the weights and calibration files and
 * every tsconfig.json tsx may read (the working directory's and its parents').
 */
export function storeDirect(argv: readonly string[], recorded: { inputs: [string, string | null][]; env: [string, string | null][] }, artifact: string, stdout: string, localFiles: string[]): void {
  const r = parseDirect(argv);
  if (!r || !hasArtifact(artifact)) return;
  const inputs = new Map(recorded.inputs);
  const more = [path.resolve(r.model), ...localFiles, ...['weights', 'calibrate'].flatMap((k) => (typeof r.flags[k] === 'string' ? [path.resolve(r.flags[k])] : []))];
  for (let d = process.cwd(); ; d = path.dirname(d)) {
    more.push(path.join(d, 'tsconfig.json'));
    if (path.dirname(d) === d) break;
  }
  for (const p of more) {
    const input = inputOf(p);
    if (input !== undefined && !inputs.has(input)) inputs.set(input, fileState(input));
  }
  const entry: DirectEntry = { inputs: [...inputs].sort(([a], [b]) => (a < b ? -1 : 1)), env: recorded.env, artifact, stdout };
  try {
    writeAtomically(entryFile(directKey(r)), JSON.stringify({ entry, hash: hashOf([JSON.stringify(entry)]) }));
  } catch { /* an unwritable cache only costs the next compile */ }
}

/**
 * The file standing for a path read: none for kiln's own files (its fingerprint covers them), the caches and the
 * kernel's; a package's package.json (its name and version) for a file inside node_modules; else the path itself.
 */
export function inputOf(p: string): string | undefined {
  if (ownDirs().some((d) => p === d || p.startsWith(d + path.sep))) return undefined;
  const parts = p.split(path.sep), i = parts.lastIndexOf('node_modules');
  if (i < 0 || i + 1 >= parts.length) return p;
  const pkg = parts.slice(0, i + (parts[i + 1]!.startsWith('@') ? 3 : 2));
  return [...pkg, 'package.json'].join(path.sep);
}

let own: string[] | undefined;

/** kiln's build, runtime and packages (as named and as resolved: node_modules may be a link), the cache and the kernel's files. */
function ownDirs(): string[] {
  if (own) return own;
  const dirs = ['dist', 'runtime', 'node_modules'].map((d) => path.join(packageRoot, d));
  for (const d of [...dirs]) {
    try {
      dirs.push(realpathSync(d));
    } catch { /* absent */ }
  }
  return (own = [...dirs, cacheDir(), '/proc', '/sys', '/dev']);
}

/** A file's sha256, `dir ` and the hash of its names for a folder, null when absent or unreadable. */
export function fileState(p: string): string | null {
  try {
    const s = statSync(p);
    const h = createHash('sha256');
    if (s.isDirectory()) return `dir ${h.update(readdirSync(p).sort().join('\n')).digest('hex')}`;
    return h.update(readFileSync(p)).digest('hex');
  } catch {
    return null;
  }
}
