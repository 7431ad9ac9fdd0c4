/* kiln C runtime core: model init, entry lookup and calls, error codes. No stdio, malloc, threads or files: it builds
   freestanding (-DKILN_FREESTANDING, for microcontrollers) and is included by kiln_runtime.c for the hosted build. */
#if !defined(KILN_FREESTANDING) && !defined(KILN_HOSTED)
#error "build kiln_runtime.c (hosted), or kiln_core.c alone with -DKILN_FREESTANDING"
#endif
#include "kiln_runtime.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

#ifdef KILN_FREESTANDING
/* error codes only: no message formatting (no snprintf, and no format strings in flash) */
static int last_error;
#define fail(code, ...) (last_error = (code))

const char *kiln_error(void) {
  static const char *const names[] = {"", "I/O error", "malformed file", "wrong dtype", "wrong shape", "missing weight or entry",
                                      "bad argument", "out of memory"};
  return last_error >= 0 && last_error < (int)(sizeof names / sizeof names[0]) ? names[last_error] : "error";
}
#else
/* the hosted build's messages (kiln_runtime.c): formats one line for kiln_error(), returns code */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(int code, const char *fmt, ...);
#endif

int kiln_dtype_size(kiln_dtype dtype) { return dtype == KILN_BOOL || dtype == KILN_I8 ? 1 : 4; }

const char *kiln_dtype_name(kiln_dtype dtype) {
  switch (dtype) {
    case KILN_F32: return "float32";
    case KILN_I32: return "int32";
    case KILN_BOOL: return "bool";
    case KILN_I8: return "int8";
  }
  return "?";
}

/* ------------------------------------------------------ model description */

static int check_tensor(const kiln_model_desc *m, const kiln_tensor *t, const char *what) {
  long count = 1;
  int i;
  (void)what; /* in messages only */
  if (!t->name) return fail(KILN_ERR_ARG, "model description: a %s has no name", what);
  if (t->dtype != KILN_F32 && t->dtype != KILN_I32 && t->dtype != KILN_BOOL && t->dtype != KILN_I8)
    return fail(KILN_ERR_ARG, "model description: %s '%s' has an unknown dtype %d", what, t->name, (int)t->dtype);
  if (t->rank < 0 || t->rank > KILN_MAX_RANK) return fail(KILN_ERR_ARG, "model description: %s '%s' has rank %d", what, t->name, t->rank);
  for (i = 0; i < t->rank; i++) {
    if (t->shape[i] < 0 || (t->shape[i] > 0 && count > LONG_MAX / t->shape[i]))
      return fail(KILN_ERR_ARG, "model description: %s '%s' has a bad shape", what, t->name);
    count *= t->shape[i];
  }
  if (count != t->size)
    return fail(KILN_ERR_ARG, "model description: %s '%s' has size %ld but its shape has %ld elements", what, t->name, t->size, count);
  if (t->offset < 0 || t->size > (m->memory_bytes - t->offset) / kiln_dtype_size(t->dtype))
    return fail(KILN_ERR_ARG, "model description: %s '%s' at offset %ld lies outside the %ld bytes of memory", what, t->name, t->offset, m->memory_bytes);
  return KILN_OK;
}

static int in_memory(const kiln_model_desc *m, long offset, long bytes) {
  return offset >= 0 && bytes >= 0 && offset <= m->memory_bytes && bytes <= m->memory_bytes - offset;
}

static int check_desc(const kiln_model_desc *m) {
  int i, j, rc;
  if (!m) return fail(KILN_ERR_ARG, "model description is NULL");
  if (m->memory_bytes <= 0 || m->arena_bytes < 0 || m->arena_bytes > m->memory_bytes)
    return fail(KILN_ERR_ARG, "model description: memory of %ld bytes with an arena of %ld bytes", m->memory_bytes, m->arena_bytes);
  if (m->n_params < 0 || m->n_entries < 0 || m->n_segments < 0 || (m->n_params && !m->params) ||
      (m->n_entries && !m->entries) || (m->n_segments && !m->segments))
    return fail(KILN_ERR_ARG, "model description: bad params, entries or segments");
  for (i = 0; i < m->n_params; i++)
    if ((rc = check_tensor(m, &m->params[i], "param"))) return rc;
  for (i = 0; i < m->n_segments; i++) {
    const kiln_segment *s = &m->segments[i];
    if (!in_memory(m, s->offset, s->bytes) || (s->bytes && !s->data))
      return fail(KILN_ERR_ARG, "model description: segment %d (%ld bytes at %ld) lies outside memory", i, s->bytes, s->offset);
  }
  for (i = 0; i < m->n_entries; i++) {
    const kiln_entry *e = &m->entries[i];
    if (!e->name || !e->run) return fail(KILN_ERR_ARG, "model description: entry %d has no name or function", i);
    if (e->n_inputs < 0 || e->n_outputs < 0 || e->n_copies < 0 || (e->n_inputs && !e->inputs) ||
        (e->n_outputs && !e->outputs) || (e->n_copies && !e->copies) || e->batch_size < 0)
      return fail(KILN_ERR_ARG, "model description: entry '%s' has bad inputs, outputs or copies", e->name);
    for (j = 0; j < e->n_inputs; j++)
      if ((rc = check_tensor(m, &e->inputs[j], "input"))) return rc;
    for (j = 0; j < e->n_outputs; j++)
      if ((rc = check_tensor(m, &e->outputs[j], "output"))) return rc;
    for (j = 0; j < e->n_copies; j++) {
      const kiln_copy *c = &e->copies[j];
      if (!in_memory(m, c->from, c->bytes) || !in_memory(m, c->to, c->bytes))
        return fail(KILN_ERR_ARG, "model description: copy %d of entry '%s' lies outside memory", j, e->name);
    }
  }
  return KILN_OK;
}


/* Checks the description and the memory, zeroes it and copies the segments in (weights_file: whether a weights file
   will be loaded after). */
static int init_memory(const kiln_model_desc *m, unsigned char *mem, int weights_file) {
  int i, rc;
  if ((rc = check_desc(m))) return rc;
  if (!mem) return fail(KILN_ERR_ARG, "kiln_init: memory is NULL");
  if ((uintptr_t)mem % 64 != 0) return fail(KILN_ERR_ARG, "kiln_init: memory must be 64-byte aligned");
  if (!weights_file && !m->weights_embedded && m->n_params > 0)
    return fail(KILN_ERR_ARG, "kiln_init: the weights are not embedded; a weights file is needed");
  memset(mem, 0, (size_t)m->memory_bytes);
  for (i = 0; i < m->n_segments; i++)
    if (m->segments[i].bytes) memcpy(mem + m->segments[i].offset, m->segments[i].data, (size_t)m->segments[i].bytes);
  return KILN_OK;
}

#ifdef KILN_FREESTANDING
/* no files: the weights are embedded (in flash, read in place by the model code) */
int kiln_init(const kiln_model_desc *m, unsigned char *mem, const char *weights_path) {
  last_error = KILN_OK;
  if (weights_path) return fail(KILN_ERR_ARG, "kiln_init: the freestanding runtime reads no files");
  return init_memory(m, mem, 0);
}

/* kiln_rows.c's error hook (kiln_runtime.h): the code only, as every freestanding error */
int kiln_fail(int code, const char *msg) {
  (void)msg;
  return last_error = code;
}

/* no threads: every parallel loop runs on the calling thread */
void kiln_parallel_for(long n, void (*fn)(long begin, long end, void *ctx), void *ctx) {
  if (n > 0) fn(0, n, ctx);
}

int kiln_num_threads(void) { return 1; }
#endif

/* ------------------------------------------------------------- all-reduce */

void (*kiln_allreduce_hook)(float *buf, long n);

void kiln_allreduce(float *buf, long n) {
  if (kiln_allreduce_hook) kiln_allreduce_hook(buf, n);
}

/* ------------------------------------------------------------------- run */

const kiln_entry *kiln_find_entry(const kiln_model_desc *m, const char *name) {
  int i;
  if (!m || !name) return NULL;
  for (i = 0; i < m->n_entries; i++)
    if (strcmp(m->entries[i].name, name) == 0) return &m->entries[i];
  return NULL;
}

/* Large copies (a batch of inputs) in 64 KiB blocks on the thread pool. */
typedef struct { unsigned char *dst; const unsigned char *src; size_t bytes; } copy_job;
#define COPY_BLOCK 65536L

static void copy_blocks(long begin, long end, void *ctx) {
  const copy_job *j = (const copy_job *)ctx;
  size_t from = (size_t)begin * COPY_BLOCK, to = (size_t)end * COPY_BLOCK;
  memcpy(j->dst + from, j->src + from, (to < j->bytes ? to : j->bytes) - from);
}

static void copy_in(unsigned char *dst, const void *src, size_t bytes) {
  copy_job j;
  if (bytes < 4 * COPY_BLOCK) {
    memcpy(dst, src, bytes);
    return;
  }
  j.dst = dst; j.src = (const unsigned char *)src; j.bytes = bytes;
  kiln_parallel_for((long)((bytes + COPY_BLOCK - 1) / COPY_BLOCK), copy_blocks, &j);
}

int kiln_run_entry(const kiln_entry *e, unsigned char *mem, const void *const *inputs, void *const *outputs) {
  int i;
  if (!e || !mem) return fail(KILN_ERR_ARG, "kiln_run: entry or memory is NULL");
  if (inputs)
    for (i = 0; i < e->n_inputs; i++)
      if (inputs[i] && inputs[i] != mem + e->inputs[i].offset) copy_in(mem + e->inputs[i].offset, inputs[i], (size_t)e->inputs[i].size * (size_t)kiln_dtype_size(e->inputs[i].dtype));
  e->run(mem);
  for (i = 0; i < e->n_copies; i++) memmove(mem + e->copies[i].to, mem + e->copies[i].from, (size_t)e->copies[i].bytes);
  if (outputs)
    for (i = 0; i < e->n_outputs; i++)
      if (outputs[i]) memcpy(outputs[i], mem + e->outputs[i].offset, (size_t)e->outputs[i].size * (size_t)kiln_dtype_size(e->outputs[i].dtype));
  return KILN_OK;
}

int kiln_run(const kiln_model_desc *m, unsigned char *mem, const char *entry, const void *const *inputs, void *const *outputs) {
  const kiln_entry *e = kiln_find_entry(m, entry);
  if (!e) return fail(KILN_ERR_MISSING, "no entry point '%s'%s", entry ? entry : "(null)",
                      entry && strcmp(entry, "trainStep") == 0 ? " (compile with --train)" : "");
  return kiln_run_entry(e, mem, inputs, outputs);
}
