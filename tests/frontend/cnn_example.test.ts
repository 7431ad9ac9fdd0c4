// examples/seed/cnn.ts, imported from the build (it imports 'kiln' by package name): shapes, parameters, a predict.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type * as keras from '../../frontend/index.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Builds dist/ unless it is newer than every frontend and example source (npm test builds it first). */
function ensureBuilt(): void {
  const built = path.join(root, 'dist/frontend/index.js');
  const sources = ['frontend', 'frontend/layers', 'frontend/models', 'examples/seed'].flatMap((d) =>
    readdirSync(path.join(root, d)).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, d, f)));
  if (existsSync(built) && sources.every((s) => statSync(s).mtimeMs <= statSync(built).mtimeMs)) return;
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    // tsc still emits when other files have type errors; the import below fails if the example did not build
  }
}

beforeAll(ensureBuilt, 120_000);

describe('examples/seed/cnn', () => {
  it('is a Sequential CNN on [28, 28, 1] with Keras parameter counts, predicting probabilities', async () => {
    const model = (await import('../../dist/examples/seed/cnn.js' as string) as { default: keras.Sequential }).default;
    expect(model.layers.map((l) => l.className)).toEqual(['Conv2D', 'MaxPooling2D', 'Conv2D', 'GlobalAveragePooling2D', 'Dense']);
    expect(model.countParams()).toBe((3 * 3 * 1 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (16 * 10 + 10));
    const kiln = (await import('../../dist/frontend/index.js' as string)) as typeof keras;
    const y = model.predict(kiln.ops.ones([2, 28, 28, 1])) as keras.Tensor;
    expect(y.shape).toEqual([2, 10]);
    for (let r = 0; r < 2; r++) expect(Array.from(y.data.slice(r * 10, r * 10 + 10)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });
});
