// `node dist/bench/compile-phases.js MODEL OUT`: the phases of one `kiln compile MODEL --target llvm -o OUT`, run
// in-process in a fresh Node process (no kiln module loaded before), printed as JSON milliseconds. Used by bench/llvm.ts.
import path from 'node:path';

const t: Record<string, number> = { processStartToMain: performance.now() };
const [model, out] = [process.argv[2], process.argv[3]];
if (!model || !out) throw new Error('usage: compile-phases MODEL OUT');
let a = performance.now();
const compiler = await import('../compiler.js');
const loader = await import('../cli/loader.js');
t['importCompiler'] = performance.now() - a;
a = performance.now();
const diags = loader.typeCheck(path.resolve(model));
t['typeCheck'] = performance.now() - a;
if (diags.length) throw new Error(diags.join('\n'));
a = performance.now();
const mod = await loader.importModelFile(path.resolve(model));
t['importModelFile'] = performance.now() - a;
a = performance.now();
await compiler.compile(mod['default'] as Parameters<typeof compiler.compile>[0], { target: 'llvm', batchSize: 1, outDir: out, train: false, embedWeights: false });
t['compile'] = performance.now() - a;
process.stdout.write(JSON.stringify(t));
