// What the native targets (llvm, cuda) share: the C runtime, model.h, model_desc.c (the tables the runtime reads).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { type IoSpec, type TargetEntry, entryLayout, fixedRows } from './artifacts.js';
import type { Layout } from './loop/layout.js';
import type { NamedTensor } from '../runtime/safetensors.js';
import type { Compiled } from '../driver/pipeline.js';
import { type Node, nodeName } from '../ir/graph.js';
import { timed } from '../driver/timings.js';
import { packageRoot } from '../cli/root.js';

export interface NativeTargetOptions {
  readonly outDir: string;
  readonly entries: readonly TargetEntry[];
  readonly weights: readonly NamedTensor[];
  /** The model's inputs and outputs for the manifest (the entries' graphs give the traced shapes). */
  readonly inputs?: readonly IoSpec[];
  readonly outputs?: readonly IoSpec[];
  readonly embedWeights?: boolean;
}

export function sh(target: string, cmd: string, args: string[], cwd: string): void {
  try {
    timed('external tools', () => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`${target}: ${cmd} failed: ${(err.stderr?.toString() || err.message).trim().split('\n').slice(0, 8).join('\n')}`);
  }
}

/**
 * Runs groups of commands at once, the commands of a group one after another, and waits for every group (one shell:
 * the targets' builds are synchronous). A failure throws as sh does, for the first command that failed.
 */
export function shConcurrently(target: string, groups: readonly (readonly [string, readonly string[]])[][], cwd: string): void {
  startConcurrently(target, groups, cwd, false)();
}

let startedShells = 0;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Whether the process `pid` has ended: a zombie (nothing reaps it while this thread is busy) or gone. */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/**
 * shConcurrently's groups started in the background: the caller goes on (rendering the next module while opt and llc
 * build the last) and waits for them later. Node cannot wait for a child process synchronously, so the shell writes
 * its statuses to a file last and wait() polls for it; where /proc does not tell whether the shell has ended (not
 * Linux) or background is false, the groups run to the end here, as shConcurrently ran them. Returns wait(), which
 * throws as sh does; a caller that fails meanwhile still waits (the tools write into its output folder).
 * The shell leads a process group of its own, and a watcher in it kills that group when the caller's process ends
 * first, however it ends (SIGKILL included): its stdin is a pipe only the caller writes to, which the kernel closes
 * then. (In the background, where SIGINT is ignored, opt and llc outlived a compile API caller that was stopped;
 * the kiln command kills its compile process's group, and the watcher ends what is in the shells' groups.)
 */
export function startConcurrently(target: string, groups: readonly (readonly [string, readonly string[]])[][], cwd: string, background = true): () => void {
  background &&= existsSync('/proc/self/stat');
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const id = `${process.pid}-${startedShells++}`;
  const stderr = groups.map((_, i) => path.join(cwd, `.kiln-stderr-${id}-${i}`)), statusFile = path.join(cwd, `.kiln-status-${id}`);
  // a group exits with the number of its command that failed (1-based), 0 when all ran; the statuses go to the
  // shell's stdout (run here) or to statusFile, whole once it exists (in the background)
  const script = [
    // the watcher: waits for end of file on the shell's stdin (fd 3: an asynchronous list's stdin is /dev/null)
    ...(background ? ['exec 3<&0', '{ read -r _ || kill -9 0; } <&3 >/dev/null 2>&1 & w=$!', 'exec 3<&-'] : []),
    ...groups.map((cmds, i) => `( ${cmds.map(([cmd, args], j) => `${[cmd, ...args].map(quote).join(' ')} || exit ${j + 1}`).join('; ')} ) >/dev/null 2>${quote(stderr[i]!)} & p${i}=$!`),
    groups.map((_, i) => `wait $p${i}; s${i}=$?`).join('; '),
    // (the watcher goes before the statuses: once they are written, the caller may close the pipe)
    ...(background ? ['kill $w 2>/dev/null'] : []),
    `echo ${groups.map((_, i) => `$s${i}`).join(' ')}${background ? ` > ${quote(`${statusFile}.tmp`)} && mv ${quote(`${statusFile}.tmp`)} ${quote(statusFile)}` : ''}`,
  ].join('\n');
  const cleanup = () => { for (const f of [...stderr, statusFile, `${statusFile}.tmp`]) rmSync(f, { force: true }); };
  const check = (out: string) => {
    const status = out.trim().split(' ').map(Number);
    groups.forEach((cmds, i) => {
      const failed = status[i] ? cmds[status[i]! - 1] : undefined;
      if (failed) throw new Error(`${target}: ${failed[0]} failed: ${(readFileSync(stderr[i]!, 'utf8') || `exit status ${status[i]}`).trim().split('\n').slice(0, 8).join('\n')}`);
    });
  };
  if (!background) {
    try {
      check(timed('external tools', () => execFileSync('/bin/sh', ['-c', script], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })));
    } finally {
      cleanup();
    }
    return () => {};
  }
  const shell = spawn('/bin/sh', ['-c', script], { cwd, stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  shell.on('error', () => {}); // no shell: wait() finds no statuses
  shell.stdin!.on('error', () => {}); // (a shell that ended)
  let done = false;
  return () => {
    if (done) return;
    done = true;
    try {
      // only the time spent waiting counts: the rest ran beside the caller's own phases
      const out = timed('external tools', () => {
        while (!existsSync(statusFile)) {
          if (shell.pid === undefined || ended(shell.pid)) return existsSync(statusFile) ? readFileSync(statusFile, 'utf8') : undefined;
          Atomics.wait(sleeper, 0, 0, 1);
        }
        return readFileSync(statusFile, 'utf8');
      });
      if (out === undefined) throw new Error(`${target}: the shell running ${groups.map((g) => g.map(([cmd]) => cmd).join(', ')).join('; ')} ended before its commands did`);
      check(out);
    } finally {
      shell.stdin!.destroy();
      cleanup();
    }
  };
}

/** The object cache: KILN_CACHE_DIR, else one per user in the temp directory. */
export function objectCacheDir(): string {
  return path.resolve(process.env['KILN_CACHE_DIR'] || path.join(tmpdir(), `kiln-objects-${process.getuid?.() ?? os.userInfo().username}`));
}

/**
 * Objects built with kiln itself (`npm run build`'s postbuild, cli/prebuild.ts: the hosted runtime's objects, the same
 * for every model), per platform and architecture, read only: a compile looks there after its cache, so the first
 * compile on a machine, or one after `kiln cache clear`, needs no gcc for them (0.6-0.8 s of a cold compile).
 * KILN_PREBUILT_OBJECTS names another folder (tests: an empty one).
 */
export function prebuiltObjectDir(): string {
  return path.resolve(process.env['KILN_PREBUILT_OBJECTS'] ?? path.join(packageRoot, 'dist', 'objects', `${process.platform}-${process.arch}`));
}

/**
 * The name of the object of `gcc flags -c src` in the caches: keyed by the flags, the source and the files of its
 * folder it includes (`#include "f"`, transitively: kiln_runtime.c's kiln_core.c and kiln_runtime.h). Only what it
 * includes: the runtime's objects are the same for every model (hashing every header of the folder, the model's own
 * model.h included, made every new model compile them again, 0.8 s of a cold compile's CPU); model_train.c's includes
 * model.h (model_main.c sizes the memory block at run time: one object for every model).
 */
export function objectName(cc: readonly string[], src: string): string {
  const dir = path.dirname(src), seen = new Set<string>();
  const hash = createHash('sha256').update(JSON.stringify(cc));
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(path.join(dir, file))) return; // (kiln_mpi.h is there only for --distributed)
    seen.add(file);
    const text = readFileSync(path.join(dir, file));
    hash.update(`${file}\0${text.length}\0`).update(text);
    for (const m of text.toString('latin1').matchAll(/^[ \t]*#[ \t]*include[ \t]*"([^"]+)"/gm)) visit(m[1]!);
  };
  visit(path.basename(src));
  return `${hash.digest('hex').slice(0, 32)}.o`;
}

/**
 * `gcc flags -c src -o out` for each [src, out] (the sources in one folder) through a cache of objects (the runtime's
 * objects are the same for every model: compiling them was a quarter of `kiln compile`), started in the background:
 * the objects neither the cache nor the prebuilt folder has compile at once, into the cache (`into`), beside the
 * caller's render, opt and llc (startConcurrently); the returned wait() throws as sh does, and copies every object to
 * its out.
 */
export function startCompileCached(target: string, cc: readonly string[], jobs: readonly (readonly [src: string, out: string])[], into = objectCacheDir()): () => void {
  const names = jobs.map(([src]) => objectName(cc, src));
  const hits = names.map((n) => [path.join(into, n), path.join(prebuiltObjectDir(), n)].find((f) => existsSync(f)) ?? path.join(into, n));
  const missing = jobs.flatMap(([src], i) => (existsSync(hits[i]!) ? [] : [{ src, hit: hits[i]! }]));
  let wait = () => {};
  if (missing.length) {
    mkdirSync(into, { recursive: true });
    // gcc runs in the sources' folder, each by its name there (a path relative to our cwd, as `-o build/model` gives,
    // is not); it writes a temporary that mv renames into place: concurrent compiles never see half an object
    wait = startConcurrently(target, missing.map(({ src, hit }) => {
      const tmp = `${hit}.${process.pid}.tmp`;
      return [['gcc', [...cc, '-c', path.basename(src), '-o', tmp]], ['mv', ['-f', tmp, hit]]];
    }), path.dirname(missing[0]!.src));
  }
  return () => {
    wait();
    jobs.forEach(([, out], i) => copyFileSync(hits[i]!, out));
  };
}

const DTYPE: Record<string, string> = { float32: 'KILN_F32', int32: 'KILN_I32', bool: 'KILN_BOOL', int8: 'KILN_I8' };

/**
 * s as a C string literal of its UTF-8 bytes: printable ASCII as is but for `"`, `\` and `?`, every other byte as a
 * three-digit octal escape (JSON escaping left `??-` and `??/`, trigraphs that gcc -std=c99 turns into `~` and `\`;
 * a three-digit escape cannot run into the next character as a hex escape can).
 */
export function cString(s: string): string {
  if (s.includes('\0')) throw new Error(`the name ${JSON.stringify(s)} contains a NUL character, which a C string cannot hold`);
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c && byte !== 0x3f ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `${out}"`;
}

function cBytes(data: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < data.length; i += 32) parts.push(Array.from(data.subarray(i, i + 32)).join(','));
  return parts.join(',\n');
}

/**
 * model_desc.c: the tables the runtime reads (entries, tensors, copies, constant segments). hostCopies false: the
 * entries apply their update copies themselves (cuda: on the device, where the params stay).
 */
export function descSource(o: NativeTargetOptions, compiled: readonly { e: TargetEntry; c: Compiled }[], layout: Layout, flash?: FlashArray, hostCopies = true): string {
  const lines = ['/* Generated by kiln: where every tensor of the model lives in its memory block. */', '#include "model.h"', ''];
  const tensor = (name: string, dtype: string, shape: readonly number[], offset: number, size: number) =>
    `{${cString(name)}, ${DTYPE[dtype]}, ${shape.length}, {${shape.length ? shape.join(', ') : '0'}}, ${offset}L, ${size}L}`;
  const array = (decl: string, items: string[]) => (items.length ? `static const ${decl}[] = {\n  ${items.join(',\n  ')}\n};` : '');
  const entryRows: string[] = [];
  for (const { e, c } of compiled) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(e.name)) throw new Error(`entry name ${JSON.stringify(e.name)} is not a C identifier`);
    const L = entryLayout(c.program, layout.offsets[e.name]!);
    const shapeOf = (nodes: readonly Node[], name: string) =>
      nodes.find((n) => nodeName(n) === name)?.type.shape ?? [];
    const ins = L.inputs.map((t) => tensor(t.name, t.dtype, shapeOf(e.graph.inputs, t.name), t.offset, t.size));
    const outs = L.outputs.map((t) => tensor(t.name, t.dtype, e.graph.outputs.find((x) => x.name === t.name)!.node.type.shape, t.offset, t.size));
    const copies = (hostCopies ? L.copies : []).map((x) => `{${x.from}L, ${x.to}L, ${x.bytes}L}`);
    lines.push(array(`kiln_tensor ${e.name}_inputs`, ins), array(`kiln_tensor ${e.name}_outputs`, outs), array(`kiln_copy ${e.name}_copies`, copies));
    const ref = (items: unknown[], n: string) => (items.length ? n : 'NULL');
    entryRows.push(`{${cString(e.name)}, kiln_${e.name}, ${ins.length}, ${ref(ins, `${e.name}_inputs`)}, ${outs.length}, ${ref(outs, `${e.name}_outputs`)}, ${copies.length}, ${ref(copies, `${e.name}_copies`)}, ${e.batchSize}, ${fixedRows(e) === undefined ? 'NULL' : cString(fixedRows(e)!)}}`);
  }
  // freestanding: the params live in the flash array, read in place, not in memory (no table: nothing loads them)
  const params = flash ? [] : o.weights.map((w) => tensor(w.name, w.dtype, w.shape, layout.params.get(w.name)!, w.data.length));
  lines.push(array('kiln_tensor params', params));
  if (flash) lines.push(`/* params and constants, const: they stay in flash */\nconst unsigned char ${flash.symbol}[${Math.max(1, flash.data.length)}] __attribute__((aligned(64))) = {\n${cBytes(flash.data.length ? flash.data : new Uint8Array(1))}\n};`);
  layout.segments.forEach((s, i) => lines.push(`static const unsigned char segment${i}[] = {\n${cBytes(s.data)}\n};`));
  lines.push(array('kiln_segment segments', layout.segments.map((s, i) => `{${s.offset}L, ${s.data.length}L, segment${i}}`)));
  lines.push(array('kiln_entry entries', entryRows));
  lines.push(`const kiln_model_desc kiln_model = {${layout.memoryBytes}L, ${layout.arenaBytes}L, ${params.length}, ${params.length ? 'params' : 'NULL'}, ${entryRows.length}, entries, ${layout.segments.length}, ${layout.segments.length ? 'segments' : 'NULL'}, ${o.embedWeights || flash ? 1 : 0}};`);
  return `${lines.filter((l) => l !== '').join('\n\n')}\n`;
}

/** The freestanding runtime's const array of params and constants (codegen/llvm/flash.ts). */
export interface FlashArray {
  readonly symbol: string;
  readonly data: Uint8Array;
}

export function headerSource(o: NativeTargetOptions, layout: Layout, extra: readonly string[] = []): string {
  const predict = o.entries.find((e) => e.name === 'predict');
  const rows = !predict ? '' : fixedRows(predict) === undefined ? `
/* predict takes any number of rows: kiln_run_rows(&kiln_model, mem, "predict", n, inputs, outputs) runs them in
   chunks of this many (kiln_runtime.h) */
#define KILN_MAX_BATCH ${predict.batchSize}L
` : `
/* predict takes exactly this many rows (kiln_run_rows says so for any other n): ${fixedRows(predict)!.replace(/\*\//g, '* /')} */
#define KILN_BATCH_SIZE ${predict.batchSize}L
`;
  return `/* Generated by kiln: the C API of this model (see kiln_runtime.h for kiln_init / kiln_run / kiln_run_rows). */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H
#include "kiln_runtime.h"
${rows}
/* one 64-byte aligned block of this size holds everything (no malloc on the inference path) */
#define KILN_MEMORY_BYTES ${layout.memoryBytes}L
/* bytes of it reused for intermediates, planned by liveness */
#define KILN_ARENA_BYTES ${layout.arenaBytes}L

#ifdef __cplusplus
extern "C" {
#endif
extern const kiln_model_desc kiln_model;
${[...o.entries.map((e) => `void kiln_${e.name}(unsigned char *mem);`), ...extra].join('\n')}
#ifdef __cplusplus
}
#endif

#endif
`;
}

