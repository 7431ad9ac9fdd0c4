// Every vector helper the llvm renderer can link (codegen/llvm/vector.ts), for every lane count and dot2 ISA, checked
// by llvm-as: a malformed helper (a name defined twice, say) fails here, not as a compile that cannot parse it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OPS, llvm } from '../../codegen/llvm/render.js';
import { type DotIsa, helper, laneByLane, vectorHelpers } from '../../codegen/llvm/vector.js';
import { LLVM_VECTORS } from '../../codegen/loop/vectorize.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-helpers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let llvmAs = true;
try {
  execFileSync('llvm-as-14', ['--version'], { stdio: 'ignore' });
} catch {
  llvmAs = false;
}

// what dotIsa (target.ts) gives: x86 levels (AVX-512 VNNI: dot4 as vpdpbusd), the Cortex-M4's DSP, none (other triples, no -mcpu)
const ISAS: readonly (DotIsa | undefined)[] = [undefined, 'sse2', 'avx2', 'avx512', 'avx512vnni', 'dsp'];
// every lane count a vector loop can have (LLVM_VECTORS), one beyond, and 1
const WIDTHS = Array.from({ length: LLVM_VECTORS.maxExtent! + 1 }, (_, i) => i + 1);

/**
 * The functions render.ts's op table calls on vectors (its `call`), with their arity and element type: every entry
 * of the unary and binary tables run on vector operands of a stand-in for the emitter that records the calls, by
 * default and with exact math (libm's double functions, lane by lane).
 */
function vectorCalls(): Map<string, { arity: number; e: 'float' | 'double' | 'i32' }> {
  const calls = new Map<string, { arity: number; e: 'float' | 'double' | 'i32' }>();
  const vector = llvm().Type.TypeID.FixedVectorTyID;
  // any value, builder or constant: its methods give more of it, and its type says it is a vector
  const any: never = new Proxy(() => {}, { get: (_, k) => (k === 'getTypeID' ? () => vector : any), apply: () => any }) as never;
  for (const exact of [false, true]) {
    const x = new Proxy({}, {
      get: (_, k) => (k === 'dot' ? undefined : k === 'exact' ? exact : k !== 'call' ? any : (name: string, args: unknown[], t: string) => {
        calls.set(name, { arity: args.length, e: t === 'f32' ? 'float' : t === 'f64' ? 'double' : 'i32' });
        return any;
      }),
    }) as never;
    for (const table of [OPS.unary, OPS.binary]) for (const ops of Object.values(table)) for (const f of Object.values(ops ?? {}) as ((...a: never[]) => unknown)[]) f(x, any, any);
  }
  return calls;
}
// those with no helper of their own in vector.ts: linked lane by lane (log1pf, erff, sinf, cosf, powf, kiln_ipow; exp..pow on double)
const LANE_BY_LANE = [...vectorCalls()].filter(([name]) => !vectorHelpers(4).includes(`@${helper(name, 4)}(`)).map(([name, c]) => [name, c.arity, c.e] as const);

it('finds the functions the op table calls on vectors, with and without helpers of their own', () => {
  expect([...vectorCalls().keys()]).toEqual(expect.arrayContaining(['expf', 'dot2', 'powf']));
  expect(LANE_BY_LANE).toEqual(expect.arrayContaining([['powf', 2, 'float'], ['kiln_ipow', 2, 'i32'], ['sinf', 1, 'float'], ['exp', 1, 'double'], ['pow', 2, 'double']]));
});

/**
 * One module per ISA of the helpers for every width: each text as render.ts links it (one parse each), a definition
 * that an earlier ISA's module holds left out (most helpers do not depend on the ISA; one module cannot define a
 * function twice), a declaration that several texts repeat kept once (within one text it is an error).
 */
const ITEM = /^declare .*$|^define [^]*?^}$/gm;
const modules = (() => {
  const checked = new Set<string>(), out = new Map<DotIsa | undefined, string>();
  for (const dot of ISAS) {
    const declared = new Set<string>(), items: string[] = [];
    for (const w of WIDTHS) {
      for (const text of [vectorHelpers(w, dot), ...LANE_BY_LANE.map(([name, arity, e]) => laneByLane(name, w, arity, e))]) {
        const own = new Set<string>(), found = text.match(ITEM) ?? [];
        if (text.replace(ITEM, '').trim() !== '') throw new Error(`the helpers for ${w} lanes hold text outside a declare or define`);
        for (const item of found) {
          if (!item.startsWith('declare ')) {
            if (!checked.has(item)) items.push(item);
            checked.add(item);
          } else {
            if (own.has(item)) throw new Error(`${item}: twice in one text of the helpers for ${w} lanes`);
            own.add(item);
            if (!declared.has(item)) items.push(item);
            declared.add(item);
          }
        }
      }
    }
    out.set(dot, items.join('\n'));
  }
  return out;
})();

describe.skipIf(!llvmAs)('vector helpers parse as LLVM IR', () => {
  for (const dot of ISAS) {
    it(`dot2 ${dot ?? 'generic'}, 1..${WIDTHS.length} lanes`, () => {
      const file = path.join(tmp, `${dot ?? 'generic'}.ll`);
      writeFileSync(file, modules.get(dot)!);
      let error = '';
      try {
        execFileSync('llvm-as-14', [file, '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        error = (e as { stderr?: Buffer }).stderr?.toString().split('\n')[0] ?? String(e);
      }
      expect(error).toBe('');
    });
  }
});
