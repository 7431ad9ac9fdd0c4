// `npm run build && node dist/bench/compile.js [--runs N]`: whole `kiln compile` commands (issue 20), cold, with a
// cached type check and on a compile-cache hit, each phase from --timings; the type check by TypeScript 7's native
// compiler against ts-morph's; JAX's first jit on the same MLP. Prints markdown for bench/results-compile.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = path.join(root, 'dist', 'cli', 'main.js');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const PYTHON = process.env['KILN_BENCH_PYTHON'] ?? '/work/venv-keras/bin/python';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-compile-'));
const PHASES = ['load', 'check', 'run', 'trace', 'passes', 'render', 'external tools', 'write', 'direct'];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

interface Timed {
  ms: number;
  /** CPU milliseconds (user + system) of the command and every process it waited for (tsc, the compile process, gcc). */
  cpuMs: number;
  phases: Record<string, number>;
}

/** One whole `kiln compile` with --timings under a cache home; its wall and CPU milliseconds and phases. */
function kiln(model: string, target: string, xdg: string, env: Record<string, string> = {}): Timed {
  const out = path.join(tmp, 'out');
  const start = performance.now();
  // /usr/bin/time: the CPU time of the command's whole process tree, which the load of other jobs changes far less than its wall time
  const r = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', process.execPath, cli, 'compile', model, '--target', target, '-o', out, '--timings'], {
    cwd: root, encoding: 'utf8', env: { ...process.env, KILN_CACHE_DIR: '', XDG_CACHE_HOME: xdg, ...env },
  });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`kiln compile ${model} --target ${target} failed: ${r.stderr}`);
  const phases: Record<string, number> = {};
  for (const m of r.stderr.matchAll(/^([a-z ]+?) +(\d+) ms/gm)) phases[m[1]!] = Number(m[2]);
  const cpu = /^cpu ([\d.]+) ([\d.]+)$/m.exec(r.stderr);
  return { ms, cpuMs: cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : NaN, phases };
}

const rows: string[] = [];
function cell(label: string, target: string, runs: Timed[], before: string): void {
  const phase = (p: string) => (runs.some((r) => p in r.phases) ? median(runs.map((r) => r.phases[p] ?? 0)).toFixed(0) : '');
  rows.push(`| ${label} | ${target} | **${median(runs.map((r) => r.ms)).toFixed(0)}** | ${runs.map((r) => r.ms.toFixed(0)).join(', ')} | ${median(runs.map((r) => r.cpuMs)).toFixed(0)} | ${before} / ${load()} | ${PHASES.map(phase).join(' | ')} |`);
  console.error(rows.at(-1));
}

const seed = (name: string) => path.join(root, 'examples', 'seed', `${name}.ts`);
// cold: a fresh cache home, KILN_CACHE_DIR in it (an empty compile cache, type-check cache and object cache: the
// runtime's objects come prebuilt with kiln, `npm run build`'s cli/prebuild.ts)
const cold = (model: string, target: string, env: Record<string, string> = {}) => {
  const home = mkdtempSync(path.join(tmp, 'xdg-'));
  return kiln(model, target, home, { KILN_CACHE_DIR: path.join(home, 'kiln'), ...env });
};

for (const target of ['llvm', 'wasm']) {
  let before = load();
  cell('seed MLP, cold (empty kiln cache)', target, Array.from({ length: RUNS }, () => cold(seed('sequential'), target)), before);
  const xdg = mkdtempSync(path.join(tmp, 'xdg-'));
  kiln(seed('sequential'), target, xdg);
  before = load();
  cell('seed MLP, type check cached, compile cache empty', target, Array.from({ length: RUNS }, () => {
    rmSync(path.join(xdg, 'kiln', 'artifacts'), { recursive: true, force: true });
    return kiln(seed('sequential'), target, xdg);
  }), before);
  before = load();
  // the direct mode off (KILN_DIRECT=0): the model file runs and its traced graph finds the artifact
  cell('seed MLP, compile-cache hit (direct mode off)', target, Array.from({ length: RUNS }, () => kiln(seed('sequential'), target, xdg, { KILN_DIRECT: '0' })), before);
  kiln(seed('sequential'), target, xdg); // stores the direct-mode entry
  before = load();
  cell('seed MLP, direct-mode hit (model file not run)', target, Array.from({ length: RUNS }, () => kiln(seed('sequential'), target, xdg)), before);
}
for (const name of ['cnn', 'transformer']) {
  for (const target of ['llvm', 'wasm']) {
    const before = load();
    cell(`${name}, cold`, target, Array.from({ length: RUNS }, () => cold(seed(name), target)), before);
  }
  // a kiln built without its runtime's objects (no gcc at build time): gcc compiles them beside opt and llc
  const before = load();
  cell(`${name}, cold, runtime objects not prebuilt`, 'llvm', Array.from({ length: RUNS }, () => cold(seed(name), 'llvm', { KILN_PREBUILT_OBJECTS: path.join(tmp, 'none') })), before);
}

/** One fresh process type-checking the seed MLP with an empty cache: the check's wall milliseconds (imports included). */
function check(checker: 'native' | 'ts-morph'): number {
  const script = `const t = performance.now(); const { checkModelFile } = await import(${JSON.stringify(path.join(root, 'dist', 'cli', 'typecheck.js'))});
const r = await checkModelFile(${JSON.stringify(seed('sequential'))}); if (r.diagnostics.length || r.cached) process.exit(1); console.log(performance.now() - t);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8', env: { ...process.env, KILN_CACHE_DIR: mkdtempSync(path.join(tmp, 'check-')), KILN_TYPECHECK: checker === 'ts-morph' ? 'ts-morph' : '' },
  });
  if (r.status !== 0) throw new Error(`check failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}
const checks: string[] = [];
for (const checker of ['native', 'ts-morph'] as const) {
  const before = load(), ms = Array.from({ length: RUNS }, () => check(checker));
  checks.push(`| ${checker === 'native' ? 'TypeScript 7 native `tsc` (a child process)' : "ts-morph's bundled TypeScript (in process, its import included)"} | **${median(ms).toFixed(0)}** | ${ms.map((m) => m.toFixed(0)).join(', ')} | ${before} / ${load()} |`);
}

let jax = '';
const jaxRuns: { importJax: number; firstJit: number; wall: number; jax: string }[] = [];
const before = load();
for (let i = 0; i < RUNS; i++) {
  const start = performance.now();
  const r = spawnSync(PYTHON, [path.join(root, 'bench', 'compile_jax.py')], { encoding: 'utf8' });
  if (r.status !== 0) {
    jax = `JAX did not run (${PYTHON}): ${r.stderr.trim().split('\n').at(-1)}`;
    break;
  }
  jaxRuns.push({ ...(JSON.parse(r.stdout) as { importJax: number; firstJit: number; jax: string }), wall: performance.now() - start });
}
if (jaxRuns.length) {
  const ms = (k: 'importJax' | 'firstJit') => jaxRuns.map((r) => r[k] * 1000);
  jax = [`| JAX ${jaxRuns[0]!.jax}, same MLP, batch 1 | median (ms) | runs (ms) | load before / after |`, '|---|---:|---|---|',
    `| first \`jax.jit(predict)(params, x)\` (trace, XLA compile, run) | **${median(ms('firstJit')).toFixed(0)}** | ${ms('firstJit').map((m) => m.toFixed(0)).join(', ')} | ${before} / ${load()} |`,
    `| \`import jax\` | ${median(ms('importJax')).toFixed(0)} | ${ms('importJax').map((m) => m.toFixed(0)).join(', ')} | |`,
    `| whole Python process | ${median(jaxRuns.map((r) => r.wall)).toFixed(0)} | ${jaxRuns.map((r) => r.wall.toFixed(0)).join(', ')} | |`].join('\n');
}

const cpu = readFileSync('/proc/cpuinfo', 'utf8');
const field = (k: string) => new RegExp(`^${k}\\s*: (.*)$`, 'm').exec(cpu)?.[1] ?? '?';
console.log([
  `- date: ${new Date().toISOString()}; node ${process.version}; ${field('model name')} (cpu family ${field('cpu family')}, model ${field('model')}), nproc ${os.cpus().length}`,
  `- ${RUNS} runs per cell; wall milliseconds of the whole command (\`node dist/cli/main.js compile MODEL --target T -o DIR --timings\`), and its CPU milliseconds (user + system, every process of the command, from \`/usr/bin/time\`); phases (wall) are the medians of --timings`,
  '',
  `| case | target | wall, median (ms) | wall, runs (ms) | CPU, median (ms) | load average before / after | ${PHASES.join(' | ')} |`,
  `|---|---|---:|---|---:|---|${PHASES.map(() => '---:').join('|')}|`,
  ...rows,
  '',
  '| type check of the seed MLP, empty cache | median (ms) | runs (ms) | load average before / after |',
  '|---|---:|---|---|',
  ...checks,
  '',
  jax,
].join('\n'));
rmSync(tmp, { recursive: true, force: true });
