/* Test harness: reads a .npy with kiln_npy_read, prints its dtype, shape and values, and writes it back with kiln_npy_write
   (to several files at once with kiln_npy_write_all). */
#include "kiln_runtime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  kiln_dtype dt;
  int rank, i, rc;
  long shape[KILN_MAX_RANK], n = 1, k;
  void *data;
  kiln_npy_file outs[8];
  if (argc < 3 || argc > 10) { fprintf(stderr, "usage: npy_tool in.npy out.npy [more.npy ...]\n"); return 2; }
  if (kiln_npy_read(argv[1], &dt, &rank, shape, &data) != KILN_OK) { fprintf(stderr, "npy_tool: %s\n", kiln_error()); return 1; }
  printf("%s [", kiln_dtype_name(dt));
  for (i = 0; i < rank; i++) { printf(i ? ", %ld" : "%ld", shape[i]); n *= shape[i]; }
  printf("]");
  for (k = 0; k < n; k++) {
    if (dt == KILN_F32) printf(" %g", ((float *)data)[k]);
    else if (dt == KILN_I32) printf(" %d", ((int32_t *)data)[k]);
    else printf(" %d", ((unsigned char *)data)[k]);
  }
  printf("\n");
  for (i = 2; i < argc; i++) {
    outs[i - 2].path = argv[i];
    outs[i - 2].dtype = dt;
    outs[i - 2].rank = rank;
    outs[i - 2].shape = shape;
    outs[i - 2].data = data;
  }
  rc = argc == 3 ? kiln_npy_write(argv[2], dt, rank, shape, data) : kiln_npy_write_all(argc - 2, outs);
  free(data);
  if (rc != KILN_OK) { fprintf(stderr, "npy_tool: %s\n", kiln_error()); return 1; }
  return 0;
}
