/* kiln's CUDA host runtime, included once by every generated model.cu (after model.h, which gives
 * KILN_MEMORY_BYTES, and kiln_cuda.h): the device keeps its own copy of the memory block, copied in whole on the
 * first call (and after kiln_cuda_resync()); each call then moves only its entry's inputs in and its outputs and
 * updated values out, and replays the entry's launches, captured once as a CUDA graph. With KILN_CUDA_EMULATE the
 * same traffic runs on the CPU, a second block standing for device memory. Any number of rows: kiln_run_rows
 * (kiln_rows.c) calls the entry compiled for KILN_MAX_BATCH rows once per chunk, and "<entry>_1" once per row of a
 * short tail, each a call as above (its own captured graph), so a chunk moves only its own inputs and outputs. */
#ifndef KILN_CUDA_HOST_H
#define KILN_CUDA_HOST_H
#include <string.h>

#ifndef KILN_CUDA_EMULATE
typedef cudaStream_t kiln_stream_t;
typedef cudaGraphExec_t kiln_graph_t;
#define KILN_COPY(mem, from, to, n, stream) KILN_CHECK(cudaMemcpyAsync((mem) + (to), (mem) + (from), (n), cudaMemcpyDeviceToDevice, (stream)))
static unsigned char *kiln_synced; /* the host block the device copy mirrors */

/* The next call copies the whole memory block to the device again (after the host changed params in it). */
extern "C" void kiln_cuda_resync(void) { kiln_synced = NULL; }

/* KILN_CUDA_PROFILE set: the launches alone (no copies), timed with events, averaged on stderr at exit */
static double kiln_profile_ms;
static long kiln_profile_calls;
static void kiln_profile_report(void) {
  if (kiln_profile_calls) fprintf(stderr, "kiln cuda: launches %.2f us per call over %ld calls\n", kiln_profile_ms * 1e3 / kiln_profile_calls, kiln_profile_calls);
}

/* One call of an entry: `run` issues its launches and copies (captured into *exec on the first call); in and out
   list the {offset, bytes} ranges of the block to move to the device before and back after. */
static void kiln_call(unsigned char *host, void (*run)(unsigned char *, kiln_stream_t), kiln_graph_t *exec,
                      const long (*in)[2], int n_in, const long (*out)[2], int n_out) {
  static unsigned char *dev;
  static cudaStream_t stream;
  if (!dev) {
    kiln_cuda_require_device();
    KILN_CHECK(cudaMalloc(&dev, KILN_MEMORY_BYTES));
    KILN_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  }
  if (!*exec) {
    cudaGraph_t g;
    KILN_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    run(dev, stream);
    KILN_CHECK(cudaStreamEndCapture(stream, &g));
    KILN_CHECK(cudaGraphInstantiate(exec, g, 0));
    KILN_CHECK(cudaGraphDestroy(g));
  }
  if (kiln_synced != host) {
    KILN_CHECK(cudaMemcpyAsync(dev, host, KILN_MEMORY_BYTES, cudaMemcpyHostToDevice, stream));
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) KILN_CHECK(cudaMemcpyAsync(dev + in[i][0], host + in[i][0], in[i][1], cudaMemcpyHostToDevice, stream));
  }
  static cudaEvent_t t0, t1;
  static int profile = -1;
  if (profile < 0 && (profile = getenv("KILN_CUDA_PROFILE") != NULL)) {
    KILN_CHECK(cudaEventCreate(&t0));
    KILN_CHECK(cudaEventCreate(&t1));
    atexit(kiln_profile_report);
  }
  if (profile) KILN_CHECK(cudaEventRecord(t0, stream));
  KILN_CHECK(cudaGraphLaunch(*exec, stream));
  if (profile) KILN_CHECK(cudaEventRecord(t1, stream));
  for (int i = 0; i < n_out; i++) KILN_CHECK(cudaMemcpyAsync(host + out[i][0], dev + out[i][0], out[i][1], cudaMemcpyDeviceToHost, stream));
  KILN_CHECK(cudaStreamSynchronize(stream));
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
static unsigned char *kiln_synced;
extern "C" void kiln_cuda_resync(void) { kiln_synced = NULL; }
/* The same traffic as on the GPU, with a second block standing for device memory. */
static void kiln_call(unsigned char *host, void (*run)(unsigned char *, kiln_stream_t), kiln_graph_t *exec,
                      const long (*in)[2], int n_in, const long (*out)[2], int n_out) {
  static unsigned char *dev;
  (void)exec;
  if (!dev && !(dev = (unsigned char *)malloc(KILN_MEMORY_BYTES))) { fputs("kiln: out of memory\n", stderr); exit(1); }
  if (kiln_synced != host) {
    memcpy(dev, host, KILN_MEMORY_BYTES);
    kiln_synced = host;
  } else {
    for (int i = 0; i < n_in; i++) memcpy(dev + in[i][0], host + in[i][0], in[i][1]);
  }
  run(dev, 0);
  for (int i = 0; i < n_out; i++) memcpy(host + out[i][0], dev + out[i][0], out[i][1]);
}
#endif

#endif
