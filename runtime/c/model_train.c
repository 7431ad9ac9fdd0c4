/* model_train: trains a kiln model compiled with --train on .npy data (epochs, shuffling, Keras-style progress) and saves its weights. */
#define _POSIX_C_SOURCE 200809L
#include "model.h"
#include "kiln_cli.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern const kiln_model_desc kiln_model;

static unsigned char memory[KILN_MEMORY_BYTES] __attribute__((aligned(64)));

/* With -DKILN_MPI (kiln compile --distributed mpi), data-parallel under mpirun: the model has the training step split
   at the gradients (gradStep, applyGrads); each rank runs gradStep on its share of every global batch, the ranks sum
   the gradients weighted by their rows (kiln_mpi.c), and every rank applies the same mean, so the weights stay
   identical. Rank 0 prints the progress, validates and writes the weights. */
#ifdef KILN_MPI
#include "kiln_mpi.h"
#define TRAIN_ENTRY "gradStep"
#else
#define TRAIN_ENTRY "trainStep"
#endif

#ifndef KILN_DEVICE_ROWS
#define KILN_DEVICE_ROWS(rows, n) ((void)0)
#endif

static const char *usage =
    "usage: model_train [--epochs E] [--batch-size B] [--validation-split F] [--out weights.safetensors]\n"
    "                   [--weights PATH] [--seed S] [--no-shuffle] [--bench N] x.npy y.npy\n"
    "  data files in the trainStep's order: the model inputs, then one target per output\n"
#ifdef KILN_MPI
    "  --batch-size B        must equal the batch size the model was compiled with times the number of ranks\n"
#else
    "  --batch-size B        must equal the batch size the model was compiled with\n"
#endif
    "  --validation-split F  hold out the last fraction F of the rows; reports val_accuracy after each epoch\n"
    "  --out PATH            where to write the trained weights (default weights.safetensors)\n"
    "  --weights PATH        initial weights (default: weights.safetensors next to this executable)\n"
    "  --no-shuffle          train on the rows in file order (Keras's shuffle=False)\n"
#ifdef KILN_MPI
    "  --overlap             all-reduce the gradients during the backward pass (the default where every node has\n"
    "                        more cores than ranks)\n"
    "  --no-overlap          all-reduce the gradients after the backward pass, not during it (the same bits)\n"
#endif
    "  --bench N             time N train steps after a warm-up, print the median, and exit\n";

static uint64_t rng_state;

static uint64_t xorshift(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double value_at(kiln_dtype dt, const void *p, long i) {
  if (dt == KILN_F32) return ((const float *)p)[i];
  if (dt == KILN_I32) return ((const int32_t *)p)[i];
  return ((const unsigned char *)p)[i];
}

static long argmax(kiln_dtype dt, const void *p, long at, long n) {
  long best = 0, i;
  for (i = 1; i < n; i++)
    if (value_at(dt, p, at + i) > value_at(dt, p, at + best)) best = i;
  return best;
}

/* "4ms/step" as Keras 2 writes it */
static void per_step(char *buf, size_t cap, double us) {
  if (us >= 1e6) snprintf(buf, cap, "%.0fs/step", us / 1e6);
  else if (us >= 1e3) snprintf(buf, cap, "%.0fms/step", us / 1e3);
  else snprintf(buf, cap, "%.0fus/step", us);
}

typedef struct {
  const kiln_tensor *t; /* the trainStep input it feeds */
  int on_device;         /* its rows are kept on the device (KILN_DEVICE_DATASET): a step gathers them there */
  kiln_dtype dtype;
  long rows, row_elems, row_bytes;
  unsigned char *data;
  unsigned char *batch; /* one batch, gathered */
} dataset;

static const char *nonfinite(float v) { return v != v ? "nan" : v > 0 ? "inf" : "-inf"; }

/* Values Keras would refuse or train to NaN on: non-finite floats, and sparse labels outside [0, classes) (an
   int32 "target/<output>" is the sparse categorical crossentropy's; the trainStep's "pred/<output>" gives the
   classes). One-hot encoding an out-of-range label gives a zero row, a silent loss of 0. */
static void check_data(const kiln_entry *e, const dataset *s, const char *file) {
  long n = s->rows * s->row_elems, k, classes = 0;
  char msg[1024];
  int i;
  if (s->dtype == KILN_F32) {
    for (k = 0; k < n; k++)
      if (!isfinite(((const float *)s->data)[k])) {
        snprintf(msg, sizeof msg, "%s: value %s at row %ld; training data must be finite", file, nonfinite(((const float *)s->data)[k]), k / s->row_elems);
        die(msg);
      }
  }
  if (s->dtype != KILN_I32 || strncmp(s->t->name, "target/", 7) != 0) return;
  for (i = 0; i < e->n_outputs; i++) {
    const kiln_tensor *o = &e->outputs[i];
    if (strncmp(o->name, "pred/", 5) == 0 && strcmp(o->name + 5, s->t->name + 7) == 0 && o->rank == s->t->rank + 1) classes = o->shape[o->rank - 1];
  }
  for (k = 0; k < n && classes > 0; k++) {
    int32_t v = ((const int32_t *)s->data)[k];
    if (v < 0 || v >= classes) {
      snprintf(msg, sizeof msg, "%s: label %ld at row %ld is outside [0, %ld) (output '%s' has %ld classes)", file, (long)v, k / s->row_elems, classes,
               s->t->name + 7, classes);
      die(msg);
    }
  }
}

/* microseconds of the all-reduce per step: waited for (exposed), and taken in all (overlapped or not), for --bench */
static double allreduce_us, ring_us;

#ifdef KILN_MPI
/* gradStep's outputs before the preds (gradients, state, loss: traceSplitStep) as one vector, applyGrads's input:
   in place in memory when the memory plan put them side by side (--distributed mpi), else gathered into `flat` */
static const kiln_entry *ae;
static float *flat, *reduced;
static void *out[64];
static long n = -1;
static int in_place;

static void mpi_setup(const kiln_entry *e) {
  long at = 0;
  int i;
  ae = kiln_find_entry(&kiln_model, "applyGrads");
  if (!ae || ae->n_inputs != 1 || ae->inputs[0].dtype != KILN_F32) die("the model has no gradStep/applyGrads pair; compile it with --train --distributed mpi");
  in_place = 1;
  for (i = 0, n = 0; i < e->n_outputs && strncmp(e->outputs[i].name, "pred/", 5) != 0; i++) {
    if (e->outputs[i].dtype != KILN_F32) die("gradStep's outputs must be float32");
    in_place &= e->outputs[i].offset == e->outputs[0].offset + n * 4;
    n += e->outputs[i].size;
  }
  if (n != ae->inputs[0].size || i == 0 || strcmp(e->outputs[i - 1].name, "loss") != 0) die("gradStep's outputs do not make applyGrads's input");
  reduced = (float *)(memory + ae->inputs[0].offset); /* the all-reduce writes applyGrads's input */
  if (in_place) {
    flat = (float *)(memory + e->outputs[0].offset);
  } else {
    flat = (float *)malloc((size_t)(n ? n : 1) * sizeof *flat);
    if (!flat) die("out of memory");
    for (i = 0; i < e->n_outputs && strncmp(e->outputs[i].name, "pred/", 5) != 0; i++) out[i] = flat + at, at += e->outputs[i].size;
  }
}

/* kiln_mpi_overlap's dry run: gradStep on whatever memory holds (zeros), its outputs unused */
static void run_grad(void *ctx) {
  if (kiln_run_entry((const kiln_entry *)ctx, memory, NULL, NULL) != KILN_OK) die(kiln_error());
}
#endif

/* One step on this rank's `mine` of the batch's `nb` rows: the trainStep, or under MPI gradStep, the all-reduce and
   applyGrads. Returns the step's loss (the mean of the "loss" output; NAN without one). */
static double train_step(const kiln_entry *e, const void *const *inputs, void *const *outputs, int loss_output, long mine, long nb, long step) {
#ifdef KILN_MPI
  double t0;
  (void)outputs;
  (void)loss_output;
#ifdef KILN_DEVICE_STEP
  /* a GPU build (--target cuda --distributed nccl) does the same on the device: kiln_nccl.h */
  return KILN_DEVICE_STEP(memory, e, inputs, ae, mine, nb, step);
#endif
  /* the gradients of a mean over this rank's rows, weighted by its rows: their sum over the ranks, divided by the
     batch's rows, is the gradient of the mean over the whole batch (the state values and the loss likewise); the
     ring reduces each part of the vector the gradStep completes while the gradStep goes on (kiln_mpi_overlap) */
  kiln_mpi_begin(flat, reduced, n, mine, nb, step);
  if (mine > 0) {
    kiln_mpi_in_step(step); /* its all-reduces (synchronized BatchNormalization) meet the other ranks' */
    if (kiln_run_entry(e, memory, inputs, in_place ? NULL : out) != KILN_OK) die(kiln_error());
  } else {
    memset(flat, 0, (size_t)n * sizeof *flat); /* a partial last batch may leave a rank no rows */
  }
  t0 = now_us();
  ring_us += kiln_mpi_end();
  allreduce_us += now_us() - t0;
  if (kiln_run_entry(ae, memory, NULL, NULL) != KILN_OK) die(kiln_error());
  return reduced[n - 1]; /* the vector ends with the loss */
#else
  double sum = 0;
  long b, n;
  (void)mine;
  (void)nb;
  (void)step;
  if (kiln_run_entry(e, memory, inputs, outputs) != KILN_OK) die(kiln_error());
  if (loss_output < 0) return NAN;
  n = e->outputs[loss_output].size;
  for (b = 0; b < n; b++) sum += ((const float *)outputs[loss_output])[b];
  return n ? sum / (double)n : 0;
#endif
}

int main(int argc, char **argv) {
  int me = 0, ranks = 1;
  kiln_prog = "model_train";
  kiln_flush_denormals();
#ifdef KILN_MPI
  {
    static char prog[64];
    kiln_mpi_init(&argc, &argv, &me, &ranks);
#ifdef KILN_DEVICE_INIT
    KILN_DEVICE_INIT(me, ranks); /* a GPU per rank, and NCCL's communicator */
#endif
    snprintf(prog, sizeof prog, "model_train (rank %d/%d)", me, ranks);
    if (ranks > 1) kiln_prog = prog;
    if (me > 0 && !freopen("/dev/null", "w", stdout)) die("cannot silence stdout"); /* rank 0 alone shows the progress */
  }
#endif
  const kiln_entry *e = kiln_find_entry(&kiln_model, TRAIN_ENTRY), *pe = kiln_find_entry(&kiln_model, "predict");
  const char *out = "weights.safetensors", *weights = NULL, *files[64];
  const void *inputs[64];
  void *outputs[64];
  dataset d[64] = {{0}};
  long epochs = 1, batch = 0, bench = 0, seed = 1, rows = 0, n_train, n_val, steps, *perm, k, step, iteration = 0, local, lo;
  double split = 0;
  int n_files = 0, n_data = 0, rng_input = -1, row_input = -1, rows_input = -1, loss_output = -1, has_loss, shuffle = 1, overlap = -1, i, j;
  int32_t counter = 0, valid = 0, first_row = 0;
  float *loss = NULL;
  char msg[1024], s1[160];

  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--epochs") == 0) { epochs = parse_long(a, v, 0, LONG_MAX); i++; }
    else if (strcmp(a, "--batch-size") == 0) { batch = parse_long(a, v, 1, LONG_MAX); i++; }
    else if (strcmp(a, "--seed") == 0) { seed = parse_long(a, v, 0, LONG_MAX); i++; }
    else if (strcmp(a, "--bench") == 0) { bench = parse_long(a, v, 1, KILN_MAX_BENCH); i++; }
    else if (strcmp(a, "--no-shuffle") == 0) shuffle = 0;
#ifdef KILN_MPI
    else if (strcmp(a, "--no-overlap") == 0) overlap = 0;
    else if (strcmp(a, "--overlap") == 0) overlap = 1;
#endif
    else if (strcmp(a, "--out") == 0 && v) { out = v; i++; }
    else if (strcmp(a, "--weights") == 0 && v) { weights = v; i++; }
    else if (strcmp(a, "--validation-split") == 0) {
      char *end;
      split = v ? strtod(v, &end) : -1;
      if (!v || *end != '\0' || !(split >= 0 && split < 1)) die("--validation-split needs a number in [0, 1)");
      i++;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
#ifdef KILN_MPI
      kiln_mpi_finalize();
#endif
      return 0;
    }
    else if (a[0] == '-' && a[1] == '-') {
      snprintf(msg, sizeof msg, "unknown or incomplete option %s (see --help)", a);
      die(msg);
    } else if (n_files < 64) files[n_files++] = a;
    else die("too many data files");
  }
#ifdef KILN_MPI
  if (!e) die("this model has no gradStep entry; compile it with --train --distributed mpi");
#else
  if (!e) die(kiln_find_entry(&kiln_model, "gradStep") ? "this model_train was not built for MPI; compile with --distributed mpi" : "this model has no trainStep entry; compile it with --train");
#endif
  if (e->n_inputs > 64 || e->n_outputs > 64) die("the trainStep has more than 64 inputs or outputs");
  /* the global batch: each rank runs `local` rows of it, rank r rows [r * local, (r + 1) * local) */
  local = e->batch_size;
  lo = me * local;
  if (batch && batch != local * ranks) {
    if (ranks > 1)
      snprintf(msg, sizeof msg, "the gradStep was compiled for %ld rows per rank: on %d ranks the batch size is %ld, not %ld; recompile with --batch-size %ld / %d",
               local, ranks, local * ranks, batch, batch, ranks);
    else
      snprintf(msg, sizeof msg, "the trainStep was compiled for batch size %ld, not %ld; recompile with --batch-size %ld", local, batch, batch);
    die(msg);
  }
  batch = local * ranks;
  for (i = 0; i < e->n_inputs; i++) {
    if (strcmp(e->inputs[i].name, "rng_counter") == 0) {
      if (e->inputs[i].dtype != KILN_I32 || e->inputs[i].size != 1) die("input rng_counter must be an int32 scalar");
      rng_input = i;
    } else if (strcmp(e->inputs[i].name, "rng_row") == 0) { /* gradStep's random draws go by the batch's row */
      if (e->inputs[i].dtype != KILN_I32 || e->inputs[i].size != 1) die("input rng_row must be an int32 scalar");
      row_input = i;
    } else if (strcmp(e->inputs[i].name, "rows") == 0 && e->inputs[i].rank == 0) { /* how many leading rows are data */
      if (e->inputs[i].dtype != KILN_I32) die("input rows must be an int32 scalar");
      rows_input = i;
    } else {
      d[n_data++].t = &e->inputs[i];
    }
  }
  for (i = 0; i < e->n_outputs && loss_output < 0; i++)
    if (strcmp(e->outputs[i].name, "loss") == 0 && e->outputs[i].dtype == KILN_F32) loss_output = i;
#ifdef KILN_MPI
  has_loss = 1; /* the end of gradStep's "grads" */
#else
  has_loss = loss_output >= 0;
#endif
  if (n_files != n_data) {
    size_t n = (size_t)snprintf(msg, sizeof msg, "trainStep takes %d data .npy file(s) in this order (inputs, then targets):", n_data);
    for (j = 0; j < n_data && n < sizeof msg; j++) n += (size_t)snprintf(msg + n, sizeof msg - n, "%s %s", j ? "," : "", d[j].t->name);
    if (n < sizeof msg) snprintf(msg + n, sizeof msg - n, "; got %d", n_files);
    die(msg);
  }
  if (batch < 1) die("the trainStep has no batch size");
  if (!weights && !kiln_model.weights_embedded) weights = default_weights(argv[0]);
  if (kiln_init(&kiln_model, memory, weights) != KILN_OK) die(kiln_error());
#ifdef KILN_MPI
  mpi_setup(e);
#ifndef KILN_DEVICE_STEP
  if (overlap < 0) overlap = !kiln_mpi_crowded();
  if (overlap && in_place) kiln_mpi_overlap(run_grad, (void *)e);
#endif
#endif
  (void)overlap;

  /* load the data: every file has the same number of rows; a row has the size of one batch row of its input */
  for (i = 0; i < n_data; i++) {
    dataset *s = &d[i];
    int rank;
    long shape[KILN_MAX_RANK], elems = 1;
    void *data;
    if (kiln_npy_read(files[i], &s->dtype, &rank, shape, &data) != KILN_OK) die(kiln_error());
    s->data = (unsigned char *)data;
    if (s->dtype != s->t->dtype) {
      snprintf(msg, sizeof msg, "%s: dtype %s, but '%s' is %s", files[i], kiln_dtype_name(s->dtype), s->t->name, kiln_dtype_name(s->t->dtype));
      die(msg);
    }
    if (rank < 1 || s->t->rank < 1 || s->t->shape[0] != local) {
      snprintf(msg, sizeof msg, "%s: '%s' (shape %s) has no batch dimension", files[i], s->t->name, shape_str(s1, sizeof s1, s->t->rank, s->t->shape));
      die(msg);
    }
    for (j = 1; j < rank; j++) elems *= shape[j];
    s->rows = shape[0];
    s->row_elems = s->t->size / local;
    s->row_bytes = s->row_elems * kiln_dtype_size(s->dtype);
    if (elems != s->row_elems) {
      char s2[160];
      snprintf(msg, sizeof msg, "%s: shape %s does not fit '%s' of shape %s (one row must have %ld values)", files[i],
               shape_str(s1, sizeof s1, rank, shape), s->t->name, shape_str(s2, sizeof s2, s->t->rank, s->t->shape), s->row_elems);
      die(msg);
    }
    if (i > 0 && s->rows != rows) {
      snprintf(msg, sizeof msg, "%s has %ld rows, but %s has %ld", files[i], s->rows, files[0], rows);
      die(msg);
    }
    rows = s->rows;
    check_data(e, s, files[i]);
    s->batch = (unsigned char *)malloc((size_t)(s->t->size ? s->t->size : 1) * (size_t)kiln_dtype_size(s->dtype));
    if (!s->batch) die("out of memory");
  }
  n_train = (long)ceil((double)rows * (1.0 - split)); /* as Keras: the last rows are held out */
  if (n_train > rows) n_train = rows;
  n_val = rows - n_train;
  /* as Keras, the rows left after the whole batches train as a last, smaller batch: padded with zero rows, which the
     trainStep's "rows" input leaves out of the loss and the gradients */
  steps = rows_input >= 0 ? (n_train + batch - 1) / batch : n_train / batch;
  if (steps < 1) {
    snprintf(msg, sizeof msg, "%ld training rows are fewer than one batch of %ld", n_train, batch);
    die(msg);
  }
  if (n_train % batch && rows_input < 0 && me == 0)
    fprintf(stderr, "model_train: %ld of the %ld training rows are left out of each epoch%s: the trainStep runs whole batches of %ld only (%s)\n",
            n_train % batch, n_train, shuffle ? " (different ones each epoch, as the rows are shuffled)" : "", batch,
            e->fixed_rows ? e->fixed_rows : "compiled so");
#ifdef KILN_DEVICE_DATASET
  for (i = 0; i < n_data; i++) d[i].on_device = KILN_DEVICE_DATASET(d[i].t->offset, d[i].data, rows, d[i].row_bytes) == 0;
#endif
  /* an input kept on the device is NULL here: its host memory stays zero, so the rows a partial batch's gather does
     not fill are copied in as zero rows */
  for (i = 0, j = 0; i < e->n_inputs; i++)
    if (i == rng_input) inputs[i] = &counter;
    else if (i == row_input) inputs[i] = &first_row;
    else if (i == rows_input) inputs[i] = &valid;
    else inputs[i] = d[j].on_device ? NULL : (const void *)d[j].batch, j++;
  for (i = 0; i < e->n_outputs; i++) outputs[i] = NULL;
  if (loss_output >= 0) {
    loss = (float *)malloc((size_t)(e->outputs[loss_output].size ? e->outputs[loss_output].size : 1) * sizeof *loss);
    if (!loss) die("out of memory");
    outputs[loss_output] = loss;
  }
  perm = (long *)malloc((size_t)n_train * sizeof *perm);
  if (!perm) die("out of memory");
  for (k = 0; k < n_train; k++) perm[k] = k;
  rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)seed;
  first_row = (int32_t)lo; /* this rank's rows of a batch are rows lo.. of it: their Dropout masks are one process's */

  if (bench) {
    long warm = bench / 10 > 3 ? bench / 10 : 3;
    double *times = (double *)malloc((size_t)bench * sizeof *times), *reduce = (double *)malloc((size_t)bench * sizeof *reduce),
           *ring = (double *)malloc((size_t)bench * sizeof *ring);
    long whole = n_train / batch; /* whole batches, or the one partial batch when there are fewer rows */
    long nb = whole ? batch : n_train, mine = nb - lo < 0 ? 0 : nb - lo > local ? local : nb - lo;
    if (!times || !reduce || !ring) die("out of memory");
    valid = (int32_t)mine;
    for (k = 0; k < warm + bench; k++) {
      double t0, r0 = allreduce_us, g0 = ring_us;
      long b = whole ? k % whole : 0;
      for (i = 0; i < n_data; i++)
        if (!d[i].on_device) {
          memset(d[i].batch, 0, (size_t)(local * d[i].row_bytes));
          memcpy(d[i].batch, d[i].data + (b * batch + lo) * d[i].row_bytes, (size_t)(mine * d[i].row_bytes));
        }
      KILN_DEVICE_ROWS(perm + b * batch + lo, mine);
      counter = (int32_t)k;
      t0 = now_us();
      train_step(e, inputs, outputs, loss_output, mine, nb, k);
      if (k >= warm) times[k - warm] = now_us() - t0, reduce[k - warm] = allreduce_us - r0, ring[k - warm] = ring_us - g0;
    }
    qsort(times, (size_t)bench, sizeof *times, cmp_double);
    qsort(reduce, (size_t)bench, sizeof *reduce, cmp_double);
    qsort(ring, (size_t)bench, sizeof *ring, cmp_double);
#define MEDIAN(v) (bench % 2 ? v[bench / 2] : (v[bench / 2 - 1] + v[bench / 2]) / 2)
    printf("median %.2f us", MEDIAN(times));
    /* the ring's time, and the part of it the step waited for (the rest overlapped the gradStep) */
#ifdef KILN_MPI
    if (ranks > 1 && ring_us > 0) printf(" (all-reduce %.2f us, %.2f us of it exposed, %d segment%s)", MEDIAN(ring), MEDIAN(reduce), kiln_mpi_segments(), kiln_mpi_segments() > 1 ? "s" : "");
    else
#endif
    if (ranks > 1 && allreduce_us > 0) printf(" (all-reduce %.2f us)", MEDIAN(reduce));
    printf("\n");
#ifdef KILN_MPI
    kiln_mpi_finalize();
#endif
    return 0;
  }

  for (k = 0; k < epochs; k++) {
    double t0 = now_us(), loss_sum = 0, us;
    char ps[32];
    printf("Epoch %ld/%ld\n", k + 1, epochs);
    fflush(stdout);
    for (step = n_train - 1; shuffle && step > 0; step--) { /* Fisher-Yates */
      long r = (long)(xorshift() % (uint64_t)(step + 1)), tmp = perm[step];
      perm[step] = perm[r];
      perm[r] = tmp;
    }
    for (step = 0; step < steps; step++) {
      /* the batch's nb rows, of which this rank takes `mine` from row lo on (none, when a last batch is short) */
      long b, nb = n_train - step * batch < batch ? n_train - step * batch : batch, mine = nb - lo < 0 ? 0 : nb - lo > local ? local : nb - lo;
      double l;
      for (i = 0; i < n_data; i++) {
        if (d[i].on_device) continue;
        for (b = 0; b < mine; b++)
          memcpy(d[i].batch + b * d[i].row_bytes, d[i].data + perm[step * batch + lo + b] * d[i].row_bytes, (size_t)d[i].row_bytes);
        memset(d[i].batch + mine * d[i].row_bytes, 0, (size_t)((local - mine) * d[i].row_bytes));
      }
      KILN_DEVICE_ROWS(perm + step * batch + lo, mine);
      valid = (int32_t)mine;
      /* the step's random draws (Dropout) keyed by t on every rank, each drawing its own rows' (rng_row) */
      counter = (int32_t)iteration++;
      l = train_step(e, inputs, outputs, loss_output, mine, nb, iteration);
      if (has_loss) {
        if (!isfinite(l)) { /* as Keras's TerminateOnNaN; the weights file stays as it was */
          snprintf(msg, sizeof msg, "epoch %ld, batch %ld: invalid loss %s, terminating training; %s was not written", k + 1, step + 1,
                   nonfinite((float)l), out);
          die(msg);
        }
        loss_sum += l * (double)nb; /* as Keras: the epoch's loss weighs each batch by its rows */
      }
    }
    us = now_us() - t0;
    per_step(ps, sizeof ps, us / (double)steps);
    printf("%ld/%ld - %.0fs - %s", steps, steps, us / 1e6, ps);
    if (has_loss) printf(" - loss: %.4f", loss_sum / (double)(rows_input >= 0 ? n_train : steps * batch));

    if (n_val > 0 && me == 0) {
      /* predict over the held-out rows: all at once where its rows are independent (kiln_run_rows runs them in
         chunks), else batch by batch with the last batch padded with zeros */
      long pb = pe ? pe->batch_size : 0, classes, correct = 0, r, chunk;
      const kiln_tensor *o;
      const dataset *labels;
      void *pin[64], *pout[64];
      if (!pe || pe->n_inputs > n_data - 1 || pe->n_outputs < 1 || pb < 1) die("validation needs a predict entry with batch size");
      o = &pe->outputs[0];
      labels = &d[pe->n_inputs];
      classes = o->size / pb;
      chunk = pe->fixed_rows ? pb : n_val;
      for (i = 0; i < pe->n_inputs; i++) {
        if (pe->inputs[i].dtype != d[i].dtype || pe->inputs[i].size / pb != d[i].row_elems) die("predict inputs do not match the trainStep inputs");
        pin[i] = calloc((size_t)(chunk * d[i].row_elems), (size_t)kiln_dtype_size(pe->inputs[i].dtype));
        if (!pin[i]) die("out of memory");
      }
      for (i = 0; i < pe->n_outputs; i++) pout[i] = NULL;
      pout[0] = malloc((size_t)(chunk * classes > 0 ? chunk * classes : 1) * (size_t)kiln_dtype_size(o->dtype));
      if (!pout[0]) die("out of memory");
      if (!(labels->row_elems == 1 || labels->row_elems == classes)) die("cannot compare the first output with its targets for val_accuracy");
      for (r = n_train; r < rows; r += chunk) {
        long n = rows - r < chunk ? rows - r : chunk, b;
        for (i = 0; i < pe->n_inputs; i++) {
          memset(pin[i], 0, (size_t)(chunk * d[i].row_bytes));
          memcpy(pin[i], d[i].data + r * d[i].row_bytes, (size_t)(n * d[i].row_bytes));
        }
        if ((pe->fixed_rows ? kiln_run_entry(pe, memory, (const void *const *)pin, pout)
                            : kiln_run_rows(&kiln_model, memory, pe->name, n, (const void *const *)pin, pout)) != KILN_OK)
          die(kiln_error());
        for (b = 0; b < n; b++) {
          long row = r + b, pred, want;
          if (classes == 1) { /* one sigmoid unit: threshold at 0.5 */
            pred = value_at(o->dtype, pout[0], b) > 0.5;
            want = value_at(labels->dtype, labels->data, row) > 0.5;
          } else {
            pred = argmax(o->dtype, pout[0], b * classes, classes);
            want = labels->row_elems == 1 ? (long)floor(value_at(labels->dtype, labels->data, row) + 0.5)
                                          : argmax(labels->dtype, labels->data, row * classes, classes);
          }
          correct += pred == want;
        }
      }
      printf(" - val_accuracy: %.4f", (double)correct / (double)n_val);
      for (i = 0; i < pe->n_inputs; i++) free(pin[i]);
      free(pout[0]);
    }
    printf("\n");
    fflush(stdout);
  }
#ifdef KILN_SYNC_PARAMS
  KILN_SYNC_PARAMS(); /* a device build (cuda) keeps the trained params there until asked */
#endif
#ifdef KILN_MPI
  if (me > 0) { /* every rank holds the same weights: rank 0 writes them */
    kiln_mpi_finalize();
    return 0;
  }
#endif
  for (i = 0; i < kiln_model.n_params; i++) { /* a NaN that reached the weights without reaching the loss */
    const kiln_tensor *w = &kiln_model.params[i];
    for (k = 0; w->dtype == KILN_F32 && k < w->size; k++)
      if (!isfinite(((const float *)(memory + w->offset))[k])) {
        snprintf(msg, sizeof msg, "trained weight '%s' holds %s; %s was not written", w->name, nonfinite(((const float *)(memory + w->offset))[k]), out);
        die(msg);
      }
  }
  if (kiln_save_weights(&kiln_model, memory, out) != KILN_OK) die(kiln_error());
  printf("Saved trained weights to %s\n", out);
#ifdef KILN_MPI
  kiln_mpi_finalize();
#endif
  return 0;
}
