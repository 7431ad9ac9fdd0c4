// Type-checking model files, once per content: TypeScript 7's native compiler where installed (ts-morph's bundled
// TypeScript otherwise), its diagnostics cached by the hash of the file, its local imports, the options and kiln.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { displayPath, packageRoot } from './common.js';
import { cacheDir, hashOf, kilnFingerprint, writeAtomically } from './cache.js';

/** One type error: where (absolute path, 1-based line and column; none for a global error) and the message, flattened. */
export interface Diagnostic {
  file?: string;
  line?: number;
  col?: number;
  text: string;
}

/** `model.ts:3:52 message` (the path relative to the working directory), or `kiln: message` for a global error. */
export function formatDiagnostic(d: Diagnostic): string {
  return d.file === undefined ? `kiln: ${d.text}` : `${displayPath(d.file)}:${d.line}:${d.col} ${d.text}`;
}

/**
 * The compiler options of every check. Module resolution as a bundler's: tsx runs model files as ES modules and
 * resolves relative imports with or without extensions, as `bundler` does; `kiln` maps to the built declarations by
 * `paths`, so files outside this repository resolve too.
 */
export function checkOptions(): Record<string, unknown> {
  const dist = path.join(packageRoot, 'dist');
  return {
    module: 'esnext', moduleResolution: 'bundler', target: 'es2022', lib: ['es2022'], strict: true, skipLibCheck: true,
    noEmit: true, types: ['node'], typeRoots: [typesDir()],
    paths: { kiln: [path.join(dist, 'frontend', 'index.d.ts')], 'kiln/compiler': [path.join(dist, 'compiler.d.ts')] },
  };
}

/** The @types folder holding @types/node (a dependency of kiln): kiln's own, or the installing project's where npm hoisted it. */
export function typesDir(): string {
  try {
    return path.dirname(path.dirname(createRequire(path.join(packageRoot, 'package.json')).resolve('@types/node/package.json')));
  } catch {
    return path.join(packageRoot, 'node_modules', '@types');
  }
}

/**
 * TypeScript 7's native `tsc` (KILN_TSC, else the `typescript` package's platform binary) and its version, or
 * undefined where absent.
 */
export function nativeTsc(): { exe: string; version: string } | undefined {
  if (process.env['KILN_TYPECHECK'] === 'ts-morph') return undefined;
  // KILN_TSC: another TypeScript 7 tsc (e.g. a global one); its size and time stand for its version
  const own = process.env['KILN_TSC'];
  if (own) {
    const s = statSync(own, { throwIfNoEntry: false });
    return s?.isFile() ? { exe: path.resolve(own), version: `${path.resolve(own)} ${s.size} ${s.mtimeMs}` } : undefined;
  }
  try {
    const req = createRequire(path.join(packageRoot, 'package.json'));
    // the platform binary is an optional dependency of `typescript` (a dependency of kiln): hoisted beside it, or in it
    const platform = `@typescript/typescript-${process.platform}-${process.arch}/package.json`;
    let pkg: string;
    try {
      pkg = req.resolve(platform);
    } catch {
      pkg = createRequire(req.resolve('typescript/package.json')).resolve(platform);
    }
    const exe = path.join(path.dirname(pkg), 'lib', process.platform === 'win32' ? 'tsc.exe' : 'tsc');
    const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string };
    return existsSync(exe) ? { exe, version } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The model file (absolute path) and the local files it imports, transitively: relative specifiers of `import`,
 * `export ... from` and `import()`, resolved as tsx does (`.js` to `.ts`, no extension, a folder's index).
 * A specifier that matches no file is left out: the type check reports it.
 */
export function localFiles(file: string): string[] {
  const seen = new Set<string>(), todo = [file];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*)\1/g)) {
      const found = resolveLocal(path.resolve(path.dirname(f), m[2]!));
      if (found) todo.push(found);
    }
  }
  return [...seen].sort();
}

function resolveLocal(p: string): string | undefined {
  const stem = p.replace(/\.(m?js|cjs)$/, '');
  return [p, `${stem}.ts`, `${stem}.mts`, `${stem}.d.ts`, path.join(p, 'index.ts')].find((c) => statSync(c, { throwIfNoEntry: false })?.isFile());
}

/** The cache key of a check: the checker, its options, kiln's build and every local file's path and content. */
function checkKey(file: string, checker: string): string {
  const parts: (string | Uint8Array)[] = [checker, JSON.stringify(checkOptions()), kilnFingerprint(), file];
  for (const f of localFiles(file)) parts.push(f, readFileSync(f));
  return hashOf(parts);
}

/** A cached check's diagnostics, or undefined when absent or damaged (its own hash does not match). */
function readCached(entry: string): Diagnostic[] | undefined {
  try {
    const { diagnostics, hash } = JSON.parse(readFileSync(entry, 'utf8')) as { diagnostics: Diagnostic[]; hash: string };
    if (!Array.isArray(diagnostics) || hashOf([JSON.stringify(diagnostics)]) !== hash) return undefined;
    return diagnostics;
  } catch {
    return undefined;
  }
}

/**
 * Type-checks a model file (absolute path): its errors, from the cache when this content was checked before.
 * `cached` says whether they came from the cache.
 */
export async function checkModelFile(file: string, signal?: AbortSignal): Promise<{ diagnostics: Diagnostic[]; cached: boolean }> {
  const tsc = nativeTsc();
  const checker = tsc ? `tsc ${tsc.version}` : `ts-morph ${tsMorphVersion()}`;
  const entry = path.join(cacheDir(), 'check', `${checkKey(file, checker)}.json`);
  const hit = readCached(entry);
  if (hit) return { diagnostics: hit, cached: true };
  const diagnostics = tsc ? await runNative(tsc.exe, file, signal) : (await import('./loader.js')).typeCheck(file, checkOptions());
  try {
    writeAtomically(entry, JSON.stringify({ diagnostics, hash: hashOf([JSON.stringify(diagnostics)]) }));
  } catch { /* an unwritable cache only costs the next check */ }
  return { diagnostics, cached: false };
}

function tsMorphVersion(): string {
  try {
    const req = createRequire(path.join(packageRoot, 'package.json'));
    return (JSON.parse(readFileSync(req.resolve('ts-morph/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs native tsc on a temporary tsconfig naming the file; parses its `--pretty false` output. `signal` kills it. */
function runNative(exe: string, file: string, signal?: AbortSignal): Promise<Diagnostic[]> {
  const config = path.join(os.tmpdir(), `kiln-tsconfig-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(config, JSON.stringify({ compilerOptions: checkOptions(), files: [file] }));
  return new Promise((resolve, reject) => {
    // cwd /: tsc prints paths relative to it, which makes them absolute again with no guessing
    execFile(exe, ['-p', config, '--pretty', 'false'], { cwd: '/', maxBuffer: 64 << 20, killSignal: 'SIGKILL', ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      rmSync(config, { force: true });
      const out = String(stdout);
      // exit code 1 or 2: diagnostics were reported; anything else (or no diagnostics with an error) is tsc failing
      const code = err ? (err as { code?: unknown }).code : 0;
      const diagnostics = parseTscOutput(out);
      if (code !== 0 && !diagnostics.length) return reject(new Error(`tsc failed: ${(String(stderr) || out || (err as Error).message).trim().split('\n')[0]}`));
      resolve(diagnostics);
    });
  });
}

/**
 * `path(line,col): error TS1234: text` lines, each followed by its indented chain of messages, as one Diagnostic;
 * the chain is flattened as ts-morph's `flattenDiagnosticMessageText(text, ' ')` does (newlines become spaces).
 */
export function parseTscOutput(out: string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  let last: Diagnostic | undefined;
  for (const line of out.split(/\r?\n/)) {
    const located = /^(.+)\((\d+),(\d+)\): error TS\d+: (.*)$/.exec(line);
    const global = located ? null : /^error TS\d+: (.*)$/.exec(line);
    if (located) {
      last = { file: path.resolve('/', located[1]!), line: Number(located[2]), col: Number(located[3]), text: located[4]! };
      diagnostics.push(last);
    } else if (global) {
      last = { text: global[1]! };
      diagnostics.push(last);
    } else if (last && /^\s+\S/.test(line)) {
      last.text += ` ${line}`;
    } else {
      last = undefined; // a warning or message of another category: not an error
    }
  }
  return diagnostics;
}

