/* Test harness for the cuda target's device-resident params: runs ENTRY N times on .npy inputs, then saves the
   host block's params as they are (before.safetensors) and after kiln_cuda_sync() (after.safetensors):
   sync_main ENTRY N before.safetensors after.safetensors a.npy ... */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned char mem[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

int main(int argc, char **argv) {
  const void *in[64] = {0};
  const kiln_entry *e = argc > 1 ? kiln_find_entry(&kiln_model, argv[1]) : NULL;
  int i, n = argc > 2 ? atoi(argv[2]) : 0;
  if (argc < 5 || argc - 5 > 64 || !e || n < 1) { fprintf(stderr, "usage: sync_main ENTRY N before.safetensors after.safetensors a.npy ...\n"); return 2; }
  if (kiln_init(&kiln_model, mem, "weights.safetensors") != KILN_OK) goto fail;
  for (i = 5; i < argc; i++) {
    kiln_dtype dt;
    int rank;
    long shape[KILN_MAX_RANK];
    void *data;
    if (kiln_npy_read(argv[i], &dt, &rank, shape, &data) != KILN_OK) goto fail;
    in[i - 5] = data;
  }
  for (i = 0; i < n; i++)
    if (kiln_run_entry(e, mem, in, NULL) != KILN_OK) goto fail;
  if (kiln_save_weights(&kiln_model, mem, argv[3]) != KILN_OK) goto fail;
  kiln_cuda_sync();
  if (kiln_save_weights(&kiln_model, mem, argv[4]) != KILN_OK) goto fail;
  return 0;
fail:
  fprintf(stderr, "sync_main: %s\n", kiln_error());
  return 1;
}
