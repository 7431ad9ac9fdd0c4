// The training page of `npm run demo:web` in headless Chromium: it trains the seed MLP past 90% held-out accuracy,
// a screenshot of its plot shows the curves in their colours, and a digit drawn on the pad gets a class.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, root } from '../built.js';
import { launch, newPage, skipNote } from './harness.js';

/** Starts `node dist/web/demo.js` (what `npm run demo:web` runs after building) and resolves with the URL it prints. */
function startDemo(out: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [path.join(root, 'dist/web/demo.js'), '--port', '0', '--out', out], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d;
      const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(stdout)?.[0];
      if (url) resolve({ child, url });
    });
    child.stderr!.on('data', (d: Buffer) => { stderr += d; });
    child.on('exit', (code) => reject(new Error(`demo:web exited with ${code} before serving: ${stderr}`)));
  });
}

/** Pixels of an image (PNG bytes) within a small distance of each colour (#rrggbb), counted by the page's decoder. */
function colourCounts(page: Page, png: Buffer, colours: string[]): Promise<number[]> {
  return page.evaluate(async ({ bytes, colours }) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), ctx = canvas.getContext('2d')!;
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    return colours.map((c) => {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i]! - r!) + Math.abs(px[i + 1]! - g!) + Math.abs(px[i + 2]! - b!) <= 30) n++;
      return n;
    });
  }, { bytes: Array.from(png), colours });
}

describe.skipIf(skipNote !== '')(`the training page (npm run demo:web) in headless Chromium${skipNote}`, () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'kiln-demo-web-'));
  let demo: ChildProcess | undefined, browser: Browser, page: Page, errors: string[];

  beforeAll(async () => {
    ensureBuilt();
    const started = await startDemo(out);
    demo = started.child;
    browser = await launch();
    ({ page, errors } = await newPage(browser));
    await page.setViewportSize({ width: 1100, height: 1000 });
    await page.goto(started.url);
  });
  afterAll(async () => {
    await browser?.close();
    demo?.kill();
    rmSync(out, { recursive: true, force: true });
  });

  it('trains the seed MLP in the page past 90% held-out accuracy, and its plot shows the curves', async () => {
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset['state'] ?? ''), null, { timeout: 90_000 });
    const { state, accuracy, status, shown } = await page.evaluate(() => ({
      state: document.body.dataset['state'], accuracy: Number(document.body.dataset['accuracy']),
      status: document.getElementById('status')!.textContent, shown: document.getElementById('accuracy')!.textContent,
    }));
    expect(state, `${status}\n${errors.join('\n')}`).toBe('done');
    expect(accuracy).toBeGreaterThan(0.9);
    expect(shown).toContain(`${(accuracy * 100).toFixed(2)}%`);
    // the plot's canvas alone (the legend's swatches have the colours too): each series has drawn pixels
    const colours = await page.evaluate('import("./app.mjs").then((m) => m.COLORS)') as { loss: string; batch: string; heldOut: string };
    const counts = await colourCounts(page, await page.locator('#plot canvas').screenshot(), [colours.loss, colours.batch, colours.heldOut]);
    expect(counts[0], 'loss curve pixels').toBeGreaterThan(300);
    expect(counts[1], 'batch accuracy curve pixels').toBeGreaterThan(300);
    expect(counts[2], 'held-out accuracy pixels').toBeGreaterThan(100);
    expect(errors).toEqual([]);
  });

  it('classifies a digit drawn on the pad: a vertical stroke is a 1', async () => {
    await page.waitForFunction(() => document.body.dataset['state'] === 'done', null, { timeout: 90_000 });
    const box = (await page.locator('#pad').boundingBox())!;
    await page.mouse.move(box.x + 140, box.y + 40);
    await page.mouse.down();
    for (let i = 1; i <= 20; i++) await page.mouse.move(box.x + 140 + i * 0.5, box.y + 40 + i * 10);
    await page.mouse.up();
    const { shown, bars } = await page.evaluate(() => ({
      shown: document.getElementById('prediction')!.dataset['class'], bars: document.getElementById('bars')!.children.length,
    }));
    expect(shown).toBe('1');
    expect(bars).toBe(10);
    expect(errors).toEqual([]);
  });
});

describe('npm run demo:web options', () => {
  it('refuses unknown options, and a non-empty folder that holds no page built before, in one line and writing nothing', () => {
    ensureBuilt();
    const demo = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'dist/web/demo.js'), ...args], { cwd: root, encoding: 'utf8' });
    const unknown = demo('--prot', '8080');
    expect([unknown.status, unknown.stderr]).toEqual([1, "demo:web: unknown option '--prot'; options: --port N (default 8000; 0 picks a free one), --out DIR (default build/web)\n"]);
    const mine = mkdtempSync(path.join(os.tmpdir(), 'kiln-demo-web-mine-'));
    try {
      writeFileSync(path.join(mine, 'index.html'), 'my page');
      const r = demo('--port', '0', '--out', mine);
      expect([r.status, r.stderr]).toEqual([1, `demo:web: ${mine} is not empty and holds no training page built before: give another --out\n`]);
      expect(readdirSync(mine)).toEqual(['index.html']);
    } finally {
      rmSync(mine, { recursive: true, force: true });
    }
  });
});
