// kiln's persistent caches: where they live, kiln's build fingerprint, and the compile cache of whole artifacts.
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from './root.js';

/** The cache folder: KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln. */
export function cacheDir(): string {
  const own = process.env['KILN_CACHE_DIR'];
  if (own) return path.resolve(own);
  const xdg = process.env['XDG_CACHE_HOME'];
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'kiln');
}

let fingerprint: string | undefined;

/**
 * kiln's version for cache keys: package.json's version and the size and time of every file of the build (dist/)
 * and the runtime sources, so that a rebuilt kiln (same version number, other code) never reads an older kiln's entries.
 */
export function kilnFingerprint(root = packageRoot): string {
  if (root === packageRoot && fingerprint !== undefined) return fingerprint;
  const hash = createHash('sha256').update(readFileSync(path.join(root, 'package.json')));
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(dir, name), s = statSync(p);
      if (s.isDirectory()) walk(p);
      else hash.update(`${path.relative(root, p)}\0${s.size}\0${s.mtimeMs}\n`);
    }
  };
  walk(path.join(root, 'dist'));
  walk(path.join(root, 'runtime'));
  const id = hash.digest('hex').slice(0, 16);
  if (root === packageRoot) fingerprint = id;
  return id;
}

/** sha256 of strings and bytes, each length-prefixed so that different parts never hash alike. */
export function hashOf(parts: readonly (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${typeof p === 'string' ? Buffer.byteLength(p) : p.byteLength}:`).update(p);
  return h.digest('hex');
}

/** Writes a file atomically: a temporary file beside it, renamed over it (readers see the old or the new file, whole). */
export function writeAtomically(file: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** What a compile-cache entry holds beside its files: the files the compile listed, in order, and every file's hash. */
interface ArtifactEntry {
  files: string[];
  hashes: Record<string, string>;
}

const artifactsDir = () => path.join(cacheDir(), 'artifacts');

/** Whether the compile cache has an entry for `key` (restoreArtifact still checks it whole). */
export function hasArtifact(key: string): boolean {
  return existsSync(path.join(artifactsDir(), key, 'entry.json'));
}

/**
 * Copies a cached artifact into `dir` (empty) and returns the files the compile listed (paths in `dir`, in its
 * order), or undefined on a miss. An entry whose files do not match their hashes is removed: it is a miss.
 */
export function restoreArtifact(key: string, dir: string): string[] | undefined {
  const entryDir = path.join(artifactsDir(), key);
  let entry: ArtifactEntry;
  try {
    entry = JSON.parse(readFileSync(path.join(entryDir, 'entry.json'), 'utf8')) as ArtifactEntry;
  } catch {
    return undefined;
  }
  try {
    const all = allFiles(path.join(entryDir, 'files'));
    if (!entry.files.every((rel) => Object.hasOwn(entry.hashes, rel)) || all.join('\n') !== Object.keys(entry.hashes).sort().join('\n')) throw new Error('files');
    for (const rel of all) {
      if (createHash('sha256').update(readFileSync(path.join(entryDir, 'files', rel))).digest('hex') !== entry.hashes[rel]) throw new Error(`${rel} changed`);
    }
  } catch {
    rmSync(entryDir, { recursive: true, force: true }); // corrupted: rebuilt by this compile
    return undefined;
  }
  for (const rel of Object.keys(entry.hashes)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    copyFileSync(path.join(entryDir, 'files', rel), path.join(dir, rel)); // keeps the mode: executables stay executable
  }
  return entry.files.map((rel) => path.join(dir, rel));
}

/**
 * Stores a built artifact under `key`: every file under `dir`, and `files` (what the compile listed, in order).
 * Written to a temporary folder and renamed into place, so that concurrent compiles never see half an entry.
 * A failure to store is not the compile's failure.
 */
export function storeArtifact(key: string, dir: string, files: readonly string[]): void {
  const root = artifactsDir(), final = path.join(root, key);
  if (existsSync(final)) return;
  const listed = files.map((f) => path.relative(dir, f));
  if (listed.some((rel) => rel.startsWith('..') || path.isAbsolute(rel))) return; // not inside the artifact: not cacheable
  const tmp = path.join(root, `.${key}.${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const entry: ArtifactEntry = { files: listed, hashes: {} };
    for (const rel of allFiles(dir)) {
      mkdirSync(path.dirname(path.join(tmp, 'files', rel)), { recursive: true });
      copyFileSync(path.join(dir, rel), path.join(tmp, 'files', rel));
      entry.hashes[rel] = createHash('sha256').update(readFileSync(path.join(dir, rel))).digest('hex');
    }
    writeFileSync(path.join(tmp, 'entry.json'), JSON.stringify(entry));
    renameSync(tmp, final);
  } catch {
    // another compile stored it first, or the cache is not writable
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The files under `dir`, as paths relative to it, sorted. */
function allFiles(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((d) => (d.isDirectory() ? allFiles(dir, path.join(rel, d.name)) : [path.join(rel, d.name)]));
}

/** `kiln cache info`: the folder, and the entries and bytes of each part. */
export function cacheInfo(objectDir: string): string {
  const dir = cacheDir();
  const lines = [`cache: ${dir}`];
  const parts: [string, string, (name: string) => boolean][] = [
    ['compiled artifacts', artifactsDir(), (n) => !n.startsWith('.')],
    ['type checks', path.join(dir, 'check'), (n) => n.endsWith('.json')],
    ['runtime objects', objectDir, (n) => n.endsWith('.o')],
    ['direct-mode entries', path.join(dir, 'direct'), (n) => n.endsWith('.json')],
  ];
  for (const [label, d, counts] of parts) {
    let names: string[] = [];
    try {
      names = readdirSync(d).filter(counts);
    } catch { /* none yet */ }
    lines.push(`${label}: ${names.length} entries, ${formatBytes(names.reduce((s, n) => s + bytesIn(path.join(d, n)), 0))}${d === objectDir && !d.startsWith(dir + path.sep) && d !== dir ? ` (in ${d})` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** `kiln cache clear`: removes every entry; returns what it removed. */
export function clearCache(objectDir: string): string {
  const dir = cacheDir();
  let removed = 0;
  for (const d of [artifactsDir(), path.join(dir, 'check'), path.join(dir, 'direct')]) {
    if (!existsSync(d)) continue;
    removed += bytesIn(d);
    rmSync(d, { recursive: true, force: true });
  }
  try {
    for (const n of readdirSync(objectDir).filter((n) => n.endsWith('.o'))) {
      removed += bytesIn(path.join(objectDir, n));
      rmSync(path.join(objectDir, n), { force: true });
    }
  } catch { /* none yet */ }
  return `cleared ${dir} (${formatBytes(removed)})\n`;
}

function bytesIn(p: string): number {
  const s = statSync(p, { throwIfNoEntry: false });
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  return readdirSync(p).reduce((sum, n) => sum + bytesIn(path.join(p, n)), 0);
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}
