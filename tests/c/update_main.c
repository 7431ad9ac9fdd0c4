/* Test harness: runs one entry of a compiled model once on .npy inputs, writes each output as out<i>.npy and every
   param afterwards (in-place updates and copies applied) as safetensors: update_main ENTRY new.safetensors a.npy ... */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned char mem[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

int main(int argc, char **argv) {
  const void *in[64] = {0};
  void *out[64] = {0};
  const kiln_entry *e = argc > 1 ? kiln_find_entry(&kiln_model, argv[1]) : NULL;
  char name[32];
  int i;
  if (argc < 3 || argc - 3 > 64 || !e || e->n_outputs > 64) { fprintf(stderr, "usage: update_main ENTRY new.safetensors a.npy ...\n"); return 2; }
  if (kiln_init(&kiln_model, mem, "weights.safetensors") != KILN_OK) goto fail;
  for (i = 3; i < argc; i++) {
    kiln_dtype dt;
    int rank;
    long shape[KILN_MAX_RANK];
    void *data;
    if (kiln_npy_read(argv[i], &dt, &rank, shape, &data) != KILN_OK) goto fail;
    in[i - 3] = data;
  }
  for (i = 0; i < e->n_outputs; i++) out[i] = malloc((size_t)e->outputs[i].size * 4 + 1);
  if (kiln_run_entry(e, mem, in, out) != KILN_OK) goto fail;
  for (i = 0; i < e->n_outputs; i++) {
    snprintf(name, sizeof name, "out%d.npy", i);
    if (kiln_npy_write(name, e->outputs[i].dtype, e->outputs[i].rank, e->outputs[i].shape, out[i]) != KILN_OK) goto fail;
  }
#ifdef KILN_SYNC_PARAMS
  KILN_SYNC_PARAMS(); /* a device build (cuda) keeps the trained params there until asked */
#endif
  if (kiln_save_weights(&kiln_model, mem, argv[2]) != KILN_OK) goto fail;
  return 0;
fail:
  fprintf(stderr, "update_main: %s\n", kiln_error());
  return 1;
}
