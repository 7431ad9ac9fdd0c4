// wasm artifacts in headless Chromium: the seed MLP and CNN served over HTTP, model.mjs loaded in the page (the
// instantiateStreaming path), predict equal to the reference interpreter bit for bit (as in Node); and the same
// under cross-origin isolation, with wasm threads where the artifact's loader offers them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distModules, launch, newPage, skipNote } from './harness.js';

interface Served { url: string; close(): Promise<void> }
interface PageResult { y: number[]; streamed: number; fromBytes: number; isolated: boolean; threads: number; relaxedSimd: boolean }

const MODELS = ['sequential', 'cnn'] as const;

/** Runs in the page (as text: vitest rewrites import() in functions): loads the artifact and predicts x. */
const IN_PAGE = `async ({ url, x, options }) => {
  // count how the loader compiled its module: streamed, or from bytes (the fallback; instantiating a compiled
  // WebAssembly.Module is neither)
  const count = { streamed: 0, fromBytes: 0 };
  const W = WebAssembly, wrapped = {};
  for (const f of ['instantiateStreaming', 'compileStreaming', 'instantiate', 'compile']) wrapped[f] = W[f].bind(W);
  for (const f of ['instantiateStreaming', 'compileStreaming']) W[f] = async (...a) => { const r = await wrapped[f](...a); count.streamed++; return r; };
  for (const f of ['instantiate', 'compile']) W[f] = (...a) => { if (!(a[0] instanceof W.Module)) count.fromBytes++; return wrapped[f](...a); };
  const { load } = await import(url);
  const m = await load(options);
  const [y] = m.predict([Float32Array.from(x)]);
  m.close?.();
  return { y: Array.from(y), ...count, isolated: crossOriginIsolated, threads: m.threads, relaxedSimd: m.relaxedSimd };
}`;
// predict compiled at 16 rows (the interpreter's CNN at 256 rows is slow): 19 rows run as a chunk of 16 (predict),
// then 3 rows one at a time (predict_1)
const MAX_BATCH = 16, ROWS = [19];

describe.skipIf(skipNote !== '')(`wasm artifacts in headless Chromium${skipNote}`, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-browser-'));
  let browser: Browser;
  let plain: Served, isolated: Served;
  const want = new Map<string, Float32Array>();
  const inputs = new Map<number, number[]>();

  beforeAll(async () => {
    const m = await distModules();
    writeFileSync(path.join(tmp, 'index.html'), '<!doctype html><title>kiln browser test</title>\n');
    for (const name of MODELS) {
      const model = await m.example(name);
      await m.compile(model, { target: 'wasm', outDir: path.join(tmp, name), maxBatch: MAX_BATCH });
      for (const n of ROWS) {
        const x = Float32Array.from({ length: n * 784 }, (_, i) => (Math.sin(i * 0.37) + 1) / 2);
        inputs.set(n, Array.from(x));
        const ref = m.interpret(m.traceModel(model, n).graph, new Map([[model.inputSpecs[0]!.name, x]]), new Map(model.weights.map((v) => [v.path, v.data])));
        want.set(`${name}/${n}`, [...ref.outputs.values()][0]!.data as Float32Array);
      }
    }
    [plain, isolated] = await Promise.all([m.serveFolder(tmp), m.serveFolder(tmp, { isolate: true })]);
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await Promise.all([plain?.close(), isolated?.close()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Loads name/model.mjs in a fresh page of `server` and predicts x there. */
  async function inPage(server: Served, name: string, x: number[], options: object): Promise<PageResult> {
    const { page, errors } = await newPage(browser);
    try {
      await page.goto(server.url); // the folder's blank index.html: the module is imported from its origin
      return await page.evaluate(`(${IN_PAGE})(${JSON.stringify({ url: `${server.url}${name}/model.mjs`, x, options })})`) as PageResult;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${errors.join('\n')}`);
    } finally {
      await page.close();
    }
  }

  for (const name of MODELS) {
    it(`${name}: model.mjs streams model.wasm in the page; predict equals the interpreter bit for bit`, async () => {
      for (const n of ROWS) {
        // the SIMD128 build: bit for bit (Chromium has relaxed SIMD, which load() would pick by default)
        const r = await inPage(plain, name, inputs.get(n)!, { relaxedSimd: false });
        expect(r.streamed, 'compiled with instantiateStreaming').toBe(1);
        expect(r.fromBytes, 'compiled from bytes').toBe(0);
        expect(r.isolated).toBe(false);
        expect(r.threads).toBe(1);
        expect(Float32Array.from(r.y), `${n} rows`).toEqual(want.get(`${name}/${n}`));
      }
    });

    it(`${name}: under COOP/COEP the page is cross-origin isolated; predict (threaded where offered) equals the interpreter bit for bit`, async () => {
      for (const n of ROWS) {
        const r = await inPage(isolated, name, inputs.get(n)!, { threads: 2, relaxedSimd: false });
        expect(r.isolated).toBe(true);
        expect(r.streamed).toBe(1);
        expect(r.fromBytes).toBe(0);
        // an artifact with a threaded build runs on 2 threads here
        expect(r.threads).toBe(2);
        expect(Float32Array.from(r.y), `${n} rows, ${r.threads} thread(s)`).toEqual(want.get(`${name}/${n}`));
      }
    });

    it(`${name}: load() with no options picks every core and relaxed SIMD in Chromium; predict agrees with the interpreter within fused-rounding error`, async () => {
      for (const n of ROWS) {
        const r = await inPage(isolated, name, inputs.get(n)!, {});
        expect(r.relaxedSimd, 'Chromium runs relaxed SIMD by default').toBe(true);
        expect(r.threads).toBeGreaterThanOrEqual(1);
        const ref = want.get(`${name}/${n}`)!;
        // f32x4.relaxed_madd may round once per multiply-add instead of twice (runtime/wasm/model.d.mts)
        r.y.forEach((v, i) => expect(Math.abs(v - ref[i]!), `${n} rows, element ${i}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(ref[i]!)));
      }
    });
  }
});
