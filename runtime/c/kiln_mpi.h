/* Data-parallel training on MPI for model_train (built with -DKILN_MPI): start-up, a deterministic all-reduce with a watchdog. */
#ifndef KILN_MPI_H
#define KILN_MPI_H

/* MPI_Init with errors returned, not fatal; sets this process's rank and the number of ranks. */
void kiln_mpi_init(int *argc, char ***argv, int *rank, int *ranks);

/* Sums buf[0..n) over the ranks, in place, every rank getting the same bits: a ring (reduce-scatter, then
   all-gather) in which each chunk is summed in one fixed order of the ranks, so repeated runs are bitwise identical.
   Exits with one line when the other ranks do not answer within KILN_MPI_TIMEOUT seconds (default 600). */
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
