// Tests that import the build (examples import 'kiln' by package name): make sure dist/ is current first.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..');

/** Builds dist/ unless it is newer than every frontend, example and fuzzer source (npm test builds it first). */
export function ensureBuilt(): void {
  const built = path.join(root, 'dist/frontend/index.js');
  const sources = ['frontend', 'frontend/layers', 'frontend/models', 'examples', 'examples/seed', 'fuzz', 'io/onnx', 'web'].flatMap((d) =>
    readdirSync(path.join(root, d)).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, d, f)));
  if (existsSync(built) && sources.every((s) => statSync(s).mtimeMs <= statSync(built).mtimeMs)) return;
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    // tsc still emits when other files have type errors; the imports that follow fail if the examples did not build
  }
}
