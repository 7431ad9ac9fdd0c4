/* kiln_run_rows: any number of rows through an entry compiled for a fixed batch, in chunks (no stdio, malloc or threads). */
#include "kiln_runtime.h"

#include <string.h>

/* An error message built without stdio: appends s (or the decimal n) to buf of cap bytes at *len. */
static void put(char *buf, size_t cap, size_t *len, const char *s) {
  while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
  buf[*len] = '\0';
}

static void put_long(char *buf, size_t cap, size_t *len, long n) {
  char digits[24];
  int i = 0;
  unsigned long u = n < 0 ? 0UL - (unsigned long)n : (unsigned long)n;
  if (n < 0) put(buf, cap, len, "-");
  do digits[i++] = (char)('0' + u % 10); while ((u /= 10) && i < 23);
  while (i > 0 && *len + 1 < cap) buf[(*len)++] = digits[--i];
  buf[*len] = '\0';
}

static size_t row_bytes(const kiln_tensor *t, long batch) {
  return (size_t)(t->size / batch) * (size_t)kiln_dtype_size(t->dtype);
}

/* Runs e on rows [from, from + count) of the caller's arrays, count <= e->batch_size; the rows of the chunk past
   count are zero. Inputs go straight into the model memory and outputs come straight out of it. */
static int run_chunk(const kiln_entry *e, unsigned char *mem, long from, long count, const void *const *inputs, void *const *outputs) {
  long b = e->batch_size;
  int i;
  for (i = 0; i < e->n_inputs; i++) {
    const kiln_tensor *t = &e->inputs[i];
    size_t rb = row_bytes(t, b);
    /* (rows the caller wrote where the entry reads them, kiln_input: nothing to copy) */
    if ((const unsigned char *)inputs[i] + (size_t)from * rb != mem + t->offset)
      memcpy(mem + t->offset, (const unsigned char *)inputs[i] + (size_t)from * rb, (size_t)count * rb);
    if (count < b) memset(mem + t->offset + (size_t)count * rb, 0, (size_t)(b - count) * rb);
  }
  if (kiln_run_entry(e, mem, NULL, NULL) != KILN_OK) return KILN_ERR_ARG;
  for (i = 0; outputs && i < e->n_outputs; i++) {
    const kiln_tensor *t = &e->outputs[i];
    size_t rb = row_bytes(t, b);
    if (outputs[i]) memcpy((unsigned char *)outputs[i] + (size_t)from * rb, mem + t->offset, (size_t)count * rb);
  }
  return KILN_OK;
}

int kiln_run_rows(const kiln_model_desc *m, unsigned char *mem, const char *entry, long n, const void *const *inputs, void *const *outputs) {
  char msg[512], single[256];
  size_t len = 0;
  const kiln_entry *e = kiln_find_entry(m, entry), *one;
  long b, full, r, k;
  int i, rc;
  if (!e) {
    put(msg, sizeof msg, &len, "no entry point '");
    put(msg, sizeof msg, &len, entry ? entry : "(null)");
    put(msg, sizeof msg, &len, "'");
    return kiln_fail(KILN_ERR_MISSING, msg);
  }
  if (!mem || (e->n_inputs && !inputs)) return kiln_fail(KILN_ERR_ARG, "kiln_run_rows: memory or inputs is NULL");
  for (i = 0; i < e->n_inputs; i++)
    if (!inputs[i]) return kiln_fail(KILN_ERR_ARG, "kiln_run_rows: an input is NULL");
  b = e->batch_size;
  put(msg, sizeof msg, &len, "'");
  put(msg, sizeof msg, &len, e->name);
  if (n < 1) {
    put(msg, sizeof msg, &len, "' needs at least one row, got ");
    put_long(msg, sizeof msg, &len, n);
    return kiln_fail(KILN_ERR_ARG, msg);
  }
  if (b < 1 || (e->fixed_rows && n != b)) {
    put(msg, sizeof msg, &len, "' takes exactly ");
    put_long(msg, sizeof msg, &len, b);
    put(msg, sizeof msg, &len, " rows, got ");
    put_long(msg, sizeof msg, &len, n);
    put(msg, sizeof msg, &len, ": its rows are not independent (");
    put(msg, sizeof msg, &len, e->fixed_rows ? e->fixed_rows : "no batch size");
    put(msg, sizeof msg, &len, ")");
    return kiln_fail(KILN_ERR_SHAPE, msg);
  }
  /* fixed rows: the one batch as it is (a training step's scalar inputs have no rows) */
  if (e->fixed_rows) return kiln_run_entry(e, mem, inputs, outputs);
  len = 0;
  /* the single-row variant "<entry>_1", or the entry itself at batch 1 */
  put(single, sizeof single, &len, e->name);
  put(single, sizeof single, &len, "_1");
  one = b == 1 ? e : kiln_find_entry(m, single);
  full = n / b;
  r = n % b;
  for (k = 0; k < full; k++)
    if ((rc = run_chunk(e, mem, k * b, b, inputs, outputs)) != KILN_OK) return rc;
  if (r && one && 4 * r < b) {
    for (k = 0; k < r; k++)
      if ((rc = run_chunk(one, mem, full * b + k, 1, inputs, outputs)) != KILN_OK) return rc;
  } else if (r) {
    if ((rc = run_chunk(e, mem, full * b, r, inputs, outputs)) != KILN_OK) return rc;
  }
  return KILN_OK;
}
