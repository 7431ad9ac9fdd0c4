// The llvm vector helpers of int8 requantization (codegen/llvm/vector.ts: qmulhi as even/odd 64-bit products blended,
// qshr, and requant = qshr of a qmulhi with its shorter rounding) against gemmlowp's reference code in C
// (SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, transcribed from gemmlowp's fixedpoint.h, independent of
// the interpreter's BigInt forms), compiled for AVX-512 (icelake-server) and AVX2 (x86-64-v3): qshr and requant's
// rounding exhaustively over every value within 2^18 of 0, of INT_MIN (+ 1 after the qmulhi) and of INT_MAX, and
// every tie k 2^e + 2^(e-1) (± 1), for every shift 0..31; qmulhi and requant on every pair of edge operands (INT_MIN,
// INT_MAX, ±2^30, ...) with every shift and on 2^20 random triples.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { helper, vectorHelpers } from '../../codegen/llvm/vector.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-requant-helpers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hostAvx512 = /\bavx512f\b/.test((() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })());

/** A C-callable wrapper void name_w(const int *a, const int *b, const int *e, int *out) around the helper on W lanes. */
function wrapper(name: string, w: number, arity: number): string {
  const v = `<${w} x i32>`, args = ['a', 'b', 'e'].slice(0, arity);
  return `define void @${name}_w(i32* %a, i32* %b, i32* %e, i32* %o) {
${args.map((x) => `  %p${x} = bitcast i32* %${x} to ${v}*\n  %v${x} = load ${v}, ${v}* %p${x}, align 4`).join('\n')}
  %po = bitcast i32* %o to ${v}*
  %r = call ${v} @${helper(name, w)}(${args.map((x) => `${v} %v${x}`).join(', ')})
  store ${v} %r, ${v}* %po, align 4
  ret void
}
`;
}

const harness = (w: number) => `#include <stdint.h>
#include <stdio.h>
#define W ${w}
typedef void helper(const int32_t *a, const int32_t *b, const int32_t *e, int32_t *o);
helper qmulhi_w, qshr_w, requant_w;
/* gemmlowp fixedpoint.h */
static int32_t srdhm(int32_t a, int32_t b) {
  int overflow = a == b && a == INT32_MIN;
  int64_t ab = (int64_t)a * (int64_t)b;
  int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  int32_t r = (int32_t)((ab + nudge) / (1ll << 31));
  return overflow ? INT32_MAX : r;
}
static int32_t rdbpot(int32_t x, int e) {
  int32_t mask = (int32_t)((1ll << e) - 1), remainder = x & mask, threshold = (mask >> 1) + (x < 0);
  return (x >> e) + (remainder > threshold);
}
static const char *names[] = { "qmulhi", "qshr", "requant" };
static long bad[3];
static int32_t ba[W], bb[W], be[W], bo[W], n;
/* which: 0 qmulhi(a, b), 1 qshr(a, e), 2 requant(a, b, e) = qshr(qmulhi(a, b), e) */
static void flush(int which) {
  if (!n) return;
  for (int i = n; i < W; i++) { ba[i] = ba[0]; bb[i] = bb[0]; be[i] = be[0]; }
  (which == 0 ? qmulhi_w : which == 1 ? qshr_w : requant_w)(ba, which == 1 ? be : bb, be, bo);
  for (int i = 0; i < n; i++) {
    int32_t want = which == 0 ? srdhm(ba[i], bb[i]) : which == 1 ? rdbpot(ba[i], be[i]) : rdbpot(srdhm(ba[i], bb[i]), be[i]);
    if (bo[i] != want && bad[which]++ < 5) fprintf(stderr, "%s(%d, %d, %d) = %d, want %d\\n", names[which], ba[i], bb[i], be[i], bo[i], want);
  }
  n = 0;
}
static void put(int which, int32_t a, int32_t b, int32_t e) { ba[n] = a; bb[n] = b; be[n] = e; if (++n == W) flush(which); }
/* qshr(a, e) and requant(a, INT_MAX, e) (qmulhi(a, INT_MAX) is a where |a| < 2^30, a - 1 above, a + 1 below) */
static void shifts(int32_t a) {
  for (int which = 1; which <= 2; which++) {
    for (int e = 0; e < 32; e++) put(which, a, INT32_MAX, e);
    flush(which);
  }
}
static uint64_t s = 12345;
static int32_t rnd(void) { s = s * 6364136223846793005ull + 1442695040888963407ull; return (int32_t)(s >> 32); }
int main(void) {
  static const int32_t edges[] = { INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -65536, -3, -2, -1, 0, 1, 2, 3,
    65535, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX };
  int ne = sizeof edges / sizeof edges[0];
  for (int which = 0; which <= 2; which += 2) {
    for (int i = 0; i < ne; i++) for (int j = 0; j < ne; j++) for (int e = 0; e < 32; e++) put(which, edges[i], edges[j], e);
    flush(which);
  }
  for (int which = 0; which <= 2; which += 2) {
    for (int i = 0; i < (1 << 20); i++) { int32_t a = rnd(), b = rnd(); put(which, a, i % 7 ? b : (i % 2 ? INT32_MIN : INT32_MAX), (uint32_t)rnd() % 32); }
    flush(which);
  }
  for (int64_t a = -(1 << 18); a <= (1 << 18); a++) shifts((int32_t)a);
  for (int64_t a = INT32_MIN; a <= INT32_MIN + (1 << 18); a++) shifts((int32_t)a);
  for (int64_t a = INT32_MAX - (1 << 18); a <= INT32_MAX; a++) shifts((int32_t)a);
  for (int e = 1; e < 32; e++) for (int64_t k = -(1ll << (31 - e)); k < (1ll << (31 - e)); k += (k > -8 && k < 8) ? 1 : (1ll << (31 - e)) / 64 + 1)
    for (int d = -1; d <= 1; d++) {
      int64_t a = k * (1ll << e) + (1ll << (e - 1)) + d;
      if (a >= INT32_MIN && a <= INT32_MAX) shifts((int32_t)a);
    }
  printf("%ld %ld %ld\\n", bad[0], bad[1], bad[2]);
  return 0;
}
`;

describe('the requantize vector helpers equal gemmlowp\'s reference (C)', () => {
  // 16 lanes: one zmm (icelake-server) or two ymm; 8: one ymm; 5: odd lanes (the widening qmulhi)
  const cases = [['icelake-server', 16], ['icelake-server', 8], ['x86-64-v3', 16], ['x86-64-v3', 8], ['x86-64-v3', 5]] as const;
  it.each(cases)('-mcpu=%s, %i lanes', (cpu, w) => {
    if (cpu === 'icelake-server' && !hostAvx512) return;
    const dir = path.join(tmp, `${cpu}-${w}`);
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(path.join(dir, 'rq.ll'), `${vectorHelpers(w, cpu === 'icelake-server' ? 'avx512vnni' : 'avx2')}\n${wrapper('qmulhi', w, 2)}${wrapper('qshr', w, 2)}${wrapper('requant', w, 3)}`);
    writeFileSync(path.join(dir, 'main.c'), harness(w));
    execFileSync('opt-14', ['-O3', `-mcpu=${cpu}`, 'rq.ll', '-o', 'rq.bc'], { cwd: dir });
    execFileSync('llc-14', ['-O3', `-mcpu=${cpu}`, '-filetype=obj', 'rq.bc', '-o', 'rq.o'], { cwd: dir });
    execFileSync('gcc', ['-O1', 'main.c', 'rq.o', '-o', 'rq'], { cwd: dir });
    const r = execFileSync(path.join(dir, 'rq'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r.trim()).toBe('0 0 0');
  });
});
