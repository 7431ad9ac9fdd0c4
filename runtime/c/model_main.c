/* model_main: runs a compiled kiln model's predict entry (or another, --entry) on .npy inputs of any number of rows and writes one .npy per output. */
#define _POSIX_C_SOURCE 200809L
#include "kiln_runtime.h"
#include "kiln_cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern const kiln_model_desc kiln_model;

/* the model memory: one zeroed, 64-byte aligned block of kiln_model.memory_bytes, allocated at start-up (the inference
   path never calls malloc). Sized at run time, not by model.h's KILN_MEMORY_BYTES, so that this file does not include
   model.h and its object is the same for every model: the object cache compiles it once, not for each new model. */
static unsigned char *memory;
/* the output files */
static char paths[64][4096];
static kiln_npy_file outs[64];
static long out_shapes[64][KILN_MAX_RANK];

/* n rows through an entry whose rows are independent, in chunks; else its one compiled batch as it is */
static int run(const kiln_entry *e, long n, const void *const *inputs, void *const *outputs) {
  return e->fixed_rows ? kiln_run_entry(e, memory, inputs, outputs) : kiln_run_rows(&kiln_model, memory, e->name, n, inputs, outputs);
}

static const char *usage =
    "usage: model_main [--bench N] [--out DIR] [--weights PATH] [--entry NAME] a.npy b.npy ...\n"
    "  inputs as .npy in manifest order, any number of rows (one per sample); writes <output name>.npy per output into DIR (default .)\n"
    "  --bench N      run N calls after a warm-up and print the median microseconds per call\n"
    "  --weights PATH safetensors weights (default: weights.safetensors next to this executable)\n"
    "  --entry NAME   the entry point to run (default predict; trainStep with --train)\n";

int main(int argc, char **argv) {
  kiln_prog = "model_main";
  kiln_flush_denormals();
  const kiln_entry *e;
  const char *out_dir = ".", *weights = NULL, *entry = "predict", *files[64];
  const void *inputs[64];
  void *outputs[64];
  long bench = 0, rows = 0;
  int n_files = 0, i, j;
  char msg[1024], s1[160], s2[160];

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--bench") == 0) bench = parse_long("--bench", i + 1 < argc ? argv[++i] : NULL, 1, KILN_MAX_BENCH);
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_dir = argv[++i];
    else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) weights = argv[++i];
    else if (strcmp(argv[i], "--entry") == 0 && i + 1 < argc) entry = argv[++i];
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) { fputs(usage, stdout); return 0; }
    else if (argv[i][0] == '-' && argv[i][1] == '-') {
      snprintf(msg, sizeof msg, "unknown or incomplete option %s (see --help)", argv[i]);
      die(msg);
    } else if (n_files < 64) files[n_files++] = argv[i];
    else die("too many input files");
  }
  if (!(e = kiln_find_entry(&kiln_model, entry))) {
    snprintf(msg, sizeof msg, "this model has no entry '%s'%s", entry, strcmp(entry, "trainStep") == 0 ? " (compile with --train)" : "");
    die(msg);
  }
  if (e->n_inputs > 64 || e->n_outputs > 64) die("this model has more than 64 inputs or outputs");
  if (n_files != e->n_inputs) {
    size_t n = (size_t)snprintf(msg, sizeof msg, "%s takes %d input .npy file(s) in this order:", entry, e->n_inputs);
    for (j = 0; j < e->n_inputs && n < sizeof msg; j++) n += (size_t)snprintf(msg + n, sizeof msg - n, "%s %s", j ? "," : "", e->inputs[j].name);
    if (n < sizeof msg) snprintf(msg + n, sizeof msg - n, "; got %d", n_files);
    die(msg);
  }
  if (!weights && !kiln_model.weights_embedded) weights = default_weights(argv[0]);
  {
    unsigned char *block = calloc((size_t)kiln_model.memory_bytes + 64, 1);
    if (!block) die("out of memory");
    memory = block + (64 - (uintptr_t)block % 64) % 64;
  }
  if (kiln_init(&kiln_model, memory, weights) != KILN_OK) die(kiln_error());

  /* rows: the first input's batch dimension, which every input shares; an entry with fixed rows takes its batch size */
  for (i = 0; i < e->n_inputs; i++) {
    const kiln_tensor *t = &e->inputs[i];
    kiln_dtype dt;
    int rank, same;
    long shape[KILN_MAX_RANK];
    void *data;
    if (kiln_npy_read(files[i], &dt, &rank, shape, &data) != KILN_OK) die(kiln_error());
    if (dt != t->dtype) {
      snprintf(msg, sizeof msg, "%s: dtype %s, but input '%s' is %s", files[i], kiln_dtype_name(dt), t->name, kiln_dtype_name(t->dtype));
      die(msg);
    }
    /* fixed rows: exactly the compiled shapes */
    if (i == 0) rows = e->fixed_rows || rank < 1 ? (t->rank ? t->shape[0] : 1) : shape[0];
    same = rank == t->rank && (rank == 0 || shape[0] == (e->fixed_rows ? t->shape[0] : rows));
    for (j = 1; j < rank && same; j++) same = shape[j] == t->shape[j];
    if (!same) {
      int batch_only = rank == t->rank && rank > 0;
      for (j = 1; j < rank && batch_only; j++) batch_only = shape[j] == t->shape[j];
      if (batch_only && e->fixed_rows)
        snprintf(msg, sizeof msg, "%s: batch dimension is %ld, but '%s' takes exactly %ld rows: %s (input '%s' has shape %s)",
                 files[i], shape[0], entry, t->shape[0], e->fixed_rows, t->name, shape_str(s1, sizeof s1, t->rank, t->shape));
      else if (batch_only)
        snprintf(msg, sizeof msg, "%s: %ld rows, but %s has %ld rows (every input has one row per sample)", files[i], shape[0], files[0], rows);
      else if (e->fixed_rows || t->rank < 1)
        snprintf(msg, sizeof msg, "%s: shape %s, but input '%s' has shape %s", files[i], shape_str(s1, sizeof s1, rank, shape), t->name,
                 shape_str(s2, sizeof s2, t->rank, t->shape));
      else
        snprintf(msg, sizeof msg, "%s: shape %s, but input '%s' takes rows of shape %s", files[i], shape_str(s1, sizeof s1, rank, shape), t->name,
                 shape_str(s2, sizeof s2, t->rank - 1, t->shape + 1));
      die(msg);
    }
    inputs[i] = data;
  }
  /* one batch exactly: each input read where the entry reads it, so that no call copies it (ONNX Runtime reads the
     caller's tensors in place; a 784-float row batch of 256 is a 0.8 MB copy per call, 15 % of the int8 seed MLP) */
  if (rows == e->batch_size || e->fixed_rows)
    for (i = 0; i < e->n_inputs; i++) {
      const kiln_tensor *t = &e->inputs[i];
      memcpy(memory + t->offset, inputs[i], (size_t)t->size * (size_t)kiln_dtype_size(t->dtype));
      free((void *)inputs[i]);
      inputs[i] = memory + t->offset;
    }
  for (i = 0; i < e->n_outputs; i++) {
    const kiln_tensor *t = &e->outputs[i];
    long elems = e->fixed_rows ? t->size : t->size / e->batch_size * rows;
    memcpy(out_shapes[i], t->shape, sizeof out_shapes[i]);
    if (!e->fixed_rows) out_shapes[i][0] = rows;
    outputs[i] = malloc((size_t)(elems ? elems : 1) * (size_t)kiln_dtype_size(t->dtype));
    if (!outputs[i]) die("out of memory");
  }

  if (bench) {
    long warm = bench / 10 > 3 ? bench / 10 : 3, k;
    double *times = (double *)malloc((size_t)bench * sizeof *times);
    if (!times) die("out of memory");
    for (k = 0; k < warm; k++) run(e, rows, inputs, outputs);
    for (k = 0; k < bench; k++) {
      double t0 = now_us();
      run(e, rows, inputs, outputs);
      times[k] = now_us() - t0;
    }
    qsort(times, (size_t)bench, sizeof *times, cmp_double);
    printf("median %.2f us\n", bench % 2 ? times[bench / 2] : (times[bench / 2 - 1] + times[bench / 2]) / 2);
    free(times);
  } else if (run(e, rows, inputs, outputs) != KILN_OK) {
    die(kiln_error());
  }

  if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
    snprintf(msg, sizeof msg, "%s: cannot create directory: %s", out_dir, strerror(errno));
    die(msg);
  }
  /* all outputs written before any replaces its old file: a failure leaves every old output as it was */
  for (i = 0; i < e->n_outputs; i++) {
    const kiln_tensor *t = &e->outputs[i];
    char *name;
    int n = snprintf(paths[i], sizeof paths[i], "%s/", out_dir);
    if (n < 0 || (size_t)n >= sizeof paths[i] - 8) die("output directory path is too long");
    name = paths[i] + n;
    if (!t->name[0] || strcmp(t->name, ".") == 0 || strcmp(t->name, "..") == 0) snprintf(name, sizeof paths[i] - (size_t)n, "output_%d.npy", i);
    else snprintf(name, sizeof paths[i] - (size_t)n, "%s.npy", t->name);
    for (; *name; name++)
      if (*name == '/') *name = '_';
    outs[i].path = paths[i];
    outs[i].dtype = t->dtype;
    outs[i].rank = t->rank;
    outs[i].shape = out_shapes[i];
    outs[i].data = outputs[i];
  }
  if (kiln_npy_write_all(e->n_outputs, outs) != KILN_OK) die(kiln_error());
  return 0;
}
