// int8 requantization's fixed-point ops (loop/ir.ts qmulhi, qshr) in llvm vector loops (codegen/llvm/vector.ts's
// helpers: 64-bit products in vector lanes, per-lane shifts) against the loop interpreter's gemmlowp semantics, on
// edge operands (INT_MIN², ties, every shift 0..31) and random ones, at the host CPU's vector width (qmulhi alone, qshr
// alone, and qshr of a qmulhi: requantization's pair, its own rounding form; 5 lanes: odd, the widening qmulhi); and the vector
// helpers' IR text valid at lane counts whose dot2 takes 17 or more pmaddwd chunks (it named a chunk %a16 twice: the
// helpers failed to parse and linking them crashed the compiler, fuzz seed 7068 --quant).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderLlvm } from '../../codegen/llvm/render.js';
import { vectorHelpers } from '../../codegen/llvm/vector.js';
import { hostCpu } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { type Buffer, E, type Program, S } from '../../codegen/loop/ir.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { rng } from '../ir/helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-requant-vector-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MIN = -2147483648, MAX = 2147483647;
const EDGES = [MIN, MIN + 1, -1073741824, -1073741825, -65536, -3, -2, -1, 0, 1, 2, 3, 65535, 1073741823, 1073741824, MAX - 1, MAX];

/** Operand triples: a, b (qmulhi) and a shift e in 0..31 (qshr), W lanes per vector. */
function operands(w: number): { a: Int32Array; b: Int32Array; e: Int32Array } {
  const r = rng(7), rand = () => Math.floor(r() * 2 ** 32) - 2 ** 31;
  const a: number[] = [], b: number[] = [], e: number[] = [];
  for (const x of EDGES) for (const y of EDGES) { a.push(x); b.push(y); e.push((a.length * 7) % 32); }
  // qshr's ties: x = k·2^e ± 2^(e-1) for every shift
  for (let s = 0; s < 32; s++) for (const k of [-3, -1, 0, 1, 2]) for (const d of [-1, 0, 1]) {
    a.push(Number(BigInt.asIntN(32, BigInt(k) * (1n << BigInt(s)) + (s ? (1n << BigInt(s - 1)) : 0n) + BigInt(d)))); b.push(rand()); e.push(s);
  }
  while (a.length % w || a.length < 4096) { a.push(rand()); b.push(a.length % 5 ? rand() : MIN); e.push(Math.floor(r() * 32)); }
  return { a: Int32Array.from(a), b: Int32Array.from(b), e: Int32Array.from(e) };
}

describe('qmulhi and qshr in llvm vector loops equal the interpreter', () => {
  it.each([8, 4, 16, 10, 5])('%i lanes', (w) => { // (even: products in place; 5: widened to i64 lanes)
    const { a, b, e } = operands(w), n = a.length;
    const buf = (name: string, kind: Buffer['kind']): Buffer => ({ name, dtype: 'int32', size: n, kind });
    const buffers = [buf('a', 'input'), buf('b', 'input'), buf('e', 'input'), buf('q', 'output'), buf('r', 'output'), buf('s', 'output')];
    const idx = E.add(E.mul(E.v('i'), E.i32(w)), E.v('l')), ld = (x: string) => E.load(x, idx, 'i32');
    const body = [S.for('i', n / w, [S.for('l', w, [
      S.store('q', idx, E.binary('qmulhi', ld('a'), ld('b'))),
      S.store('r', idx, E.binary('qshr', ld('a'), ld('e'))),
      // requantization's qshr of a qmulhi: render.ts renders it as vector.ts's requant
      S.store('s', idx, E.binary('qshr', E.binary('qmulhi', ld('a'), ld('b')), ld('e'))),
    ], 'vector')])];
    const of = (kind: Buffer['kind']) => buffers.filter((x) => x.kind === kind).map((x) => ({ name: x.name, buffer: x.name }));
    const p: Program = { name: 'rq', buffers, kernels: [{ name: 'k0', ops: [], body }], inputs: of('input'), params: [], outputs: of('output'), updates: [] };
    const want = runProgram(p, { a, b, e }, {}).outputs;
    const entries = [{ name: 'run', program: p, memory: planMemory(p) }], layout = layoutModule(entries);
    const dir = path.join(tmp, `w${w}`);
    execFileSync('mkdir', ['-p', dir]);
    const ll = renderLlvm(entries, layout, 'rq');
    expect(ll).toMatch(new RegExp(`kiln_v${w}_qmulhi`));
    expect(ll).toMatch(new RegExp(`kiln_v${w}_requant`));
    writeFileSync(path.join(dir, 'rq.ll'), ll);
    writeFileSync(path.join(dir, 'main.c'), `#include <stdio.h>
void kiln_run(unsigned char *mem);
static unsigned char mem[${layout.memoryBytes}];
int main(void) { if (fread(mem, 1, sizeof mem, stdin) != sizeof mem) return 1; kiln_run(mem); fwrite(mem, 1, sizeof mem, stdout); return 0; }
`);
    const cpu = `-mcpu=${hostCpu()}`;
    execFileSync('opt-14', ['-O3', cpu, 'rq.ll', '-o', 'rq.bc'], { cwd: dir });
    execFileSync('llc-14', ['-O3', cpu, '-relocation-model=pic', '-filetype=obj', 'rq.bc', '-o', 'rq.o'], { cwd: dir });
    execFileSync('gcc', ['main.c', 'rq.o', '-lm', '-o', 'rq'], { cwd: dir });
    const mem = new Uint8Array(layout.memoryBytes), at = layout.offsets['run']!;
    for (const [name, v] of [['a', a], ['b', b], ['e', e]] as const) mem.set(new Uint8Array(v.buffer), at[name]!);
    const out = new Uint8Array(execFileSync(path.join(dir, 'rq'), { input: mem })).buffer;
    for (const o of ['q', 'r', 's']) {
      const got = new Int32Array(out, at[o]!, n), ref = want.get(o)!;
      const bad = [...got.keys()].filter((i) => got[i] !== ref[i]).slice(0, 5).map((i) => `${o}[${i}] (${a[i]}, ${b[i]}, ${e[i]}): ${got[i]} vs ${ref[i]}`);
      expect(bad).toEqual([]);
    }
  });
});

describe('the llvm vector helpers parse at every width', () => {
  it('68, 100 and 124 lanes (17, 25, 31 pmaddwd chunks of 4) with AVX2 and SSE2 dot2', () => {
    for (const isa of ['avx2', 'sse2'] as const) for (const w of [68, 100, 124]) {
      const f = path.join(tmp, `helpers-${isa}-${w}.ll`);
      writeFileSync(f, vectorHelpers(w, isa));
      expect(() => execFileSync('llvm-as-14', [f, '-o', '/dev/null'], { stdio: 'pipe' }), `${isa}, ${w} lanes`).not.toThrow();
    }
  });
});
