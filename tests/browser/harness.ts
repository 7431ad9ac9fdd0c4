// The browser tests' harness: headless Chromium through playwright-core (KILN_CHROMIUM, else `chromium` on PATH),
// and the dist modules that compile artifacts for it (the examples import 'kiln', which resolves to dist/).
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { ensureBuilt, root } from '../built.js';

/** The Chromium executable: $KILN_CHROMIUM (which must exist), else the first of chromium, chromium-browser on PATH. */
function findChromium(): string | undefined {
  const given = process.env['KILN_CHROMIUM'];
  const runnable = (f: string) => {
    try {
      accessSync(f, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (given) {
    if (!runnable(given)) throw new Error(`KILN_CHROMIUM=${given} is not an executable file`);
    return given;
  }
  for (const name of ['chromium', 'chromium-browser']) {
    for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) if (dir && runnable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

export const chromiumPath = findChromium();
/** A describe title's suffix saying why it is skipped, or ''. */
export const skipNote = chromiumPath ? '' : ': skipped, chromium is not installed (or set KILN_CHROMIUM)';

/** Headless Chromium (without its sandbox when running as root, where it refuses to start with one). */
export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
}

/** A new page that collects its uncaught errors and console errors, to show when a check fails. */
export async function newPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return { page, errors };
}

/** kiln's keras namespace, compile() and the reference interpreter, from dist/ (built first when stale). */
export async function distModules() {
  ensureBuilt();
  const dist = (p: string) => path.join(root, 'dist', p);
  return {
    keras: await import(dist('frontend/index.js')) as typeof import('../../frontend/index.js'),
    compile: (await import(dist('compiler.js')) as typeof import('../../compiler.js')).compile,
    traceModel: (await import(dist('frontend/models/executor.js')) as typeof import('../../frontend/models/executor.js')).traceModel,
    interpret: (await import(dist('ir/interpreter.js')) as typeof import('../../ir/interpreter.js')).interpret,
    serveFolder: (await import(dist('web/serve.js')) as typeof import('../../web/serve.js')).serveFolder,
    example: async (name: string) => (await import(dist(`examples/seed/${name}.js`)) as { default: import('../../frontend/index.js').Model }).default,
  };
}
