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

#ifdef KILN_FREESTANDING
/* The freestanding runtime's minimal libm: the rounding and min/max functions LLVM calls on a core without the
   instructions (ARMv7E-M), exact as C99 defines them (max(-0, +0) = +0, min = -0, as the interpreter). Transcendental
   ops (expf, logf, tanhf, ...) come from the toolchain's libm where a model uses them (manifest.json: sizes.libm). */
#include <string.h>

static uint32_t fbits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float ffrom(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

float rintf(float x) {
  uint32_t sign = fbits(x) & 0x80000000u;
  float a = ffrom(fbits(x) & 0x7fffffffu), r;
  if (!(a < 8388608.0f)) return x; /* 2^23 and above are integers; NaN, inf */
  r = (a + 8388608.0f) - 8388608.0f; /* rounds half to even in the default rounding mode */
  return ffrom(fbits(r) | sign);   /* -0.3 -> -0 */
}

float floorf(float x) { float r = rintf(x); return r > x ? r - 1.0f : r; }
float ceilf(float x) { float r = rintf(x); return r < x ? r + 1.0f : r; }

float fmaxf(float x, float y) {
  if (x != x) return y;
  if (y != y) return x;
  if (x == y) return ffrom(fbits(x) & fbits(y)); /* +0 unless both are -0 */
  return x > y ? x : y;
}

float fminf(float x, float y) {
  if (x != x) return y;
  if (y != y) return x;
  if (x == y) return ffrom(fbits(x) | fbits(y)); /* -0 if either is */
  return x < y ? x : y;
}
#endif
