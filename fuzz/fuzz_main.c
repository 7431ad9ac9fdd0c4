/* fuzz_main: the fuzzer's host program for a native module: runs the named entries in order, each on
   <entry>/in<i>.npy, writing <entry>/out<i>.npy, then saves every param (updated in place) to params.safetensors.
   An argument <entry>:<n> runs n rows through kiln_run_rows (the .npy files hold n rows). */
#define _POSIX_C_SOURCE 200809L
#include "model.h"
#include "kiln_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const kiln_model_desc kiln_model;

static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

int main(int argc, char **argv) {
  char path[4096];
  int a, i;
  kiln_prog = "fuzz_main";
  /* IEEE denormals, as the interpreter computes: model_main's flush-to-zero is a policy of the executables, not of
     the compiled code the fuzzer checks (KILN_FUZZ_FTZ=1 flushes as model_main does) */
  if (getenv("KILN_FUZZ_FTZ")) kiln_flush_denormals();
  if (kiln_init(&kiln_model, memory, "weights.safetensors") != KILN_OK) die(kiln_error());
  for (a = 1; a < argc; a++) {
    char *colon = strchr(argv[a], ':');
    long n = colon ? atol(colon + 1) : 0;
    const kiln_entry *e;
    void *in[64], *out[64];
    if (colon) *colon = '\0';
    if (!(e = kiln_find_entry(&kiln_model, argv[a]))) die("no such entry");
    if (e->n_inputs > 64 || e->n_outputs > 64) die("more than 64 inputs or outputs");
    for (i = 0; i < e->n_inputs; i++) {
      kiln_dtype dt;
      int rank;
      long shape[KILN_MAX_RANK];
      snprintf(path, sizeof path, "%s/in%d.npy", argv[a], i);
      if (kiln_npy_read(path, &dt, &rank, shape, &in[i]) != KILN_OK) die(kiln_error());
    }
    for (i = 0; i < e->n_outputs; i++) {
      long size = colon ? e->outputs[i].size / e->batch_size * n : e->outputs[i].size;
      out[i] = malloc((size_t)(size ? size : 1) * (size_t)kiln_dtype_size(e->outputs[i].dtype));
      if (!out[i]) die("out of memory");
    }
    if ((colon ? kiln_run_rows(&kiln_model, memory, argv[a], n, (const void *const *)in, out)
               : kiln_run_entry(e, memory, (const void *const *)in, out)) != KILN_OK) die(kiln_error());
    for (i = 0; i < e->n_outputs; i++) {
      const kiln_tensor *t = &e->outputs[i];
      long shape[KILN_MAX_RANK];
      memcpy(shape, t->shape, sizeof(long) * (size_t)t->rank);
      if (colon) shape[0] = n;
      snprintf(path, sizeof path, "%s/out%d.npy", argv[a], i);
      if (kiln_npy_write(path, t->dtype, t->rank, shape, out[i]) != KILN_OK) die(kiln_error());
      free(out[i]);
    }
    for (i = 0; i < e->n_inputs; i++) free(in[i]);
  }
#ifdef KILN_SYNC_PARAMS
  KILN_SYNC_PARAMS(); /* a device build (cuda) keeps the updated params there until asked */
#endif
  if (kiln_save_weights(&kiln_model, memory, "params.safetensors") != KILN_OK) die(kiln_error());
  return 0;
}
