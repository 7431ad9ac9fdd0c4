// web/serve.ts, the static server of the browser tests and the training page: MIME types, isolation headers, and
// nothing served from outside its folder.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serveFolder } from '../../web/serve.js';

/** A raw GET (or HEAD) of `target` exactly as written (fetch would normalize '..' away). */
function get(url: string, target: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    http.request({ hostname, port, path: target, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    }).on('error', reject).end();
  });
}

describe('serveFolder', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-serve-'));
  const dir = path.join(tmp, 'site');
  mkdirSync(path.join(dir, 'model'), { recursive: true });
  writeFileSync(path.join(tmp, 'secret.txt'), 'outside');
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
  writeFileSync(path.join(dir, 'model/model.wasm'), new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
  writeFileSync(path.join(dir, 'model/model.mjs'), 'export const x = 1;\n');
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('sends each file with its MIME type, a folder as its index.html, and the isolation headers only when asked', async () => {
    for (const isolate of [false, true]) {
      const s = await serveFolder(dir, { isolate });
      try {
        const wasm = await get(s.url, '/model/model.wasm');
        expect([wasm.status, wasm.headers['content-type'], wasm.headers['content-length']]).toEqual([200, 'application/wasm', '8']);
        expect((await get(s.url, '/model/model.mjs')).headers['content-type']).toBe('text/javascript; charset=utf-8');
        const index = await get(s.url, '/');
        expect([index.status, index.headers['content-type'], index.body]).toEqual([200, 'text/html; charset=utf-8', '<!doctype html>']);
        expect(index.headers['cross-origin-opener-policy']).toBe(isolate ? 'same-origin' : undefined);
        expect(index.headers['cross-origin-embedder-policy']).toBe(isolate ? 'require-corp' : undefined);
        const head = await get(s.url, '/model/model.mjs', 'HEAD');
        expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '20', '']);
      } finally {
        await s.close();
      }
    }
  });

  it('refuses paths outside the folder, other methods and missing files', async () => {
    const s = await serveFolder(dir);
    try {
      // URL parsing resolves '..' (and '%2e%2e') from '/', inside the folder; '..%2f' is decoded after it and would leave it
      expect((await get(s.url, '/../secret.txt')).status).toBe(404);
      expect((await get(s.url, '/model/%2e%2e/%2e%2e/secret.txt')).status).toBe(404);
      expect((await get(s.url, '/..%2fsecret.txt')).status).toBe(403);
      expect((await get(s.url, '/%E0%A4%A')).status).toBe(400);
      expect((await get(s.url, '/nothing.js')).status).toBe(404);
      expect((await get(s.url, '/model/model.mjs', 'POST')).status).toBe(405);
    } finally {
      await s.close();
    }
  });

  it('rejects a missing folder and unknown options in one line', async () => {
    await expect(() => serveFolder(path.join(tmp, 'none'))).rejects.toThrow(/^serveFolder: .*none is not a folder$/);
    await expect(() => serveFolder(dir, { isolated: true } as never)).rejects.toThrow("serveFolder: unknown option 'isolated'; options: isolate, port");
  });
});
