// `node dist/bench/compile-phases.js MODEL OUT`: the phases of one `kiln compile MODEL --target llvm -o OUT`, run
// in-process in a fresh Node process (no kiln module loaded before), printed as JSON milliseconds. Used by bench/llvm.ts.
// The type check is a fresh one (no cache): KILN_CACHE_DIR is set to an empty folder for it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const t: Record<string, number> = { processStartToMain: performance.now() };
const [model, out] = [process.argv[2], process.argv[3]];
if (!model || !out) throw new Error('usage: compile-phases MODEL OUT');
const cache = mkdtempSync(path.join(os.tmpdir(), 'kiln-phases-'));
process.env['KILN_CACHE_DIR'] = cache;
let a = performance.now();
const compiler = await import('../compiler.js');
const runner = await import('../cli/run_model.js');
t['importCompiler'] = performance.now() - a;
a = performance.now();
await compiler.checkModelFile(path.resolve(model));
t['typeCheck'] = performance.now() - a;
a = performance.now();
const mod = await runner.importModelFile(path.resolve(model));
t['importModelFile'] = performance.now() - a;
a = performance.now();
await compiler.compile(mod['default'] as Parameters<typeof compiler.compile>[0], { target: 'llvm', batchSize: 1, outDir: out, train: false, embedWeights: false });
t['compile'] = performance.now() - a;
rmSync(cache, { recursive: true, force: true });
process.stdout.write(JSON.stringify(t));
