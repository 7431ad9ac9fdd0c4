/* Firmware demo: runs the model's predict entry on the rows of samples.h and prints, per row, the index of the
   largest output value (the class) and the outputs, over semihosting. */
#include <stdio.h>
#include <string.h>
#include "model.h"
#include "samples.h" /* KILN_SAMPLE_ROWS rows of KILN_SAMPLE_COLS floats; the entry takes KILN_BATCH rows per call */

/* RAM: the model memory (arena and inputs; the weights stay in flash) and one batch in and out */
static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));
static float batch_in[KILN_BATCH * KILN_SAMPLE_COLS];
static float batch_out[KILN_OUTPUT_SIZE];

int main(void) {
  const kiln_entry *e = kiln_find_entry(&kiln_model, "predict");
  const void *ins[1] = {batch_in};
  void *outs[1] = {batch_out};
  int rc, row, r, j;
  long cols;
  if (!e || e->n_inputs != 1 || e->n_outputs != 1 || e->inputs[0].size != KILN_BATCH * KILN_SAMPLE_COLS ||
      e->outputs[0].size != KILN_OUTPUT_SIZE) {
    printf("error: samples.h does not fit this model's predict entry\n");
    return 1;
  }
  if ((rc = kiln_init(&kiln_model, memory, NULL)) != KILN_OK) {
    printf("error: kiln_init: %s (%d)\n", kiln_error(), rc);
    return 1;
  }
  cols = KILN_OUTPUT_SIZE / KILN_BATCH;
  for (row = 0; row < KILN_SAMPLE_ROWS; row += KILN_BATCH) {
    int n = KILN_SAMPLE_ROWS - row < KILN_BATCH ? KILN_SAMPLE_ROWS - row : KILN_BATCH; /* the last batch padded with zeros */
    memset(batch_in, 0, sizeof batch_in);
    memcpy(batch_in, kiln_samples[row], (size_t)n * KILN_SAMPLE_COLS * sizeof(float));
    if ((rc = kiln_run_entry(e, memory, ins, outs)) != KILN_OK) {
      printf("error: kiln_run: %s (%d)\n", kiln_error(), rc);
      return 1;
    }
    for (r = 0; r < n; r++) {
      const float *y = batch_out + r * cols;
      int best = 0;
      for (j = 1; j < cols; j++)
        if (y[j] > y[best]) best = j;
      printf("sample %d: class %d:", row + r, best);
      for (j = 0; j < cols; j++) printf(" %.9g", (double)y[j]);
      printf("\n");
    }
  }
  return 0;
}
