// A `kiln compile --target llvm` stopped while opt and llc run (cli/command.ts runChild, codegen/native.ts
// startConcurrently): the compile process's whole process group goes with it, so no tool of it goes on running
// (they ran in a shell's background, re-parented to init), and no half-built output is left. The same for the compile
// API (kiln/compiler) in a process of the caller's: when that process ends, however, the tools end with it.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = path.join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-abort-tools-'));
const started: number[] = [];
afterAll(() => {
  for (const pid of started) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  rmSync(tmp, { recursive: true, force: true });
});

// an opt-14 that records its pid and never finishes: the compile is certainly stopped while its tools run
const bin = path.join(tmp, 'bin');
mkdirSync(bin);
writeFileSync(path.join(bin, 'opt-14'), '#!/bin/sh\necho $$ >> "$KILN_TEST_TOOLS"\nexec sleep 600\n');
chmodSync(path.join(bin, 'opt-14'), 0o755);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Whether process `pid` runs (a zombie has ended). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
const ppid = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);

/**
 * Starts `kiln compile model.ts --target llvm` in a new folder (api: a script calling the compile API instead);
 * resolves with it and the fake opt's pid once that runs.
 */
async function compileUntilOpt(api = false): Promise<{ dir: string; kiln: ChildProcess; opt: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> }> {
  const dir = mkdtempSync(path.join(tmp, 'p-')), pids = path.join(dir, 'tools.pids');
  writeFileSync(path.join(dir, 'model.ts'), `import * as keras from 'kiln';
const inputs = keras.Input({ shape: [3] });
export default keras.Model({ inputs, outputs: keras.layers.Dense(4)(inputs) });
`);
  const dist = (f: string) => JSON.stringify(path.join(root, 'dist', f));
  writeFileSync(path.join(dir, 'api.mjs'), `import * as keras from ${dist('frontend/index.js')};
import { compile } from ${dist('compiler.js')};
const inputs = keras.Input({ shape: [3] });
await compile(keras.Model({ inputs, outputs: keras.layers.Dense(4)(inputs) }), { target: 'llvm', outDir: 'out' });
`);
  const kiln = spawn(process.execPath, api ? ['api.mjs'] : [cli, 'compile', 'model.ts', '--target', 'llvm', '-o', 'out', '--no-check'], {
    cwd: dir, stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, KILN_CACHE_DIR: path.join(dir, 'cache'), KILN_TEST_TOOLS: pids },
  });
  let stderr = '';
  kiln.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => kiln.on('close', (code, signal) => resolve({ code, signal, stderr })));
  let ended = false;
  void exited.then(() => { ended = true; });
  while (!existsSync(pids) || !readFileSync(pids, 'utf8').trim()) {
    if (ended) throw new Error(`kiln ended before opt ran: ${(await exited).stderr}`);
    await sleep(20);
  }
  const opt = Number(readFileSync(pids, 'utf8').trim().split('\n')[0]);
  started.push(opt);
  return { dir, kiln, opt, exited };
}

/** After kiln has ended: opt ends (a bounded wait: unstopped it sleeps 600 s), and no output or staging folder is left. */
async function expectNothingLeft(dir: string, opt: number): Promise<void> {
  for (let i = 0; i < 250 && running(opt); i++) await sleep(20);
  expect(running(opt), 'opt-14 of the stopped compile still runs').toBe(false);
  expect(readdirSync(dir).filter((f) => f !== 'cache' && f !== 'api.mjs').sort()).toEqual(['model.ts', 'tools.pids']);
}

describe('a compile stopped while its tools run', () => {
  it('Ctrl-C (SIGINT to kiln): kiln ends by it, the tools with it', { timeout: 120_000 }, async () => {
    const { dir, kiln, opt, exited } = await compileUntilOpt();
    kiln.kill('SIGINT');
    expect((await exited).signal).toBe('SIGINT');
    await expectNothingLeft(dir, opt);
  });

  it('the compile process killed: one line, the tools end with it', { timeout: 120_000 }, async () => {
    const { dir, kiln, opt, exited } = await compileUntilOpt();
    let compiler = opt;
    while (ppid(compiler) !== kiln.pid) compiler = ppid(compiler);
    process.kill(compiler, 'SIGKILL');
    const end = await exited;
    expect(end.code).toBe(1);
    expect(end.stderr.trim()).toBe('kiln: internal error: the compile process was killed by SIGKILL');
    await expectNothingLeft(dir, opt);
  });

  // the compile API's caller stopped: nothing kills a process group for it (its tools were left running, SIGKILL or
  // not, as SIGINT does not reach a shell's background); its output folder is its own to clean (buildDirAtomically's
  // staging folder stays when a process is killed)
  it.each(['SIGKILL', 'SIGTERM'] as const)('the compile API\'s process ended by %s: the tools end with it', { timeout: 120_000 }, async (signal) => {
    const { kiln, opt, exited } = await compileUntilOpt(true);
    kiln.kill(signal);
    expect((await exited).signal).toBe(signal);
    for (let i = 0; i < 250 && running(opt); i++) await sleep(20);
    expect(running(opt), 'opt-14 of the stopped compile still runs').toBe(false);
  });
});
