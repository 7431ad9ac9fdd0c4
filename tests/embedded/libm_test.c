/* Test harness: kiln_math.c's freestanding libm (built with -DKILN_FREESTANDING and its functions renamed kiln_t_*)
   against the C library's on edge values; prints one line per mismatch, "ok" at the end. */
#include <math.h>
#include <stdio.h>
#include <string.h>

float kiln_t_rintf(float), kiln_t_floorf(float), kiln_t_ceilf(float), kiln_t_fmaxf(float, float), kiln_t_fminf(float, float);

static int same(float a, float b) { return (a != a && b != b) || memcmp(&a, &b, 4) == 0; }

int main(void) {
  static const float v[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f, -0.49999997f, 1e-45f, -1e-45f,
                            3.7f, -3.7f, 8388607.5f, -8388607.5f, 8388608.0f, 16777217.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
  int n = sizeof v / sizeof v[0], i, j, bad = 0;
  for (i = 0; i < n; i++) {
    if (!same(kiln_t_rintf(v[i]), rintf(v[i]))) { printf("rintf(%a): %a, libm %a\n", v[i], kiln_t_rintf(v[i]), rintf(v[i])); bad++; }
    if (!same(kiln_t_floorf(v[i]), floorf(v[i]))) { printf("floorf(%a): %a, libm %a\n", v[i], kiln_t_floorf(v[i]), floorf(v[i])); bad++; }
    if (!same(kiln_t_ceilf(v[i]), ceilf(v[i]))) { printf("ceilf(%a): %a, libm %a\n", v[i], kiln_t_ceilf(v[i]), ceilf(v[i])); bad++; }
    for (j = 0; j < n; j++) {
      /* C99 leaves the sign of max(-0, +0) open; kiln's is +0 for max and -0 for min, as the interpreter's */
      float mx = v[i] == 0 && v[j] == 0 ? (signbit(v[i]) && signbit(v[j]) ? -0.0f : 0.0f) : fmaxf(v[i], v[j]);
      float mn = v[i] == 0 && v[j] == 0 ? (signbit(v[i]) || signbit(v[j]) ? -0.0f : 0.0f) : fminf(v[i], v[j]);
      if (!same(kiln_t_fmaxf(v[i], v[j]), mx)) { printf("fmaxf(%a, %a): %a, want %a\n", v[i], v[j], kiln_t_fmaxf(v[i], v[j]), mx); bad++; }
      if (!same(kiln_t_fminf(v[i], v[j]), mn)) { printf("fminf(%a, %a): %a, want %a\n", v[i], v[j], kiln_t_fminf(v[i], v[j]), mn); bad++; }
    }
  }
  if (!bad) printf("ok\n");
  return bad != 0;
}
