// `npm run demo:web`: builds the training page (web/index.html and app.mjs, uPlot, the seed MLP compiled to wasm with
// its training step, the bundled MNIST digits as .npy) into a folder and serves it on 127.0.0.1.
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Tensor } from '../frontend/index.js';
import { serveFolder } from './serve.js';

/** The repository root, from dist/web/demo.js. */
const root = path.resolve(import.meta.dirname, '../..');
const OPTIONS = 'options: --port N (default 8000; 0 picks a free one), --out DIR (default build/web)';

/** Writes the page into `out`: the model under model/, the digits under data/. */
async function buildPage(out: string): Promise<void> {
  // loaded here, after the options are checked: binaryen takes a while to load
  const [keras, { compile }, { writeNpy }] = await Promise.all([import('../frontend/index.js'), import('../compiler.js'), import('../runtime/npy.js')]);
  mkdirSync(path.join(out, 'data'), { recursive: true });
  // the seed MLP as `npm run demo` trains it; the page calls its compiled trainStep at batch 32
  keras.utils.setRandomSeed(7);
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  await compile(model, { target: 'wasm', train: true, batchSize: 32, outDir: path.join(out, 'model') });
  const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
  const npy = (name: string, t: Tensor, shape: number[]) => writeFileSync(path.join(out, 'data', `${name}.npy`), writeNpy(t.dtype, shape, t.data));
  npy('x_train', xTrain, [xTrain.shape[0]!, 784]);
  npy('y_train', yTrain, yTrain.shape);
  npy('x_test', xTest, [xTest.shape[0]!, 784]);
  npy('y_test', yTest, yTest.shape);
  for (const f of ['index.html', 'app.mjs']) copyFileSync(path.join(root, 'web', f), path.join(out, f));
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot'));
  for (const f of ['uPlot.esm.js', 'uPlot.min.css']) copyFileSync(path.join(uplot, f), path.join(out, f));
}

async function main(args: string[]): Promise<void> {
  let port = 8000, out = path.join(root, 'build/web');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!, v = args[i + 1];
    if (a === '--port' && v !== undefined && /^\d+$/.test(v) && Number(v) < 65536) port = Number(args[++i]);
    else if (a === '--out' && v !== undefined) out = path.resolve(args[++i]!);
    else if (a === '--port') throw new Error(`--port needs a port number (0 to 65535), got ${v === undefined ? 'nothing' : `'${v}'`}`);
    else if (a === '--out') throw new Error('--out needs a folder');
    else throw new Error(`unknown option '${a}'; ${OPTIONS}`);
  }
  mkdirSync(out, { recursive: true });
  // never write over a folder of something else (a page built here before has model/manifest.json)
  if (readdirSync(out, { withFileTypes: true }).length && !existsSync(path.join(out, 'model/manifest.json'))) throw new Error(`${out} is not empty and holds no training page built before: give another --out`);
  // cross-origin isolated, so a browser lets the loader run wasm threads where the artifact has them; started before
  // the build, so a port in use is said at once
  const served = await serveFolder(out, { isolate: true, port });
  await buildPage(out);
  console.log(`kiln training page: ${served.url} (serving ${out}; Ctrl-C stops)`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`demo:web: ${e.message}`);
  process.exit(1);
});
