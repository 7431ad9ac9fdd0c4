/* fuzz_fs_main: the fuzzer's host program for a freestanding module (kiln_core.c alone, built -DKILN_FREESTANDING,
   the weights read in place): runs the named entries in order, each on raw <entry>/in<i>.bin, writing raw
   <entry>/out<i>.bin; an argument <entry>:<n> runs n rows through kiln_run_rows. stdio and malloc only here. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_fs_main: %s: %s\n", what, detail);
  return 1;
}

int main(int argc, char **argv) {
  char path[4096], name[256];
  int a, i;
  if (kiln_init(&kiln_model, memory, NULL) != KILN_OK) return fail("kiln_init", kiln_error());
  for (a = 1; a < argc; a++) {
    const char *colon = strchr(argv[a], ':');
    long n = colon ? atol(colon + 1) : 0;
    const kiln_entry *e;
    const void *in[64];
    void *out[64];
    size_t len = colon ? (size_t)(colon - argv[a]) : strlen(argv[a]);
    if (len >= sizeof name) return fail(argv[a], "entry name too long");
    memcpy(name, argv[a], len);
    name[len] = '\0';
    if (!(e = kiln_find_entry(&kiln_model, name))) return fail(name, "no such entry");
    if (e->n_inputs > 64 || e->n_outputs > 64) return fail(name, "more than 64 inputs or outputs");
    for (i = 0; i < e->n_inputs + e->n_outputs; i++) {
      const kiln_tensor *t = i < e->n_inputs ? &e->inputs[i] : &e->outputs[i - e->n_inputs];
      /* n rows of a tensor compiled for batch_size rows */
      size_t bytes = (size_t)(colon ? t->size / e->batch_size * n : t->size) * (size_t)kiln_dtype_size(t->dtype);
      void *p = malloc(bytes ? bytes : 1);
      FILE *f;
      if (!p) return fail(name, "out of memory");
      if (i >= e->n_inputs) { out[i - e->n_inputs] = p; continue; }
      snprintf(path, sizeof path, "%s/in%d.bin", name, i);
      if (!(f = fopen(path, "rb")) || fread(p, 1, bytes, f) != bytes) return fail(path, "cannot read");
      fclose(f);
      in[i] = p;
    }
    if ((colon ? kiln_run_rows(&kiln_model, memory, name, n, in, out) : kiln_run_entry(e, memory, in, out)) != KILN_OK) return fail(name, kiln_error());
    for (i = 0; i < e->n_outputs; i++) {
      const kiln_tensor *t = &e->outputs[i];
      size_t bytes = (size_t)(colon ? t->size / e->batch_size * n : t->size) * (size_t)kiln_dtype_size(t->dtype);
      FILE *f;
      snprintf(path, sizeof path, "%s/out%d.bin", name, i);
      if (!(f = fopen(path, "wb")) || fwrite(out[i], 1, bytes, f) != bytes) return fail(path, "cannot write");
      fclose(f);
      free(out[i]);
    }
    for (i = 0; i < e->n_inputs; i++) free((void *)in[i]);
  }
  return 0;
}
