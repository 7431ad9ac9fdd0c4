// What a model file's run and trace read, for the direct mode (cli/direct.ts): the files it opens, stats or lists, the
// modules it loads, the environment variables it reads, and whether it asked for the time, randomness, a process or
// the network (then its result is not reused without running it). Installed in the compile process (cli/child.ts).
import cp from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileState, inputOf } from './direct.js';
import { packageRoot } from './root.js';

/** What the run depended on: each input file's state (fileState) and each environment variable read (null: unset). */
export type Recorded = { inputs: [string, string | null][]; env: [string, string | null][] } | { volatile: string };

const paths = new Set<string>();
const envRead = new Set<string>();
let volatile: string | undefined;
let active = false;
let startedAt = 0;
let modules: { port: MessagePort; counted: Int32Array; urls: Set<string>; received: number } | undefined;

/**
 * Calls of these make a run's result depend on more than its files and environment. The clock counts only when the
 * model's own files read it: packages and kiln read it for timestamps (emscripten's file system in h5wasm, the
 * progress bar of fit), which change no result.
 */
const VOLATILE: [object, string[], string][] = [
  [Math, ['random'], 'Math.random()'],
  [crypto, ['randomBytes', 'randomUUID', 'randomInt', 'randomFill', 'randomFillSync', 'getRandomValues'], 'crypto randomness'],
  [globalThis.crypto, ['getRandomValues', 'randomUUID'], 'crypto randomness'],
  [cp, ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'], 'a child process'],
  [http, ['request', 'get'], 'the network'], [https, ['request', 'get'], 'the network'], [net, ['connect', 'createConnection'], 'the network'],
  [globalThis, ['fetch'], 'the network'],
];

/** fs functions whose first argument is a path the run reads (opens, stats or lists). */
const READS = ['readFile', 'open', 'stat', 'lstat', 'readdir', 'access', 'opendir', 'readlink', 'copyFile', 'exists', 'createReadStream']
  .flatMap((n) => [n, `${n}Sync`]);

/**
 * Starts recording (once per process): wraps the fs, randomness, time, process and network functions and
 * process.env. Call before the model file runs; the module hooks then report every module they resolve (hookPort).
 */
export function startRecording(): void {
  if (active) return;
  active = true;
  startedAt = Date.now();
  for (const [owner, names, what] of VOLATILE) {
    for (const name of names) wrap(owner, name, (f) => function (this: unknown, ...args: unknown[]) {
      if (active) volatile ??= what;
      return Reflect.apply(f, this, args);
    });
  }
  wrap(Date, 'now', (f) => function (this: unknown, ...args: unknown[]) {
    if (active && volatile === undefined && calledByUser()) volatile = 'Date.now()';
    return Reflect.apply(f, this, args);
  });
  const RealDate = Date;
  // new Date() and Date() read the clock; new Date(x) does not
  globalThis.Date = new Proxy(RealDate, {
    construct(t, args, newTarget) {
      if (active && !args.length && volatile === undefined && calledByUser()) volatile = 'new Date()';
      return Reflect.construct(t, args, newTarget) as object;
    },
    apply(t, self, args) {
      if (active && volatile === undefined && calledByUser()) volatile = 'Date()';
      return Reflect.apply(t, self, args) as unknown;
    },
  });
  for (const owner of [fs, fsp]) {
    for (const name of READS) wrap(owner, name, (f) => function (this: unknown, ...args: unknown[]) {
      // a file opened to be written (appendFileSync opens it through fs.openSync) is not read
      if (active && !(name.startsWith('open') && writesOnly(args[1]))) note(args[0]);
      return Reflect.apply(f, this, args);
    });
  }
  syncBuiltinESMExports(); // `import { readFileSync } from 'node:fs'` sees the wrapped functions too
  const env = process.env;
  process.env = new Proxy(env, {
    get: (t, k) => (read(k), Reflect.get(t, k)),
    has: (t, k) => (read(k), Reflect.has(t, k)),
    getOwnPropertyDescriptor: (t, k) => (read(k), Reflect.getOwnPropertyDescriptor(t, k)),
    ownKeys: (t) => {
      const keys = Reflect.ownKeys(t);
      keys.forEach(read);
      return keys;
    },
  });
}

/** Whether open's flags open a file for writing only: 'w', 'a', 'wx'…, or O_WRONLY. */
function writesOnly(flags: unknown): boolean {
  return typeof flags === 'string' ? /^[wa]/.test(flags) && !flags.includes('+') : typeof flags === 'number' && (flags & 3) === fs.constants.O_WRONLY;
}

/** Whether the caller of the function that calls this is a file of the user's: not in node_modules, not kiln's. */
function calledByUser(): boolean {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 3;
  const frame = new Error().stack?.split('\n')[3] ?? '';
  Error.stackTraceLimit = limit;
  const file = /\((?:file:\/\/)?(\/[^)]*?):\d+:\d+\)$|at (?:file:\/\/)?(\/\S*?):\d+:\d+$/.exec(frame);
  const where = file?.[1] ?? file?.[2];
  return where === undefined || !(where.includes(`${path.sep}node_modules${path.sep}`) || where.startsWith(path.join(packageRoot, 'dist') + path.sep));
}

function read(k: string | symbol): void {
  if (active && typeof k === 'string') envRead.add(k);
}

/** Replaces owner[name] by make(it): an own or inherited method, or a getter's function (node:crypto's getRandomValues). */
function wrap(owner: object, name: string, make: (f: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown): void {
  const own = Object.getOwnPropertyDescriptor(owner, name);
  const f = (owner as Record<string, unknown>)[name];
  if (typeof f !== 'function' || (own && !own.configurable && !own.writable)) return;
  Object.defineProperty(owner, name, { value: make(f as (...args: unknown[]) => unknown), writable: true, configurable: true, enumerable: own?.enumerable ?? false });
}

function note(p: unknown): void {
  if (p === 0) volatile ??= 'standard input';
  else if (typeof p === 'string') paths.add(path.resolve(p));
  else if (p instanceof URL && p.protocol === 'file:') paths.add(fileURLToPath(p));
  else if (Buffer.isBuffer(p)) paths.add(path.resolve(p.toString()));
}

/**
 * The data for hooks.ts's initialize while recording: a port it posts every resolved file URL to, and a shared
 * counter of what it posted (so that stopRecording knows when it has them all).
 */
export function hookPort(): { port: MessagePort; counted: SharedArrayBuffer } {
  const { port1, port2 } = new MessageChannel();
  const counted = new SharedArrayBuffer(4);
  modules = { port: port1, counted: new Int32Array(counted), urls: new Set(), received: 0 };
  const m = modules;
  port1.on('message', (url: string) => {
    m.urls.add(url);
    m.received++;
  });
  port1.unref();
  return { port: port2, counted };
}

/**
 * Stops recording (synchronously: nothing after this call is recorded) and returns what the run depended on, each
 * file's state taken now, or why it cannot be reused.
 */
export function stopRecording(): Promise<Recorded> {
  active = false;
  return finish();
}

async function finish(): Promise<Recorded> {
  // the hooks thread posted each URL before counting it: wait until every counted one has arrived
  for (let i = 0; modules && modules.received < Atomics.load(modules.counted, 0); i++) {
    if (i > 10_000) return { volatile: 'the module hooks did not report every module' };
    await new Promise((resolve) => setImmediate(resolve));
  }
  modules?.port.close();
  if (volatile) return { volatile };
  const all = new Set(paths);
  for (const url of modules?.urls ?? []) if (url.startsWith('file:')) all.add(fileURLToPath(url.replace(/[?#].*$/, '')));
  for (const f of Object.keys(createRequire(import.meta.url).cache)) if (path.isAbsolute(f)) all.add(f);
  const inputs = new Map<string, string | null>();
  for (const p of all) {
    const input = inputOf(p);
    if (input === undefined || inputs.has(input)) continue;
    // a file changed after the run began may have been read before the change: its state now is not what the run saw
    if ((fs.statSync(input, { throwIfNoEntry: false })?.mtimeMs ?? 0) >= startedAt) return { volatile: `a file that changed while it ran (${input})` };
    inputs.set(input, fileState(input));
  }
  return {
    inputs: [...inputs].sort(([a], [b]) => (a < b ? -1 : 1)),
    env: [...envRead].sort().map((k) => [k, process.env[k] ?? null]),
  };
}
