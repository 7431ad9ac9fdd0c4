/* The llvm renderer's round(x / c) (codegen/llvm/render.ts divByConstant: Markstein's division by two FMAs, the sign
   x / c's) against the hardware division on every float x with |x| <= 2048 |c|, for each c given: the rounded values
   bit for bit, and the quotients where |x / c| >= 2^-60. Minutes per c (2^31 or so floats); not run by the tests.
     gcc -O3 -march=native -ffp-contract=off -o /tmp/mk tests/quant/markstein_exhaustive.c -lm
     /tmp/mk 0x1.010102p-8 0x1.fffffep-8 0x1.8p-3 3 0.1 0x1.123456p-7 0x1.fffffep+0 0.0137
   Session 10 (this machine): 0 mismatches of either kind for each of those c. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>
static float fromb(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
int main(int argc, char **argv) {
  for (int a = 1; a < argc; a++) {
    float c = strtof(argv[a], NULL), y = (float)(1.0 / (double)c);
    double B = 2048.0 * fabs(c);
    long bad = 0, badq = 0;
    uint32_t top = bits((float)B);
    for (uint64_t v = 0; v <= 2ULL * top + 1; v++) {
      uint32_t u = (uint32_t)(v >> 1) | (uint32_t)(v & 1) << 31;
      float x = fromb(u);
      if (!(fabsf(x) <= B)) continue;
      float q = x / c;
      float q0 = x * y, r = fmaf(-q0, c, x), q1 = fmaf(r, y, q0);
      q1 = copysignf(q1, x * c);
      if (bits(q1) != bits(q) && fabsf(q) >= 0x1p-60f) badq++;
      if (bits(rintf(q1)) != bits(rintf(q))) { if (bad < 3) printf("  c=%a x=%a q=%a q1=%a\n", c, x, q, q1); bad++; }
    }
    printf("c=%a (%g) y=%a: rint mismatches %ld, quotient mismatches %ld\n", c, c, y, bad, badq);
    fflush(stdout);
  }
}
