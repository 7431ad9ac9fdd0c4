/* Data-parallel training on GPUs (kiln compile --target cuda --train --distributed nccl), included at the end of a
 * model.cu built with -DKILN_MPI (model_train): one step is ONE CUDA graph launch, captured once, of the gradStep
 * kernels, the gradients gathered side by side into one device vector and weighted by this rank's rows, one
 * ncclAllReduce (sum) of it on the step's stream (NCCL >= 2.9 records it into the capture), the division by the
 * batch's rows, and the applyGrads kernels reading the vector: the gradients never leave the device and the host
 * takes no part between the kernels. The two weights change from step to step (a short last batch), so the graph
 * reads them from device memory, copied in before the launch. The ranks are MPI processes (mpirun), one GPU per
 * local rank; the NCCL unique id goes out with MPI_Bcast. With KILN_CUDA_EMULATE the same step runs on the CPU and
 * the sum is kiln_mpi.c's ring, so the whole driver is tested without a GPU. The weighting and division are
 * model_train.c's for the llvm build, in the same float operations, so both builds train the same weights. */
#ifndef KILN_NCCL_H
#define KILN_NCCL_H
extern "C" {
#include "kiln_mpi.h"
}

static float *kiln_nccl_vec; /* the gradients, state values and loss of one step, side by side (device memory) */
static float *kiln_nccl_by; /* the step's weights on the device: {this rank's rows (0: none), the batch's rows} */
static long kiln_nccl_n = -1;
static long kiln_nccl_in[64][2]; /* gradStep's inputs: {offset, bytes} of the block to copy in */
static int kiln_nccl_n_in;
static const kiln_entry *kiln_nccl_grad, *kiln_nccl_apply;

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

/* v[i] = v[i] * *by (multiply; 0 when *by is 0: a rank without rows adds zeros) or v[i] / *by (divide): the host
   build's float operations (nvcc divides correctly rounded); *by is read when the graph runs, not when captured */
__global__ void kiln_nccl_scale(float *v, long n, const float *by, int divide) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) v[i] = divide ? v[i] / *by : *by == 0.0f ? 0.0f : v[i] * *by;
}
static void kiln_nccl_scale_all(float *v, long n, const float *by, int divide, cudaStream_t stream) {
  kiln_nccl_scale<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(v, n, by, divide);
  kiln_launched("kiln_nccl_scale", stream);
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
#define KILN_NCCL_COPY(to, from, bytes, stream) KILN_CHECK(cudaMemcpyAsync((to), (from), (bytes), cudaMemcpyDeviceToDevice, (stream)))
#define KILN_NCCL_WEIGHTS(to, from) KILN_CHECK(cudaMemcpyAsync((to), (from), 2 * sizeof(float), cudaMemcpyHostToDevice, kiln_stream))
#define KILN_NCCL_SCALE(v, n, by, divide, stream) kiln_nccl_scale_all((v), (n), (by), (divide), (stream))
static void kiln_nccl_sum(float *v, long n, cudaStream_t stream) {
  int rank = 0, ranks = 1;
  ncclCommUserRank(kiln_nccl_comm, &rank);
  ncclCommCount(kiln_nccl_comm, &ranks);
  kiln_nccl_check(ncclAllReduce(v, v, (size_t)n, ncclFloat, ncclSum, kiln_nccl_comm, stream), "ncclAllReduce", rank, ranks);
}
#else
/* the CPU stands for the GPU: host memory for device memory, kiln_mpi.c's ring for NCCL's */
extern "C" void kiln_nccl_init(int rank, int ranks) { (void)rank; (void)ranks; }
#define KILN_NCCL_ALLOC(p, bytes) do { if (!((p) = (float *)malloc((bytes)))) { fputs("kiln: out of memory\n", stderr); exit(1); } } while (0)
#define KILN_NCCL_COPY(to, from, bytes, stream) memcpy((to), (from), (bytes))
#define KILN_NCCL_WEIGHTS(to, from) memcpy((to), (from), 2 * sizeof(float))
#define KILN_NCCL_SCALE(v, n, by, divide, stream) \
  do { for (long i_ = 0; i_ < (n); i_++) (v)[i_] = (divide) ? (v)[i_] / *(by) : *(by) == 0.0f ? 0.0f : (v)[i_] * *(by); } while (0)
static long kiln_nccl_step_no; /* for the ring's watchdog message */
static void kiln_nccl_sum(float *v, long n, kiln_stream_t stream) { (void)stream; kiln_mpi_allreduce(v, n, kiln_nccl_step_no); }
#endif

/* The whole step as one stream of work, captured once into a graph by kiln_call: gradStep, the gradients into the
   vector, weighted, summed over the ranks, divided, into applyGrads's input, applyGrads. */
static void kiln_nccl_run(unsigned char *dev, kiln_stream_t stream) {
  const kiln_entry *grad = kiln_nccl_grad, *apply = kiln_nccl_apply;
  long at = 0;
  int i;
  kiln_run_gradStep(dev, stream);
  for (i = 0; at < kiln_nccl_n; i++) {
    KILN_NCCL_COPY(kiln_nccl_vec + at, dev + grad->outputs[i].offset, (size_t)grad->outputs[i].size * sizeof(float), stream);
    at += grad->outputs[i].size;
  }
  KILN_NCCL_SCALE(kiln_nccl_vec, kiln_nccl_n, kiln_nccl_by, 0, stream);
  kiln_nccl_sum(kiln_nccl_vec, kiln_nccl_n, stream);
  KILN_NCCL_SCALE(kiln_nccl_vec, kiln_nccl_n, kiln_nccl_by + 1, 1, stream);
  KILN_NCCL_COPY(dev + apply->inputs[0].offset, kiln_nccl_vec, (size_t)kiln_nccl_n * sizeof(float), stream);
  kiln_run_applyGrads(dev, stream);
}

/* One data-parallel step on this rank's `mine` of the batch's `nb` rows (model_train.c checked that gradStep's
   outputs before the preds make applyGrads's one input); returns the step's loss, the vector's last value, read
   back from applyGrads's input in the block. A rank without rows in a short last batch runs gradStep on zero rows
   and adds zeros. */
extern "C" float kiln_nccl_step(unsigned char *mem, const kiln_entry *grad, const void *const *inputs, const kiln_entry *apply, long mine, long nb, long step) {
  static kiln_graph_t step_graph;
  static float by[2];
  long loss_at[1][2];
  float loss;
  int i;
  if (kiln_nccl_n < 0) {
    kiln_nccl_grad = grad;
    kiln_nccl_apply = apply;
    kiln_nccl_n = apply->inputs[0].size;
    KILN_NCCL_ALLOC(kiln_nccl_vec, (size_t)(kiln_nccl_n ? kiln_nccl_n : 1) * sizeof(float));
    KILN_NCCL_ALLOC(kiln_nccl_by, 2 * sizeof(float));
    for (i = 0; i < grad->n_inputs && i < 64; i++) {
      kiln_nccl_in[i][0] = grad->inputs[i].offset;
      kiln_nccl_in[i][1] = grad->inputs[i].size * (long)kiln_dtype_size(grad->inputs[i].dtype);
    }
    kiln_nccl_n_in = i;
  }
  for (i = 0; i < grad->n_inputs; i++) /* into the host block, as kiln_run_entry; kiln_call moves them to the device */
    if (inputs[i]) memcpy(mem + grad->inputs[i].offset, inputs[i], (size_t)kiln_nccl_in[i][1]);
  by[0] = (float)mine;
  by[1] = (float)nb;
#ifndef KILN_CUDA_EMULATE
  kiln_cuda_init(); /* the stream the weights go in on, ahead of the launch */
#else
  kiln_nccl_step_no = step;
#endif
  KILN_NCCL_WEIGHTS(kiln_nccl_by, by);
  loss_at[0][0] = apply->inputs[0].offset + (kiln_nccl_n - 1) * (long)sizeof(float);
  loss_at[0][1] = sizeof(float);
#ifndef KILN_CUDA_EMULATE
  kiln_mpi_watch(step); /* a rank that hangs would leave this one waiting on the stream: disarmed once it is done */
#endif
  kiln_call(mem, kiln_nccl_run, &step_graph, kiln_nccl_in, kiln_nccl_n_in, loss_at, 1);
#ifndef KILN_CUDA_EMULATE
  kiln_mpi_watch(-1);
#endif
  memcpy(&loss, mem + loss_at[0][0], sizeof loss);
  return loss;
}
#endif
