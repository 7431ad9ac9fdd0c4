/* Helpers shared by model_main and model_train: errors, shapes, the default weights path, timing. */
#ifndef KILN_CLI_H
#define KILN_CLI_H
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* the program name for messages; each program sets it first thing in main */
static const char *kiln_prog = "kiln";

/* Flush-to-zero and denormals-are-zero, as TensorFlow sets on CPU: Adam moments decaying into denormals
   otherwise slow training steps down several times after a few hundred steps. */
static void kiln_flush_denormals(void) {
#if defined(__SSE__) || defined(__x86_64__)
  _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

static void die(const char *msg) {
  fprintf(stderr, "%s: %s\n", kiln_prog, msg);
  exit(1);
}

static char *shape_str(char *buf, size_t cap, int rank, const long *shape) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  int i;
  for (i = 0; i < rank && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %ld" : "%ld", shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

/* weights.safetensors in the directory of this executable */
static char *default_weights(const char *argv0) {
  static char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
  char *slash;
  if (n > 0) path[n] = '\0';
  else snprintf(path, sizeof path - 32, "%s", argv0);
  slash = strrchr(path, '/');
  if (slash) strcpy(slash + 1, "weights.safetensors");
  else strcpy(path, "weights.safetensors");
  return path;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* An integer option in [min, max]; out of range (strtol saturates at LONG_MAX) is an error, not LONG_MAX. */
static long parse_long(const char *flag, const char *s, long min, long max) {
  char *end, msg[256];
  long v;
  errno = 0;
  v = s ? strtol(s, &end, 10) : 0;
  if (!s || *end != '\0' || errno == ERANGE || v < min || v > max) {
    if (max == LONG_MAX) snprintf(msg, sizeof msg, "%s needs an integer of at least %ld", flag, min);
    else snprintf(msg, sizeof msg, "%s needs an integer from %ld to %ld", flag, min, max);
    die(msg);
  }
  return v;
}

/* --bench N keeps N timings: far below the size at which N * sizeof(double) would wrap */
#define KILN_MAX_BENCH 1000000000L

#endif
