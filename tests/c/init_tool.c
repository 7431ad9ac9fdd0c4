/* Test harness: kiln_init from a weights file (load), then save; every prefix of a file must fail (prefixes); random header corruption must not crash (fuzz). */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

static unsigned char *slurp(const char *path, long *n) {
  FILE *f = fopen(path, "rb");
  unsigned char *b;
  if (!f) exit(2);
  fseek(f, 0, SEEK_END);
  *n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b = (unsigned char *)malloc((size_t)*n + 1);
  if (fread(b, 1, (size_t)*n, f) != (size_t)*n) exit(2);
  fclose(f);
  return b;
}

static void spit(const char *path, const unsigned char *b, long n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, (size_t)n, f) != (size_t)n) exit(2);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "save") == 0) {
    if (kiln_init(&kiln_model, memory, argv[2]) != KILN_OK) { fprintf(stderr, "init_tool: %s\n", kiln_error()); return 1; }
    if (kiln_save_weights(&kiln_model, memory, argv[3]) != KILN_OK) { fprintf(stderr, "init_tool: %s\n", kiln_error()); return 1; }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "prefixes") == 0) {
    long n, k;
    unsigned char *b = slurp(argv[2], &n);
    for (k = 0; k < n; k++) {
      spit(argv[3], b, k);
      if (kiln_init(&kiln_model, memory, argv[3]) == KILN_OK || !kiln_error()[0]) { fprintf(stderr, "prefix of %ld bytes was accepted\n", k); return 1; }
    }
    printf("ok %ld prefixes rejected\n", n);
    free(b);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "fuzz") == 0) {
    long n, k, ok = 0;
    unsigned long long s = 88172645463325252ULL;
    unsigned char *b = slurp(argv[2], &n), *c = (unsigned char *)malloc((size_t)n);
    for (k = 0; k < 3000; k++) {
      int flips = 1 + (int)(k % 4), i;
      memcpy(c, b, (size_t)n);
      for (i = 0; i < flips; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        c[s % (unsigned long long)(n < 200 ? n : 200)] = (unsigned char)(s >> 32);
      }
      spit(argv[3], c, n);
      if (kiln_init(&kiln_model, memory, argv[3]) == KILN_OK) ok++;
      else if (!kiln_error()[0]) { fprintf(stderr, "failure without a message\n"); return 1; }
    }
    printf("ok %ld of 3000 accepted\n", ok);
    free(b);
    free(c);
    return 0;
  }
  fprintf(stderr, "usage: init_tool save IN OUT | prefixes FILE TMP | fuzz FILE TMP\n");
  return 2;
}
