// Where kiln is installed: the folder holding its package.json. Imports nothing of kiln's, so that the `kiln`
// command's direct-mode cache lookup (cli/direct.ts) can use it before loading anything else.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding kiln's package.json (this file runs from dist/cli/ or cli/). */
export const packageRoot = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(dir: string): string {
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}
