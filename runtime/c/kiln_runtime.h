/* kiln C runtime: the interface between generated model code (model.o, model_desc.c) and its host programs. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stddef.h> /* NULL and size_t, for generated tables and callers */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KILN_F32 = 0, KILN_I32 = 1, KILN_BOOL = 2, KILN_I8 = 3 } kiln_dtype; /* int8: quantized weights */

/* offset: byte offset in the model memory; size: elements */
/* the most dimensions a tensor may have (as the graph IR's MAX_RANK) */
#define KILN_MAX_RANK 32
typedef struct { const char *name; kiln_dtype dtype; int rank; long shape[KILN_MAX_RANK]; long offset; long size; } kiln_tensor;

/* after an entry runs: memmove(mem+to, mem+from, bytes) (update values not written in place) */
typedef struct { long from, to, bytes; } kiln_copy;

typedef struct {
  const char *name;
  void (*run)(unsigned char *mem);
  int n_inputs; const kiln_tensor *inputs;
  int n_outputs; const kiln_tensor *outputs;
  int n_copies; const kiln_copy *copies;
  int batch_size;
  /* NULL: the rows are independent, and kiln_run_rows runs any number of them in chunks of batch_size; else why
     the entry takes exactly batch_size rows (a training step, or a model that mixes rows) */
  const char *fixed_rows;
} kiln_entry;

/* constant bytes to copy into memory at init */
typedef struct { long offset; long bytes; const unsigned char *data; } kiln_segment;

typedef struct {
  long memory_bytes; long arena_bytes;
  int n_params; const kiln_tensor *params;     /* weights then optimizer state, Keras names like "dense/kernel" */
  int n_entries; const kiln_entry *entries;    /* "predict", and "trainStep" when compiled with --train */
  int n_segments; const kiln_segment *segments; /* constants (and the weights with --embed-weights) */
  int weights_embedded;
} kiln_model_desc;

/* Status codes: every int-returning function returns KILN_OK (0) or one of these; kiln_error() says why. */
enum {
  KILN_OK = 0,
  KILN_ERR_IO = 1,       /* a file could not be opened, read or written */
  KILN_ERR_FORMAT = 2,   /* a file is malformed or truncated (safetensors, .npy) */
  KILN_ERR_DTYPE = 3,    /* a tensor has the wrong or an unsupported dtype */
  KILN_ERR_SHAPE = 4,    /* a tensor has the wrong shape */
  KILN_ERR_MISSING = 5,  /* a weight or an entry point is missing */
  KILN_ERR_ARG = 6,      /* a bad argument (NULL, misaligned memory, inconsistent model description) */
  KILN_ERR_NOMEM = 7     /* malloc failed (never on the inference path) */
};

/* Two builds: hosted (kiln_runtime.c, which includes kiln_core.c) has everything below; freestanding (kiln_core.c
   alone, -DKILN_FREESTANDING: no stdio, malloc, threads or files) has kiln_error (the code's name, no message),
   kiln_dtype_*, kiln_init (weights_path NULL: the weights are embedded), kiln_find_entry, kiln_run, kiln_run_entry,
   and a serial kiln_parallel_for. */

/* The message of the last error (one line, no newline); "" if none. Not thread-safe. */
const char *kiln_error(void);

/* Bytes per element (4, 4, 1) and the Keras/NumPy name ("float32", "int32", "bool"). */
int kiln_dtype_size(kiln_dtype dtype);
const char *kiln_dtype_name(kiln_dtype dtype);

/* Checks the description, zeroes mem, copies the segments in, then, if weights_path is non-NULL, loads every
   param from that safetensors file, checked as strictly as the reference parser checks it, each param's dtype and
   shape against the model (other tensors in the file, checked the same way, are ignored). weights_path may be
   NULL only when the weights are embedded. mem: memory_bytes bytes, 64-byte aligned. An inference-only artifact keeps
   what it computes from the params alone (int8 matmuls' packed weight columns) from its first call after kiln_init:
   params written into mem by other means are seen after the next kiln_init, which zeroes those caches. */
int kiln_init(const kiln_model_desc *m, unsigned char *mem, const char *weights_path);

/* An entry with an all-reduce in its graph (a synchronized BatchNormalization's batch statistics while training) calls
   kiln_allreduce(buf, n) after the kernel that writes buf: the sum of buf[0..n) over the processes of a data-parallel
   step must replace it, the same bits on every process, before the entry goes on. It calls kiln_allreduce_hook when
   set (model_train under MPI); unset, one process: buf is its own sum. */
extern void (*kiln_allreduce_hook)(float *buf, long n);
void kiln_allreduce(float *buf, long n);

/* The entry point named `name`, or NULL. */
const kiln_entry *kiln_find_entry(const kiln_model_desc *m, const char *name);

/* Copies inputs[i] (entry->inputs[i].size elements each; a NULL pointer leaves that input's memory as it is)
   into mem, runs the entry, applies its copies, and copies the outputs out (outputs or outputs[i] may be NULL).
   inputs[i] == mem + entry->inputs[i].offset (an input written where the entry reads it; no entry writes there)
   is not copied: here and in kiln_run_rows, whose rows [0, batch_size) of an input may lie there. */
int kiln_run(const kiln_model_desc *m, unsigned char *mem, const char *entry, const void *const *inputs, void *const *outputs);
int kiln_run_entry(const kiln_entry *e, unsigned char *mem, const void *const *inputs, void *const *outputs);

/* Hosted only, from here to kiln_npy_write_all.

   An entry whose outputs before its preds lie side by side (gradStep under --distributed mpi) calls
   kiln_grads_ready(from) after each statement that completes more of them: elements [from, end) of that block are
   final, and nothing later in the entry reads or writes them. It calls kiln_grads_hook when set (model_train's
   all-reduce under MPI, kiln_mpi.c). */
extern void (*kiln_grads_hook)(long from);
void kiln_grads_ready(long from);

/* Writes every param as safetensors (Keras names, in order, metadata {"format":"kiln"}), like runtime/safetensors.ts.
   Output files (here and the .npy writers) go to PATH.<pid>.tmp, renamed over PATH once complete: a failure leaves
   PATH as it was and no partial file. A symbolic link is written through: its target is replaced, the link stays.
   A device or pipe (/dev/stdout) is written in place. */
int kiln_save_weights(const kiln_model_desc *m, const unsigned char *mem, const char *path);

/* .npy: reads '<f4', '<i4', '|b1', and '<f8' / '<i8' converted to float32 / int32; C order (Fortran
   order only where at most one dimension exceeds 1); a NumPy header and exactly the data its shape needs.
   *data is malloc'ed (free it with free()); rank <= KILN_MAX_RANK. */
int kiln_npy_read(const char *path, kiln_dtype *dtype, int *rank, long shape[KILN_MAX_RANK], void **data);
int kiln_npy_write(const char *path, kiln_dtype dtype, int rank, const long *shape, const void *data);

/* Writes n .npy files all or none: each is written whole to its temporary file before any is renamed into place,
   so a failure while writing (a full disk, a directory in the way) leaves every earlier file as it was. */
typedef struct { const char *path; kiln_dtype dtype; int rank; const long *shape; const void *data; } kiln_npy_file;
int kiln_npy_write_all(int n, const kiln_npy_file *files);

/* Calls fn over [0, n) split into contiguous chunks, one per thread of a pthreads pool (KILN_NUM_THREADS, default
   the CPUs this process may use: its affinity mask capped by its cgroup CPU quota; the calling thread takes the
   first chunk). Returns when every chunk is done.
   Nested calls, or calls while another thread uses the pool, run serially on the calling thread. */
void kiln_parallel_for(long n, void (*fn)(long begin, long end, void *ctx), void *ctx);
int kiln_num_threads(void);

/* ---- kiln_rows.c: any number of rows (freestanding: no stdio, malloc or threads) ---- */

/* Runs `entry` on n rows: inputs[i] holds n rows of entry input i and outputs[i] (or NULL) receives n rows of
   output i, each row as the compiled entry's tensor less its first (batch) axis. The rows run in chunks of the
   entry's batch_size (KILN_MAX_BATCH in model.h); the r rows left over run one at a time (entry "<entry>_1") when
   4r < batch_size, else as one chunk padded with zero rows, of which only the r valid output rows are copied out.
   Exact, because the rows are independent (entry->fixed_rows is NULL); an entry with fixed rows takes n ==
   batch_size only. n < 1 is KILN_ERR_ARG, a wrong n for fixed rows KILN_ERR_SHAPE, a missing entry KILN_ERR_MISSING. */
int kiln_run_rows(const kiln_model_desc *m, unsigned char *mem, const char *entry, long n, const void *const *inputs, void *const *outputs);

/* For kiln_rows.c: sets the message kiln_error() returns and returns code. */
int kiln_fail(int code, const char *msg);

/* ---- end kiln_rows.c ---- */

#ifdef __cplusplus
}
#endif

#endif
