// A static server for one folder on 127.0.0.1 (the browser tests, `npm run demo:web`): the MIME types a browser
// needs (application/wasm, so WebAssembly.instantiateStreaming works) and, optionally, cross-origin isolation.
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.ts': 'text/plain; charset=utf-8',
  '.ir': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export interface ServeOptions {
  /** Send COOP/COEP headers, so the page is cross-origin isolated (SharedArrayBuffer, wasm threads). Default false. */
  isolate?: boolean;
  /** Port on 127.0.0.1; default 0, a free one. */
  port?: number;
}

export interface Served {
  /** The folder's URL, ending in '/'. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves the files under `dir` (GET and HEAD; a folder serves its index.html); nothing outside it. */
export async function serveFolder(dir: string, options: ServeOptions = {}): Promise<Served> {
  for (const k of Object.keys(options)) if (k !== 'isolate' && k !== 'port') throw new Error(`serveFolder: unknown option '${k}'; options: isolate, port`);
  const root = path.resolve(dir);
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`serveFolder: ${dir} is not a folder`);
  const server = http.createServer((req, res) => {
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (options.isolate) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    const fail = (status: number, text: string) => {
      res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, `method ${req.method} not allowed`);
    let rel: string;
    try {
      rel = decodeURIComponent(new URL(req.url ?? '/', 'http://host').pathname);
    } catch {
      return fail(400, 'bad path');
    }
    let file = path.join(root, rel);
    // path.join normalizes '..' away; a path that still leaves the folder is refused
    if (file !== root && !file.startsWith(root + path.sep)) return fail(403, 'outside the served folder');
    let stat = statSync(file, { throwIfNoEntry: false });
    if (stat?.isDirectory()) {
      file = path.join(file, 'index.html');
      stat = statSync(file, { throwIfNoEntry: false });
    }
    if (!stat?.isFile()) return fail(404, `${rel} not found`);
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': String(stat.size) });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot serve on 127.0.0.1:${options.port ?? 0}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`)));
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}/`,
        close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
      });
    });
  });
}
