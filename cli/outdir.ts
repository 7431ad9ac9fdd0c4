// Atomic output directories: a compile builds in a fresh directory next to its target and swaps it in whole.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, rmdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Calls `build` with a new empty directory beside `outDir` (same filesystem) and renames it to `outDir` when
 * `build` returns, replacing any earlier contents whole. If `build` throws, `outDir` stays as it was and nothing new
 * is left behind (folders made for it included). Two builds into one directory never mix: the last rename wins and
 * each is complete. Returns `build`'s file paths moved under `outDir`.
 */
export function buildDirAtomically(outDir: string, build: (dir: string) => string[]): string[] {
  const target = existsSync(outDir) ? realpathSync(outDir) : path.resolve(outDir);
  checkReplaceable(outDir, target);
  const parent = path.dirname(target), base = path.basename(target);
  const made = makeDirs(outDir, parent);
  const tmp = path.join(parent, `.${base}.kiln-${process.pid}-${randomBytes(6).toString('hex')}`);
  let built = false;
  try {
    removeStale(parent, base);
    // mkdir, not mkdtemp: the folder becomes the output and should get the usual permissions, not 0700
    fsCall(outDir, () => mkdirSync(tmp));
    const files = build(tmp);
    swap(outDir, tmp, target);
    built = true;
    return files.map((f) => path.join(outDir, path.relative(tmp, f)));
  } finally {
    if (!built) {
      rmSync(tmp, { recursive: true, force: true });
      removeDirs(made);
    }
  }
}

/** Refuses targets whose replacement would lose something that is not kiln's: a file, the working directory, other files. */
function checkReplaceable(outDir: string, target: string): void {
  let stat;
  try {
    stat = lstatSync(target);
  } catch {
    return; // nothing there yet
  }
  if (!stat.isDirectory()) throw new Error(`cannot write ${outDir}: it exists and is not a directory`);
  const rel = path.relative(target, process.cwd());
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) throw new Error(`will not replace ${outDir}: it holds the working directory`);
  const entries = fsCall(outDir, () => readdirSync(target));
  if (entries.length && !entries.includes('manifest.json') && !entries.includes('model.o')) {
    throw new Error(`will not replace ${outDir}: it is not empty and holds no kiln output (manifest.json or model.o); choose another -o or empty it`);
  }
}

/** `mkdir -p` of `dir` that returns the folders it made, outermost first (Node's recursive mkdir spins forever under /proc). */
function makeDirs(outDir: string, dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = path.dirname(d)) missing.unshift(d);
  const made: string[] = [];
  try {
    for (const d of missing) {
      fsCall(outDir, () => mkdirSync(d));
      made.push(d);
    }
  } catch (err) {
    removeDirs(made);
    throw err;
  }
  return made;
}

/** Removes folders made by makeDirs, innermost first, where still empty (a concurrent compile may be using them). */
function removeDirs(made: readonly string[]): void {
  for (const d of [...made].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}

/** Renames `tmp` onto `target`, moving a directory already there aside first (another compile may put one back). */
function swap(outDir: string, tmp: string, target: string): void {
  const old = `${tmp}-old`;
  for (let tries = 0; ; tries++) {
    try {
      renameSync(tmp, target);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || tries === 20) fsError(outDir, err);
    }
    rmSync(old, { recursive: true, force: true });
    try {
      renameSync(target, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fsError(outDir, err);
    }
  }
  rmSync(old, { recursive: true, force: true });
}

/** Removes the build folders of compiles into the same target whose process has gone (killed mid-build). */
function removeStale(parent: string, base: string): void {
  const prefix = `.${base}.kiln-`;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (pid && !alive(pid)) rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsCall<T>(outDir: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    return fsError(outDir, err);
  }
}

/** `cannot write build/x: permission denied` from Node's `EACCES: permission denied, mkdir '/abs/...'`. */
function fsError(outDir: string, err: unknown): never {
  const e = err as NodeJS.ErrnoException;
  if (!e.code || !e.syscall) throw err;
  const reason = e.message.replace(/^\w+: /, '').replace(/, \w+ '.*$/, '');
  throw new Error(`cannot write ${outDir}: ${reason}`, { cause: err });
}

/** Where `kiln compile MODEL` writes without -o: build/<model file name without its extension>. */
export function defaultOutDir(model: string): string {
  return path.join('build', path.basename(model).replace(/\.(m?ts|keras|onnx)$/i, ''));
}
