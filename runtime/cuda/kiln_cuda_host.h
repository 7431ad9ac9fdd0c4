/* kiln's CUDA host runtime, included once by every generated model.cu (after model.h, which gives
 * KILN_MEMORY_BYTES, kiln_cuda.h, and model.cu's kiln_resident table of the params its entries update): the device
 * keeps its own copy of the memory block, copied in whole on the first call (and after kiln_cuda_resync()); each
 * call then moves only its entry's inputs in and its outputs out (adjacent ranges as one copy, from the host block
 * pinned), and replays the entry's launches, captured once as a CUDA graph. Updated params and optimizer state
 * stay on the device: kiln_cuda_sync() copies them back into the host block. model_train keeps its data there too
 * (kiln_cuda_dataset) and each step copies in only its row numbers (kiln_cuda_rows), gathered on the device.
 * KILN_CUDA_PROFILE set: the input bytes copied in per call, and the launches' time, on stderr at exit. With
 * KILN_CUDA_EMULATE the same traffic runs on the CPU, a second block standing for device memory. Any number of
 * rows: kiln_run_rows
 * (kiln_rows.c) calls the entry compiled for KILN_MAX_BATCH rows once per chunk, and "<entry>_1" once per row of a
 * short tail, each a call as above (its own captured graph), so a chunk moves only its own inputs and outputs. */
#ifndef KILN_CUDA_HOST_H
#define KILN_CUDA_HOST_H
#include <string.h>

static unsigned char *kiln_synced; /* the host block the device copy mirrors */

/* The next call copies the whole memory block to the device again (after the host changed params in it). */
extern "C" void kiln_cuda_resync(void) { kiln_synced = NULL; }

#ifndef KILN_CUDA_EMULATE
typedef cudaStream_t kiln_stream_t;
typedef cudaGraphExec_t kiln_graph_t;
#define KILN_COPY(mem, from, to, n, stream) KILN_CHECK(cudaMemcpyAsync((mem) + (to), (mem) + (from), (n), cudaMemcpyDeviceToDevice, (stream)))
static unsigned char *kiln_dev;
static cudaStream_t kiln_stream;

/* First use: checks for a GPU, allocates the device copy of the block and the stream. */
static void kiln_cuda_init(void) {
  if (kiln_dev) return;
  kiln_cuda_require_device();
  kiln_cuda_debug = getenv("KILN_CUDA_DEBUG") != NULL;
  KILN_CHECK(cudaMalloc(&kiln_dev, KILN_MEMORY_BYTES));
  KILN_CHECK(cudaStreamCreateWithFlags(&kiln_stream, cudaStreamNonBlocking));
}

/* model_train's datasets kept on the device (kiln_cuda_dataset), and the rows the next call gathers from them
   into its inputs (kiln_cuda_rows): a step then copies in its row numbers, not its rows. */
#define KILN_MAX_SETS 16
static struct { int *rows; long offset, n, row_bytes; } kiln_sets[KILN_MAX_SETS];
static int kiln_n_sets;
static long *kiln_rows_host, *kiln_rows_dev, kiln_rows_n, kiln_rows_cap;
static long kiln_bytes_in, kiln_calls_in; /* per-call input traffic, for KILN_CUDA_PROFILE */

/* Keeps `rows` rows of row_bytes (a multiple of 4) on the device for the input at `offset`; 0 when kept, 1 when
   not (no room: the caller copies its rows in as before). */
extern "C" int kiln_cuda_dataset(long offset, const void *data, long rows, long row_bytes) {
  int *p;
  kiln_cuda_init();
  if (kiln_n_sets == KILN_MAX_SETS || row_bytes % 4 || rows < 1) return 1;
  if (cudaMalloc(&p, (size_t)(rows * row_bytes)) != cudaSuccess) { cudaGetLastError(); return 1; }
  KILN_CHECK(cudaMemcpy(p, data, (size_t)(rows * row_bytes), cudaMemcpyHostToDevice));
  kiln_sets[kiln_n_sets].rows = p;
  kiln_sets[kiln_n_sets].offset = offset;
  kiln_sets[kiln_n_sets].n = rows;
  kiln_sets[kiln_n_sets++].row_bytes = row_bytes;
  return 0;
}

/* The next call's inputs kept by kiln_cuda_dataset are rows[0..n) of their datasets, gathered on the device. */
extern "C" void kiln_cuda_rows(const long *rows, long n) {
  if (n > kiln_rows_cap) {
    if (kiln_rows_host) { KILN_CHECK(cudaFreeHost(kiln_rows_host)); KILN_CHECK(cudaFree(kiln_rows_dev)); }
    KILN_CHECK(cudaMallocHost(&kiln_rows_host, (size_t)n * sizeof *rows));
    KILN_CHECK(cudaMalloc(&kiln_rows_dev, (size_t)n * sizeof *rows));
    kiln_rows_cap = n;
  }
  for (long i = 0; i < n; i++)
    for (int s = 0; s < kiln_n_sets; s++)
      if (rows[i] < 0 || rows[i] >= kiln_sets[s].n) { fprintf(stderr, "kiln: row %ld of a dataset of %ld rows\n", rows[i], kiln_sets[s].n); exit(1); }
  memcpy(kiln_rows_host, rows, (size_t)n * sizeof *rows);
  kiln_rows_n = n;
}

__global__ void kiln_gather_rows(int *to, const int *from, const long *rows, long row_words, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n * row_words) to[i] = from[rows[i / row_words] * row_words + i % row_words];
}

/* Copies [at, at + n) of the block in, but for the inputs the pending gather fills. */
static void kiln_copy_in(unsigned char *host, long at, long n) {
  for (int s = 0; s < kiln_n_sets && kiln_rows_n; s++) {
    long a = kiln_sets[s].offset, b = a + kiln_rows_n * kiln_sets[s].row_bytes;
    if (a < at + n && at < b) {
      if (a > at) kiln_copy_in(host, at, a - at);
      if (b < at + n) kiln_copy_in(host, b, at + n - b);
      return;
    }
  }
  KILN_CHECK(cudaMemcpyAsync(kiln_dev + at, host + at, (size_t)n, cudaMemcpyHostToDevice, kiln_stream));
  kiln_bytes_in += n;
}

/* Copies the updated params (and optimizer state) from the device into the host block the device mirrors. */
extern "C" void kiln_cuda_sync(void) {
  if (!kiln_synced) return; /* nothing ran since the host block was (re)loaded: it is current */
  for (int i = 0; i < kiln_n_resident; i++)
    KILN_CHECK(cudaMemcpyAsync(kiln_synced + kiln_resident[i][0], kiln_dev + kiln_resident[i][0], kiln_resident[i][1], cudaMemcpyDeviceToHost, kiln_stream));
  KILN_CHECK(cudaStreamSynchronize(kiln_stream));
}

/* KILN_CUDA_PROFILE set: the launches alone (no copies), timed with events, averaged on stderr at exit */
static double kiln_profile_ms;
static long kiln_profile_calls;
static void kiln_profile_report(void) {
  if (kiln_calls_in) fprintf(stderr, "kiln cuda: inputs %.0f bytes in per call over %ld calls\n", (double)kiln_bytes_in / kiln_calls_in, kiln_calls_in);
  if (kiln_profile_calls) fprintf(stderr, "kiln cuda: launches %.2f us per call over %ld calls\n", kiln_profile_ms * 1e3 / kiln_profile_calls, kiln_profile_calls);
}

/* Pins the host block the device mirrors (page-locked: copies run at full speed, without a staging copy); a block
   that cannot be pinned is copied from pageable memory as before. */
static void kiln_pin(unsigned char *host) {
  static unsigned char *pinned;
  if (pinned == host) return;
  if (pinned) cudaHostUnregister(pinned);
  pinned = cudaHostRegister(host, KILN_MEMORY_BYTES, cudaHostRegisterDefault) == cudaSuccess ? host : NULL;
  cudaGetLastError(); /* a refusal is not an error of the next launch */
}

/* One call of an entry: `run` issues its launches and copies (captured into *exec on the first call); in and out
   list the {offset, bytes} ranges of the block to move to the device before and back after. */
static void kiln_call(unsigned char *host, void (*run)(unsigned char *, kiln_stream_t), kiln_graph_t *exec,
                      const long (*in)[2], int n_in, const long (*out)[2], int n_out) {
  kiln_cuda_init();
  if (!*exec && !kiln_cuda_debug) {
    cudaGraph_t g;
    KILN_CHECK(cudaStreamBeginCapture(kiln_stream, cudaStreamCaptureModeThreadLocal));
    run(kiln_dev, kiln_stream);
    KILN_CHECK(cudaStreamEndCapture(kiln_stream, &g));
    KILN_CHECK(cudaGraphInstantiate(exec, g, 0));
    KILN_CHECK(cudaGraphDestroy(g));
  }
  const int whole = kiln_synced != host; /* the whole block goes in: not counted as this call's inputs */
  if (whole) {
    kiln_pin(host);
    KILN_CHECK(cudaMemcpyAsync(kiln_dev, host, KILN_MEMORY_BYTES, cudaMemcpyHostToDevice, kiln_stream));
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) kiln_copy_in(host, in[i][0], in[i][1]);
    kiln_calls_in++;
  }
  if (kiln_rows_n) {
    KILN_CHECK(cudaMemcpyAsync(kiln_rows_dev, kiln_rows_host, (size_t)kiln_rows_n * sizeof *kiln_rows_host, cudaMemcpyHostToDevice, kiln_stream));
    if (!whole) kiln_bytes_in += kiln_rows_n * (long)sizeof *kiln_rows_host;
    for (int s = 0; s < kiln_n_sets; s++) {
      long words = kiln_rows_n * kiln_sets[s].row_bytes / 4;
      kiln_gather_rows<<<(unsigned)((words + 255) / 256), 256, 0, kiln_stream>>>((int *)(kiln_dev + kiln_sets[s].offset), kiln_sets[s].rows, kiln_rows_dev, kiln_sets[s].row_bytes / 4, kiln_rows_n);
      kiln_launched("kiln_gather_rows", kiln_stream);
    }
    kiln_rows_n = 0;
  }
  static cudaEvent_t t0, t1;
  static int profile = -1;
  if (profile < 0 && (profile = getenv("KILN_CUDA_PROFILE") != NULL)) {
    KILN_CHECK(cudaEventCreate(&t0));
    KILN_CHECK(cudaEventCreate(&t1));
    atexit(kiln_profile_report);
  }
  if (profile) KILN_CHECK(cudaEventRecord(t0, kiln_stream));
  if (kiln_cuda_debug) run(kiln_dev, kiln_stream);
  else KILN_CHECK(cudaGraphLaunch(*exec, kiln_stream));
  if (profile) KILN_CHECK(cudaEventRecord(t1, kiln_stream));
  for (int i = 0; i < n_out; i++) KILN_CHECK(cudaMemcpyAsync(host + out[i][0], kiln_dev + out[i][0], out[i][1], cudaMemcpyDeviceToHost, kiln_stream));
  cudaError_t e = cudaStreamSynchronize(kiln_stream);
  if (e != cudaSuccess) { /* a kernel faulted: the graph does not say which */
    fprintf(stderr, "kiln: a kernel failed: %s (run with KILN_CUDA_DEBUG=1 to name it)\n", cudaGetErrorString(e));
    exit(1);
  }
  if (profile) {
    float ms;
    KILN_CHECK(cudaEventElapsedTime(&ms, t0, t1));
    kiln_profile_ms += ms;
    kiln_profile_calls++;
  }
}
#else
typedef int kiln_stream_t;
typedef int kiln_graph_t;
#define KILN_COPY(mem, from, to, n, stream) memmove((mem) + (to), (mem) + (from), (n))
static unsigned char *kiln_dev;
/* model_train's device datasets, as on the GPU (see there) */
#define KILN_MAX_SETS 16
static struct { unsigned char *rows; long offset, n, row_bytes; } kiln_sets[KILN_MAX_SETS];
static int kiln_n_sets;
static long *kiln_rows_host, kiln_rows_n, kiln_rows_cap;
static long kiln_bytes_in, kiln_calls_in;
static void kiln_bytes_report(void) {
  if (kiln_calls_in) fprintf(stderr, "kiln cuda: inputs %.0f bytes in per call over %ld calls\n", (double)kiln_bytes_in / kiln_calls_in, kiln_calls_in);
}
extern "C" int kiln_cuda_dataset(long offset, const void *data, long rows, long row_bytes) {
  unsigned char *p;
  if (kiln_n_sets == KILN_MAX_SETS || row_bytes % 4 || rows < 1 || !(p = (unsigned char *)malloc((size_t)(rows * row_bytes)))) return 1;
  memcpy(p, data, (size_t)(rows * row_bytes));
  kiln_sets[kiln_n_sets].rows = p;
  kiln_sets[kiln_n_sets].offset = offset;
  kiln_sets[kiln_n_sets].n = rows;
  kiln_sets[kiln_n_sets++].row_bytes = row_bytes;
  return 0;
}
extern "C" void kiln_cuda_rows(const long *rows, long n) {
  if (n > kiln_rows_cap) {
    free(kiln_rows_host);
    if (!(kiln_rows_host = (long *)malloc((size_t)n * sizeof *rows))) { fputs("kiln: out of memory\n", stderr); exit(1); }
    kiln_rows_cap = n;
  }
  for (long i = 0; i < n; i++)
    for (int s = 0; s < kiln_n_sets; s++)
      if (rows[i] < 0 || rows[i] >= kiln_sets[s].n) { fprintf(stderr, "kiln: row %ld of a dataset of %ld rows\n", rows[i], kiln_sets[s].n); exit(1); }
  memcpy(kiln_rows_host, rows, (size_t)n * sizeof *rows);
  kiln_rows_n = n;
}
static void kiln_copy_in(unsigned char *host, long at, long n) {
  for (int s = 0; s < kiln_n_sets && kiln_rows_n; s++) {
    long a = kiln_sets[s].offset, b = a + kiln_rows_n * kiln_sets[s].row_bytes;
    if (a < at + n && at < b) {
      if (a > at) kiln_copy_in(host, at, a - at);
      if (b < at + n) kiln_copy_in(host, b, at + n - b);
      return;
    }
  }
  memcpy(kiln_dev + at, host + at, (size_t)n);
  kiln_bytes_in += n;
}
extern "C" void kiln_cuda_sync(void) {
  if (!kiln_synced) return;
  for (int i = 0; i < kiln_n_resident; i++) memcpy(kiln_synced + kiln_resident[i][0], kiln_dev + kiln_resident[i][0], kiln_resident[i][1]);
}
/* The same traffic as on the GPU, with a second block standing for device memory. */
static void kiln_call(unsigned char *host, void (*run)(unsigned char *, kiln_stream_t), kiln_graph_t *exec,
                      const long (*in)[2], int n_in, const long (*out)[2], int n_out) {
  (void)exec;
  if (!kiln_dev) {
    if (!(kiln_dev = (unsigned char *)malloc(KILN_MEMORY_BYTES))) { fputs("kiln: out of memory\n", stderr); exit(1); }
    if (getenv("KILN_CUDA_PROFILE")) atexit(kiln_bytes_report);
  }
  const int whole = kiln_synced != host; /* the whole block goes in: not counted as this call's inputs */
  if (whole) {
    memcpy(kiln_dev, host, KILN_MEMORY_BYTES);
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) kiln_copy_in(host, in[i][0], in[i][1]);
    kiln_calls_in++;
  }
  if (kiln_rows_n) {
    if (!whole) kiln_bytes_in += kiln_rows_n * (long)sizeof *kiln_rows_host;
    for (int s = 0; s < kiln_n_sets; s++)
      for (long r = 0; r < kiln_rows_n; r++)
        memcpy(kiln_dev + kiln_sets[s].offset + r * kiln_sets[s].row_bytes, kiln_sets[s].rows + kiln_rows_host[r] * kiln_sets[s].row_bytes, (size_t)kiln_sets[s].row_bytes);
    kiln_rows_n = 0;
  }
  run(kiln_dev, 0);
  for (int i = 0; i < n_out; i++) memcpy(host + out[i][0], kiln_dev + out[i][0], out[i][1]);
}
#endif

#endif
