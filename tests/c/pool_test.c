/* Test harness: kiln_parallel_for covers every index exactly once, for many sizes, repeatedly, and nested. */
#include "kiln_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int *hits; long calls; } job;

static void mark(long begin, long end, void *ctx) {
  job *j = (job *)ctx;
  long i;
  if (begin < 0 || end <= begin) { fprintf(stderr, "bad chunk [%ld, %ld)\n", begin, end); exit(1); }
  for (i = begin; i < end; i++) __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&j->calls, 1, __ATOMIC_RELAXED);
}

static void nested(long begin, long end, void *ctx) {
  job *j = (job *)ctx;
  long i;
  for (i = begin; i < end; i++) {
    job inner = {j->hits + i * 10, 0};
    kiln_parallel_for(10, mark, &inner);
  }
}

static int check(const int *hits, long n, const char *what) {
  long i;
  for (i = 0; i < n; i++)
    if (hits[i] != 1) { fprintf(stderr, "%s: index %ld ran %d times\n", what, i, hits[i]); return 0; }
  return 1;
}

int main(void) {
  static const long sizes[] = {0, 1, 2, 3, 4, 5, 7, 64, 1000, 100003};
  int threads = kiln_num_threads(), rep;
  size_t s;
  int *hits = (int *)malloc(100003 * sizeof *hits);
  for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (rep = 0; rep < 200; rep++) {
      long n = sizes[s], want = n < threads ? n : threads;
      job j = {hits, 0};
      memset(hits, 0, 100003 * sizeof *hits);
      kiln_parallel_for(n, mark, &j);
      if (!check(hits, n, "flat")) return 1;
      if (n > 1 && j.calls != want) { fprintf(stderr, "n=%ld: %ld chunks with %d threads\n", n, j.calls, threads); return 1; }
    }
  {
    job j = {hits, 0};
    memset(hits, 0, 100003 * sizeof *hits);
    kiln_parallel_for(100, nested, &j);
    if (!check(hits, 1000, "nested")) return 1;
  }
  printf("ok threads=%d\n", threads);
  free(hits);
  return 0;
}
