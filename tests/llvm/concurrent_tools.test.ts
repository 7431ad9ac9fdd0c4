// shConcurrently and startConcurrently (codegen/native.ts): the llvm target's external tools run in groups at once from
// one shell, here or in the background; every command runs with its arguments as given, and a failure names its
// command and stderr as sh() does.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shConcurrently, startConcurrently } from '../../codegen/native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-concurrent-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('shConcurrently', () => {
  it('runs every group, a group\'s commands in order, arguments as given, and leaves no file of its own', () => {
    const dir = mkdtempSync(path.join(tmp, 'ok-'));
    const odd = `it's a "test" $HOME \\ *`;
    shConcurrently('t', [
      [['sh', ['-c', 'echo a > a.txt']], ['sh', ['-c', 'cat a.txt a.txt > b.txt']]],
      [['sh', ['-c', 'printf %s "$1" > q.txt', 'sh', odd]]],
    ], dir);
    expect(readFileSync(path.join(dir, 'b.txt'), 'utf8')).toBe('a\na\n');
    expect(readFileSync(path.join(dir, 'q.txt'), 'utf8')).toBe(odd);
    expect(readdirSync(dir).sort()).toEqual(['a.txt', 'b.txt', 'q.txt']);
  });

  it('names the command that failed with its stderr, and runs no later command of its group', () => {
    const dir = mkdtempSync(path.join(tmp, 'fail-'));
    expect(() => shConcurrently('t', [
      [['true', []]],
      [['sh', ['-c', 'echo 7; echo 1 2']], ['sh', ['-c', 'echo boom >&2; exit 3']], ['sh', ['-c', 'echo later > later.txt']]],
    ], dir)).toThrow(/^t: sh failed: boom$/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('startConcurrently', () => {
  it('returns while its commands run (they wait for a file the caller writes after), and wait() sees them end', () => {
    const dir = mkdtempSync(path.join(tmp, 'bg-'));
    const wait = startConcurrently('t', [
      [['sh', ['-c', 'while [ ! -e go ]; do sleep 0.01; done; echo done > out.txt']]],
      [['sh', ['-c', 'echo b > b.txt']]],
    ], dir);
    writeFileSync(path.join(dir, 'go'), '');
    wait();
    expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).toBe('done\n');
    expect(readdirSync(dir).sort()).toEqual(['b.txt', 'go', 'out.txt']);
  });

  it('wait() names the command that failed with its stderr, and leaves no file of its own', () => {
    const dir = mkdtempSync(path.join(tmp, 'bgfail-'));
    const wait = startConcurrently('t', [[['true', []], ['sh', ['-c', 'echo bad >&2; exit 4']], ['sh', ['-c', 'echo later > later.txt']]]], dir);
    expect(() => wait()).toThrow(/^t: sh failed: bad$/);
    expect(readdirSync(dir)).toEqual([]);
  });
});
