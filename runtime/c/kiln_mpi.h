/* Data-parallel training on MPI for model_train (built with -DKILN_MPI): start-up, a deterministic all-reduce overlapped with the backward pass, a watchdog. */
#ifndef KILN_MPI_H
#define KILN_MPI_H

/* MPI_Init (threads serialized) with errors returned, not fatal; sets this process's rank and the number of ranks. */
void kiln_mpi_init(int *argc, char ***argv, int *rank, int *ranks);

/* One step's all-reduce, every rank getting the same bits: to[i] = (sum over the ranks of from[i] * rows) / batch_rows
   (rows < 0: the plain sum), on a ring (reduce-scatter, then all-gather) in which each element is summed in one fixed
   order of the ranks, so repeated runs are bitwise identical. from may be to. kiln_mpi_begin before the gradStep;
   kiln_mpi_end after it (or instead of it, on a rank without rows: from all zeros) returns once `to` is complete,
   with the microseconds the ring took (overlapped or not). Exits with one line when the other ranks do not answer
   within KILN_MPI_TIMEOUT seconds (default 600). */
void kiln_mpi_begin(const float *from, float *to, long n, long rows, long batch_rows, long step);
double kiln_mpi_end(void);

/* Overlap: runs grad_step(ctx) once to record where the entry calls kiln_grads_ready (runtime/c/kiln_runtime.h),
   then reduces each segment of the vector so completed on a communication thread while the backward pass goes on.
   The segments are the same on every rank and in every step, and each element is reduced as the whole-vector ring
   reduces it: the bits do not depend on overlapping. Returns 1 when on (more than one rank, threads, and a gradStep
   that completes part of the vector before its end), else 0. */
int kiln_mpi_overlap(void (*grad_step)(void *ctx), void *ctx);
/* Whether some node runs as many ranks as it has cores (the same answer on every rank): there the communication
   thread takes a core from a rank's compute, and overlapping measured ~10% slower (2 ranks on 2 cores), so it is
   off unless asked for. */
int kiln_mpi_crowded(void);
/* how many segments a step's vector is reduced in (1 without overlap) */
int kiln_mpi_segments(void);

/* Sums buf[0..n) over the ranks, in place, as kiln_mpi_begin + kiln_mpi_end with rows < 0, on the calling thread. */
void kiln_mpi_allreduce(float *buf, long n, long step);

/* The same watchdog around a collective of another library that the caller waits for (NCCL's): armed for `step`,
   or disarmed with -1. */
void kiln_mpi_watch(long step);

/* Points kiln_allreduce_hook (kiln_runtime.h) at kiln_mpi_allreduce for the entry run next, as step `step`: the
   all-reduces inside a step (synchronized BatchNormalization's batch statistics) sum over the ranks. Every rank must
   run the entry, with the same kernels in the same order, for them to meet. */
void kiln_mpi_in_step(long step);

void kiln_mpi_finalize(void);

#endif
