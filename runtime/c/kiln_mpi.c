/* Data-parallel training on MPI: a deterministic ring all-reduce of one float buffer, and a watchdog on it. */
#define _POSIX_C_SOURCE 200809L
#include "kiln_mpi.h"
#include "kiln_runtime.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int me, world = 1;
static unsigned timeout_s = 600;
static float *scratch;
static long scratch_n;
static char late[256];

/* a rank that died (or hangs) leaves the others blocked in the collective: end this one with one line instead.
   write and _exit are async-signal-safe; mpirun then ends the ranks left */
static void on_alarm(int sig) {
  (void)sig;
  if (write(2, late, strlen(late)) < 0) { /* nothing more to say */ }
  _exit(1);
}

static void check(int rc, const char *what) {
  char err[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (rc == MPI_SUCCESS) return;
  MPI_Error_string(rc, err, &len);
  fprintf(stderr, "model_train (rank %d/%d): %s failed: %.*s\n", me, world, what, len, err);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

void kiln_mpi_init(int *argc, char ***argv, int *rank, int *ranks) {
  const char *t = getenv("KILN_MPI_TIMEOUT");
  struct sigaction sa;
  if (MPI_Init(argc, argv) != MPI_SUCCESS) {
    fprintf(stderr, "model_train: MPI_Init failed (start it with mpirun)\n");
    exit(1);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (t) {
    char *end;
    long v = strtol(t, &end, 10);
    if (*t == '\0' || *end != '\0' || v < 1 || v > 86400) {
      fprintf(stderr, "model_train: KILN_MPI_TIMEOUT must be a whole number of seconds in [1, 86400], got '%s'\n", t);
      exit(1);
    }
    timeout_s = (unsigned)v;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  *rank = me;
  *ranks = world;
}

void kiln_mpi_watch(long step) {
  if (step < 0) {
    alarm(0);
    return;
  }
  snprintf(late, sizeof late, "model_train (rank %d/%d): the all-reduce of step %ld got no answer from the other ranks within %u s: "
           "a rank died or hangs (KILN_MPI_TIMEOUT sets the limit)\n", me, world, step, timeout_s);
  alarm(timeout_s);
}

/* chunk c of the ring: [c*n/world, (c+1)*n/world) */
static long lo(long n, int c) { return (long)((double)n * c / world); }

void kiln_mpi_allreduce(float *buf, long n, long step) {
  int right = (me + 1) % world, left = (me + world - 1) % world, s;
  long i, most = 0;
  if (world == 1) return;
  for (s = 0; s < world; s++)
    if (lo(n, s + 1) - lo(n, s) > most) most = lo(n, s + 1) - lo(n, s);
  if (most > scratch_n) {
    free(scratch);
    scratch = (float *)malloc((size_t)most * sizeof *scratch);
    if (!scratch) { fprintf(stderr, "model_train: out of memory\n"); exit(1); }
    scratch_n = most;
  }
  kiln_mpi_watch(step);
  /* reduce-scatter: chunk c starts at rank c and passes right, each rank adding its own values after the sum so
     far, so chunk c is summed in the order c, c+1, ..., c-1 whatever the timing; rank r ends with chunk r+1 */
  for (s = 0; s < world - 1; s++) {
    int send = (me - s + world) % world, recv = (me - s - 1 + 2 * world) % world;
    long rn = lo(n, recv + 1) - lo(n, recv);
    float *own = buf + lo(n, recv);
    check(MPI_Sendrecv(buf + lo(n, send), (int)(lo(n, send + 1) - lo(n, send)), MPI_FLOAT, right, 0, scratch, (int)rn, MPI_FLOAT, left, 0,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Sendrecv");
    for (i = 0; i < rn; i++) own[i] = scratch[i] + own[i];
  }
  /* all-gather: the finished chunks travel once around the ring, copied as they are */
  for (s = 0; s < world - 1; s++) {
    int send = (me + 1 - s + world) % world, recv = (me - s + world) % world;
    check(MPI_Sendrecv(buf + lo(n, send), (int)(lo(n, send + 1) - lo(n, send)), MPI_FLOAT, right, 1, buf + lo(n, recv),
                       (int)(lo(n, recv + 1) - lo(n, recv)), MPI_FLOAT, left, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Sendrecv");
  }
  kiln_mpi_watch(-1);
}

static long in_step;

static void step_allreduce(float *buf, long n) { kiln_mpi_allreduce(buf, n, in_step); }

void kiln_mpi_in_step(long step) {
  in_step = step;
  kiln_allreduce_hook = step_allreduce;
}

void kiln_mpi_finalize(void) {
  free(scratch);
  MPI_Finalize();
}
