// The runtime's object cache (codegen/native.ts startCompileCached): an object is keyed by its flags, its source and
// the files of its folder it includes, transitively, and by nothing else; so the runtime's objects, which do not
// include model.h, are compiled once for every model (they were compiled again for each new model, 0.8 s of CPU).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCompileCached } from '../../codegen/native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-object-cache-'));
const cache = path.join(tmp, 'cache'), src = path.join(tmp, 'src');
let saved: string | undefined;
beforeAll(() => {
  saved = process.env['KILN_CACHE_DIR'];
  process.env['KILN_CACHE_DIR'] = cache;
});
afterAll(() => {
  if (saved === undefined) delete process.env['KILN_CACHE_DIR'];
  else process.env['KILN_CACHE_DIR'] = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const write = (files: Record<string, string>) => {
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(src, f), text);
};
const cached = () => readdirSync(cache).filter((f) => f.endsWith('.o')).sort();
/** Compiles rt.c and main.c through the cache; returns what `nm` says each object defines. */
function build(): Record<string, string> {
  startCompileCached('llvm', ['-O2'], ['rt', 'main'].map((f) => [path.join(src, `${f}.c`), path.join(src, `${f}.o`)]))();
  return Object.fromEntries(['rt', 'main'].map((f) => [f, execFileSync('nm', ['--defined-only', path.join(src, `${f}.o`)], { encoding: 'utf8' })]));
}

describe('the object cache', () => {
  it('keys each object by what it includes, transitively, and nothing else', { timeout: 60_000 }, () => {
    execFileSync('mkdir', ['-p', src]);
    write({
      'rt.h': '#include "core.h"\n', 'core.h': 'int rt_value(void);\n#define RT 1\n',
      'rt.c': '#include "rt.h"\nint rt_value(void) { return RT; }\n',
      'model.h': '#define ROWS 4\n', 'main.c': '#include "model.h"\n#include "rt.h"\nint rows4(void) { return ROWS; }\n',
    });
    let nm = build();
    expect(nm['rt']).toContain('rt_value');
    expect(nm['main']).toContain('rows4');
    const first = cached();
    expect(first).toHaveLength(2);
    // another model: a new main.o, the runtime's object reused
    write({ 'model.h': '#define ROWS 8\n', 'main.c': '#include "model.h"\n#include "rt.h"\nint rows8(void) { return ROWS; }\n' });
    nm = build();
    expect(nm['main']).toContain('rows8');
    expect(nm['rt']).toContain('rt_value');
    expect(cached()).toHaveLength(3);
    expect(cached()).toEqual(expect.arrayContaining(first));
    // a header that rt.c includes through rt.h changed: rt.o is compiled again (and main.o, which includes it too)
    write({ 'core.h': 'int rt_value(void);\n#define RT 2\nint rt_extra(void);\n', 'rt.c': '#include "rt.h"\nint rt_value(void) { return RT; }\nint rt_extra(void) { return 0; }\n' });
    nm = build();
    expect(nm['rt']).toContain('rt_extra');
    expect(cached()).toHaveLength(5);
    // the same sources again: all hits
    build();
    expect(cached()).toHaveLength(5);
  });

  it('reports a source gcc rejects as one error, and caches nothing of it', { timeout: 60_000 }, () => {
    write({ 'rt.c': '#include "rt.h"\nint rt_value(void) { return undeclared; }\n' });
    const before = cached();
    expect(() => build()).toThrow(/^llvm: gcc failed: .*undeclared/s);
    expect(cached()).toEqual(before);
    expect(readdirSync(cache).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
