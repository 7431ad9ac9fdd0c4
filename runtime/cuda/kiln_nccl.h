/* Data-parallel training on GPUs (kiln compile --target cuda --train --distributed nccl), included at the end of a
 * model.cu built with -DKILN_MPI (model_train): one step is the gradStep graph, the gradients gathered side by side
 * into one device vector and weighted by this rank's rows, one ncclAllReduce (sum) of it on the step's stream,
 * the division by the batch's rows, and the applyGrads graph reading the vector in place: the gradients never
 * leave the device. The ranks are MPI processes (mpirun), one GPU per local rank; the NCCL unique id goes out with
 * MPI_Bcast. With KILN_CUDA_EMULATE the same steps run on the CPU and the sum is kiln_mpi.c's ring, so the whole
 * driver is tested without a GPU. The weighting and division are model_train.c's for the llvm build, in the same
 * float operations, so both builds train the same weights. */
#ifndef KILN_NCCL_H
#define KILN_NCCL_H
extern "C" {
#include "kiln_mpi.h"
}

static float *kiln_nccl_vec; /* the gradients, state values and loss of one step, side by side (device memory) */
static long kiln_nccl_n = -1;
static long kiln_nccl_in[64][2]; /* gradStep's inputs: {offset, bytes} of the block to copy in */
static int kiln_nccl_n_in;

#ifndef KILN_CUDA_EMULATE
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>
static ncclComm_t kiln_nccl_comm;

static void kiln_nccl_check(ncclResult_t r, const char *what, int rank, int ranks) {
  if (r == ncclSuccess) return;
  fprintf(stderr, "model_train (rank %d/%d): %s failed: %s (NCCL_DEBUG=WARN says more)\n", rank, ranks, what, ncclGetErrorString(r));
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

/* v[i] = v[i] * by (multiply) or v[i] / by (divide): the host build's float operations (nvcc divides correctly rounded) */
__global__ void kiln_nccl_scale(float *v, long n, float by, int divide) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) v[i] = divide ? v[i] / by : v[i] * by;
}
static void kiln_nccl_scale_all(float *v, long n, float by, int divide) {
  kiln_nccl_scale<<<(unsigned)((n + 255) / 256), 256, 0, kiln_stream>>>(v, n, by, divide);
  kiln_launched("kiln_nccl_scale", kiln_stream);
}

/* Before anything touches the GPU: this rank's GPU is its local rank's (the ranks on one machine, in order), and
   the ranks' NCCL communicator. */
extern "C" void kiln_nccl_init(int rank, int ranks) {
  MPI_Comm local;
  int me_here = 0, gpus = 0;
  ncclUniqueId id;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &me_here);
  MPI_Comm_free(&local);
  kiln_cuda_require_device();
  KILN_CHECK(cudaGetDeviceCount(&gpus));
  if (me_here >= gpus) {
    fprintf(stderr, "model_train (rank %d/%d): local rank %d has no GPU of its own: this machine has %d (start at most %d ranks per machine)\n",
            rank, ranks, me_here, gpus, gpus);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
  }
  KILN_CHECK(cudaSetDevice(me_here));
  if (rank == 0) kiln_nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId", rank, ranks);
  if (MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
    fprintf(stderr, "model_train (rank %d/%d): MPI_Bcast of the NCCL id failed\n", rank, ranks);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
  }
  kiln_nccl_check(ncclCommInitRank(&kiln_nccl_comm, ranks, id, rank), "ncclCommInitRank", rank, ranks);
}

#define KILN_NCCL_ALLOC(p, bytes) KILN_CHECK(cudaMalloc(&(p), (bytes)))
#define KILN_NCCL_COPY(to, from, bytes) KILN_CHECK(cudaMemcpyAsync((to), (from), (bytes), cudaMemcpyDeviceToDevice, kiln_stream))
#define KILN_NCCL_ZERO(p, bytes) KILN_CHECK(cudaMemsetAsync((p), 0, (bytes), kiln_stream))
#define KILN_NCCL_SCALE(v, n, by, divide) kiln_nccl_scale_all((v), (n), (by), (divide))
#define KILN_NCCL_LOSS(to, from) KILN_CHECK(cudaMemcpyAsync((to), (from), sizeof(float), cudaMemcpyDeviceToHost, kiln_stream))
static void kiln_nccl_sum(float *v, long n, long step) {
  int rank = 0, ranks = 1;
  ncclCommUserRank(kiln_nccl_comm, &rank);
  ncclCommCount(kiln_nccl_comm, &ranks);
  kiln_nccl_check(ncclAllReduce(v, v, (size_t)n, ncclFloat, ncclSum, kiln_nccl_comm, kiln_stream), "ncclAllReduce", rank, ranks);
  kiln_mpi_watch(step); /* a rank that hangs would leave this one waiting on the stream: disarmed after applyGrads */
}
#else
/* the CPU stands for the GPU: host memory for device memory, kiln_mpi.c's ring for NCCL's */
extern "C" void kiln_nccl_init(int rank, int ranks) { (void)rank; (void)ranks; }
#define KILN_NCCL_ALLOC(p, bytes) do { if (!((p) = (float *)malloc((bytes)))) { fputs("kiln: out of memory\n", stderr); exit(1); } } while (0)
#define KILN_NCCL_COPY(to, from, bytes) memcpy((to), (from), (bytes))
#define KILN_NCCL_ZERO(p, bytes) memset((p), 0, (bytes))
#define KILN_NCCL_SCALE(v, n, by, divide) do { for (long i_ = 0; i_ < (n); i_++) (v)[i_] = (divide) ? (v)[i_] / (by) : (v)[i_] * (by); } while (0)
#define KILN_NCCL_LOSS(to, from) memcpy((to), (from), sizeof(float))
static void kiln_nccl_sum(float *v, long n, long step) { kiln_mpi_allreduce(v, n, step); }
#endif

/* One data-parallel step on this rank's `mine` of the batch's `nb` rows (model_train.c checked that gradStep's
   outputs before the preds make applyGrads's one input); returns the step's loss, the vector's last value. */
extern "C" float kiln_nccl_step(unsigned char *mem, const kiln_entry *grad, const void *const *inputs, const kiln_entry *apply, long mine, long nb, long step) {
  static kiln_graph_t grad_graph, apply_graph;
  long at = 0;
  float loss;
  int i;
  if (kiln_nccl_n < 0) {
    kiln_nccl_n = apply->inputs[0].size;
    KILN_NCCL_ALLOC(kiln_nccl_vec, (size_t)(kiln_nccl_n ? kiln_nccl_n : 1) * sizeof(float));
    for (i = 0; i < grad->n_inputs && i < 64; i++) {
      kiln_nccl_in[i][0] = grad->inputs[i].offset;
      kiln_nccl_in[i][1] = grad->inputs[i].size * (long)kiln_dtype_size(grad->inputs[i].dtype);
    }
    kiln_nccl_n_in = i;
  }
  for (i = 0; i < grad->n_inputs; i++) /* into the host block, as kiln_run_entry; kiln_call moves them to the device */
    if (inputs[i]) memcpy(mem + grad->inputs[i].offset, inputs[i], (size_t)kiln_nccl_in[i][1]);
  /* gradStep runs on every rank (the first call also copies the whole block to the device); a rank without rows in
     a short last batch adds zeros */
  kiln_call(mem, kiln_run_gradStep, &grad_graph, kiln_nccl_in, kiln_nccl_n_in, NULL, 0);
  if (mine > 0) {
    for (i = 0; at < kiln_nccl_n; i++) {
      KILN_NCCL_COPY(kiln_nccl_vec + at, kiln_dev + grad->outputs[i].offset, (size_t)grad->outputs[i].size * sizeof(float));
      at += grad->outputs[i].size;
    }
    KILN_NCCL_SCALE(kiln_nccl_vec, kiln_nccl_n, (float)mine, 0);
  } else {
    KILN_NCCL_ZERO(kiln_nccl_vec, (size_t)kiln_nccl_n * sizeof(float));
  }
  kiln_nccl_sum(kiln_nccl_vec, kiln_nccl_n, step);
  KILN_NCCL_SCALE(kiln_nccl_vec, kiln_nccl_n, (float)nb, 1);
  KILN_NCCL_COPY(kiln_dev + apply->inputs[0].offset, kiln_nccl_vec, (size_t)kiln_nccl_n * sizeof(float));
  KILN_NCCL_LOSS(&loss, kiln_nccl_vec + kiln_nccl_n - 1);
  /* applyGrads's input is already in place on the device: nothing to copy in (kiln_call waits for the stream) */
  kiln_call(mem, kiln_run_applyGrads, &apply_graph, NULL, 0, NULL, 0);
#ifndef KILN_CUDA_EMULATE
  kiln_mpi_watch(-1);
#endif
  return loss;
}
#endif
