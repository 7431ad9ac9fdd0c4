/* Test harness for a freestanding artifact on the host: the core runtime (built -DKILN_FREESTANDING) runs predict on
   raw little-endian inputs (in0.bin ...) and writes raw outputs (out0.bin ...); stdio only here, in the harness. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

int main(void) {
  const kiln_entry *e = kiln_find_entry(&kiln_model, "predict");
  const void *ins[64];
  void *outs[64];
  char name[32];
  int i, rc;
  if (!e || e->n_inputs > 64 || e->n_outputs > 64) return 2;
  if ((rc = kiln_init(&kiln_model, memory, NULL)) != KILN_OK) { fprintf(stderr, "kiln_init: %s\n", kiln_error()); return 1; }
  for (i = 0; i < e->n_inputs; i++) {
    size_t bytes = (size_t)e->inputs[i].size * (size_t)kiln_dtype_size(e->inputs[i].dtype);
    FILE *f;
    void *p = malloc(bytes ? bytes : 1);
    snprintf(name, sizeof name, "in%d.bin", i);
    if (!(f = fopen(name, "rb")) || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "cannot read %s\n", name); return 1; }
    fclose(f);
    ins[i] = p;
  }
  for (i = 0; i < e->n_outputs; i++) outs[i] = malloc((size_t)e->outputs[i].size * (size_t)kiln_dtype_size(e->outputs[i].dtype) + 1);
  if ((rc = kiln_run_entry(e, memory, ins, outs)) != KILN_OK) { fprintf(stderr, "kiln_run: %s\n", kiln_error()); return 1; }
  for (i = 0; i < e->n_outputs; i++) {
    FILE *f;
    snprintf(name, sizeof name, "out%d.bin", i);
    if (!(f = fopen(name, "wb"))) return 1;
    fwrite(outs[i], 1, (size_t)e->outputs[i].size * (size_t)kiln_dtype_size(e->outputs[i].dtype), f);
    fclose(f);
  }
  return 0;
}
