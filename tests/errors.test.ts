// The one-line errors the `kiln` command prints (cli/common.ts errorReport): one `kiln: ` prefix, however the error came.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KilnError, compile, errorReport, modelFileError } from '../compiler.js';
import * as keras from '../frontend/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('errorReport', () => {
  it('prints one kiln: prefix for messages that already carry one (the wasm loader, older throw sites)', () => {
    expect(errorReport(new KilnError('kiln: bad thing'))).toBe('kiln: bad thing');
    expect(errorReport(new KilnError('bad thing'))).toBe('kiln: bad thing');
    expect(errorReport(new Error('kiln: broken'))).toBe('kiln: internal error: broken (KILN_DEBUG=1 shows the stack trace)');
    const file = path.join(tmp, 'model.ts');
    expect(errorReport(modelFileError(new Error('kiln: input x needs 3 values, got 2'), file))).toBe(`${path.relative(process.cwd(), file)}: input x needs 3 values, got 2`);
  });

  it('a name a C string cannot hold is one line with one prefix from compile (llvm)', async () => {
    const inputs = keras.Input({ shape: [3] });
    const model = keras.Model({ inputs, outputs: keras.layers.Dense(2, { name: 'a\0b' })(inputs) });
    const err = await compile(model, { target: 'llvm', outDir: path.join(tmp, 'nul') }).then(() => undefined, (e: unknown) => e);
    expect(errorReport(err)).toBe('kiln: the name "a\\u0000b" contains a NUL character, which a C string cannot hold');
  });
});
