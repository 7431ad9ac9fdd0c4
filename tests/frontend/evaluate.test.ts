// model.evaluate returns [loss, ...metrics], or with { returnDict: true } a record by name (Keras's return_dict),
// typed so that neither needs a cast: values against a hand computation, types with tsc.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

keras.config.setBackend('interpreter');
const root = path.resolve(import.meta.dirname, '../..');

describe('evaluate', () => {
  it('returns [loss, accuracy] and the same values by name, equal to the crossentropy and accuracy of predict', () => {
    keras.utils.setRandomSeed(7);
    const model = keras.Sequential([keras.layers.Dense(3, { activation: 'softmax', inputShape: [2] })]);
    model.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const x = keras.ops.array([[0.5, -1], [2, 0.25], [-1.5, 1], [0.1, 0.2], [3, -2]], 'float32'), labels = [0, 2, 1, 1, 0];
    const y = keras.ops.array(labels);
    const [loss, accuracy] = model.evaluate(x, y, { verbose: 0, batchSize: 2 });
    const dict = model.evaluate(x, y, { verbose: 0, batchSize: 2, returnDict: true });
    expect(Object.keys(dict)).toEqual(['loss', 'accuracy']);
    expect([dict['loss'], dict['accuracy']]).toEqual([loss, accuracy]);
    const p = model.predict(x).toArray() as number[][];
    const ce = labels.reduce((s, l, i) => s - Math.log(p[i]![l]!), 0) / labels.length;
    const hits = labels.filter((l, i) => p[i]!.indexOf(Math.max(...p[i]!)) === l).length;
    expect(loss).toBeCloseTo(ce, 5);
    expect(accuracy).toBeCloseTo(hits / labels.length, 6);
  });
});

describe('evaluate types (tsc)', () => {
  const dir = (() => {
    mkdirSync(path.join(root, 'tests/.tmp'), { recursive: true });
    return mkdtempSync(path.join(root, 'tests/.tmp/evaluate-types-'));
  })();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a list without the option, a record with { returnDict: true }, the union for a boolean; misuses are errors', async () => {
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: true, types: ['node'] },
      files: ['use.ts'],
    }));
    writeFileSync(path.join(dir, 'use.ts'), `import * as keras from '${path.relative(dir, path.join(root, 'frontend/index.js'))}';
declare const model: keras.Sequential, functional: keras.Model, x: keras.Tensor, y: keras.Tensor, flag: boolean;
const list: number[] = model.evaluate(x, y);
const [loss, accuracy] = functional.evaluate(x, y, { verbose: 0, batchSize: 8 });
const explicit: number[] = model.evaluate(x, y, { returnDict: false });
const dict: Record<string, number> = model.evaluate(x, y, { returnDict: true, verbose: 0 });
const either: number[] | Record<string, number> = model.evaluate(x, y, { returnDict: flag });
// @ts-expect-error a record is not a list
const notList: number[] = model.evaluate(x, y, { returnDict: true });
// @ts-expect-error a list is not a record
const notDict: Record<string, number> = functional.evaluate(x, y);
// @ts-expect-error a boolean option gives either: narrow it first
const unknown: number[] = model.evaluate(x, y, { returnDict: flag });
export { list, loss, accuracy, explicit, dict, either, notList, notDict, unknown };
`);
    const tsc = path.join(root, 'node_modules/.bin/tsc');
    const out = await promisify(execFile)(tsc, ['-p', dir], { cwd: dir }).then(() => '', (e: { stdout: string }) => e.stdout);
    expect(out.split('\n').filter((l) => l.includes('error TS'))).toEqual([]);
  });
});
