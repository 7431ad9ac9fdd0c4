/* Scalar helpers the generated LLVM code calls: Philox-4x32-10 uniforms (as ir/philox.ts) and integer power. */
#include <stdint.h>

/* Uniform float in [0, 1): word index%4 of Philox block (index/4, counter, 0, 0) keyed (seed, 0), 24 high bits. */
float kiln_philox_uniform(int32_t seed, int32_t counter, int32_t index) {
  uint32_t c0 = (uint32_t)index >> 2, c1 = (uint32_t)counter, c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = 0;
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xd2511f53u * c0, p1 = (uint64_t)0xcd9e8d57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  uint32_t words[4] = {c0, c1, c2, c3};
  return (float)(words[(uint32_t)index & 3] >> 8) * 5.9604644775390625e-8f;
}

/* a^b with wrapping 32-bit multiplies; 0 for negative exponents (as the interpreter). */
int32_t kiln_ipow(int32_t a, int32_t b) {
  if (b < 0) return 0;
  uint32_t r = 1, x = (uint32_t)a;
  for (uint32_t e = (uint32_t)b; e; e >>= 1) {
    if (e & 1) r *= x;
    x *= x;
  }
  return (int32_t)r;
}
