/* kiln's CUDA host runtime, included once by every generated model.cu (after model.h, which gives
 * KILN_MEMORY_BYTES, kiln_cuda.h, and model.cu's kiln_resident table of the params its entries update): the device
 * keeps its own copy of the memory block, copied in whole on the first call (and after kiln_cuda_resync()); each
 * call then moves only its entry's inputs in and its outputs out (adjacent ranges as one copy, from the host block
 * pinned), and replays the entry's launches, captured once as a CUDA graph. Updated params and optimizer state
 * stay on the device: kiln_cuda_sync() copies them back into the host block. With KILN_CUDA_EMULATE the same
 * traffic runs on the CPU, a second block standing for device memory. Any number of rows: kiln_run_rows
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
  if (!kiln_dev) {
    kiln_cuda_require_device();
    kiln_cuda_debug = getenv("KILN_CUDA_DEBUG") != NULL;
    KILN_CHECK(cudaMalloc(&kiln_dev, KILN_MEMORY_BYTES));
    KILN_CHECK(cudaStreamCreateWithFlags(&kiln_stream, cudaStreamNonBlocking));
  }
  if (!*exec && !kiln_cuda_debug) {
    cudaGraph_t g;
    KILN_CHECK(cudaStreamBeginCapture(kiln_stream, cudaStreamCaptureModeThreadLocal));
    run(kiln_dev, kiln_stream);
    KILN_CHECK(cudaStreamEndCapture(kiln_stream, &g));
    KILN_CHECK(cudaGraphInstantiate(exec, g, 0));
    KILN_CHECK(cudaGraphDestroy(g));
  }
  if (kiln_synced != host) {
    kiln_pin(host);
    KILN_CHECK(cudaMemcpyAsync(kiln_dev, host, KILN_MEMORY_BYTES, cudaMemcpyHostToDevice, kiln_stream));
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) KILN_CHECK(cudaMemcpyAsync(kiln_dev + in[i][0], host + in[i][0], in[i][1], cudaMemcpyHostToDevice, kiln_stream));
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
extern "C" void kiln_cuda_sync(void) {
  if (!kiln_synced) return;
  for (int i = 0; i < kiln_n_resident; i++) memcpy(kiln_synced + kiln_resident[i][0], kiln_dev + kiln_resident[i][0], kiln_resident[i][1]);
}
/* The same traffic as on the GPU, with a second block standing for device memory. */
static void kiln_call(unsigned char *host, void (*run)(unsigned char *, kiln_stream_t), kiln_graph_t *exec,
                      const long (*in)[2], int n_in, const long (*out)[2], int n_out) {
  (void)exec;
  if (!kiln_dev && !(kiln_dev = (unsigned char *)malloc(KILN_MEMORY_BYTES))) { fputs("kiln: out of memory\n", stderr); exit(1); }
  if (kiln_synced != host) {
    memcpy(kiln_dev, host, KILN_MEMORY_BYTES);
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) memcpy(kiln_dev + in[i][0], host + in[i][0], in[i][1]);
  }
  run(kiln_dev, 0);
  for (int i = 0; i < n_out; i++) memcpy(host + out[i][0], kiln_dev + out[i][0], out[i][1]);
}
#endif

#endif
