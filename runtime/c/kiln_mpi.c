/* Data-parallel training on MPI: a deterministic ring all-reduce of one float vector, overlapped with the backward pass, and a watchdog on it. */
#define _POSIX_C_SOURCE 200809L
#include "kiln_mpi.h"
#include "kiln_runtime.h"

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int me, world = 1, threaded;
static unsigned timeout_s = 600;
static float *scratch;
static long scratch_n;
static char late[256];

/* the step being reduced: dst = (sum over the ranks of src * mine) / nb, or with scale 0 the plain sum */
static const float *src;
static float *dst;
static long n;
static float mine, nb;
static int scale;

/* the segments of the vector, in the order the backward pass completes them: segment j is [pts[j], pts[j - 1]) with
   pts[-1] = n; the last one ends at 0. Recorded once (kiln_mpi_overlap), the same on every rank: the ranks must
   reduce the same segments in the same order, whatever their timing */
static long *pts;
static int npts, posted, done, quit, comm_on;
static double busy_us;
static pthread_t comm;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_post = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;

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

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

void kiln_mpi_init(int *argc, char ***argv, int *rank, int *ranks) {
  const char *t = getenv("KILN_MPI_TIMEOUT");
  struct sigaction sa;
  int provided = 0;
  /* serialized: the communication thread makes the calls during a step, the main thread before and after */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "model_train: MPI_Init failed (start it with mpirun)\n");
    exit(1);
  }
  threaded = provided >= MPI_THREAD_SERIALIZED;
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

/* chunk c of the ring: [c*n/world, (c+1)*n/world), within the segment [a, b) */
static long lo(long c, long a, long b) {
  long x = (long)((double)n * (double)c / world);
  return x < a ? a : x > b ? b : x;
}

/* MPI_Sendrecv, but a rank that waits for its neighbour yields its core between polls: to the backward pass on the
   communication thread (mpirun binds a rank's threads to one core), and to the neighbour on a machine with more
   processes than cores (MPI_Sendrecv polls through its time slice: bench/distributed_deep.ts on 2 ranks without
   overlap took 58-70 ms per step with it at load 17-34 on 2 cores, 31-36 ms yielding; 1.2 ms is its compute) */
static void sendrecv(const float *out, long nout, int to, float *in, long nin, int from, int tag) {
  MPI_Request r[2];
  int flag = 0;
  check(MPI_Irecv(in, (int)nin, MPI_FLOAT, from, tag, MPI_COMM_WORLD, &r[0]), "MPI_Irecv");
  check(MPI_Isend(out, (int)nout, MPI_FLOAT, to, tag, MPI_COMM_WORLD, &r[1]), "MPI_Isend");
  for (;;) {
    check(MPI_Testall(2, r, &flag, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (flag) return;
    sched_yield();
  }
}

/* to[i] = from[i] * mine (plain: from[i]); to may be from. Loops gcc vectorizes at -O3 (built so) */
static void own_part(float *to, const float *from, long k) {
  long i;
  if (!scale) {
    if (to != from) memcpy(to, from, (size_t)k * sizeof *to);
    return;
  }
  for (i = 0; i < k; i++) to[i] = from[i] * mine;
}

/* to[i] = sum[i] + from[i] * mine (plain: + from[i]): the sum so far first, as the ring order says */
static void add_part(float *to, const float *sum, const float *from, long k) {
  long i;
  if (scale)
    for (i = 0; i < k; i++) to[i] = sum[i] + from[i] * mine;
  else
    for (i = 0; i < k; i++) to[i] = sum[i] + from[i];
}

/* The ring on [a, b) of the vector. Reduce-scatter: chunk c starts at rank c and passes right, each rank adding its
   own value (times its rows) after the sum so far, so each element is summed in the order c, c+1, ..., c-1 of the
   whole vector's chunk c, however the vector is cut into segments and whatever the timing; rank r ends with chunk
   r+1, which it divides by the rows. All-gather: the finished chunks travel once around the ring, copied as they are. */
static void ring(long a, long b) {
  int right = (me + 1) % world, left = (me + world - 1) % world, s, own = (me + 1) % world;
  long i;
  double t0 = now();
  own_part(dst + lo(me, a, b), src + lo(me, a, b), lo(me + 1, a, b) - lo(me, a, b));
  for (s = 0; s < world - 1; s++) {
    int send = (me - s + world) % world, recv = (me - s - 1 + 2 * world) % world;
    long r0 = lo(recv, a, b), rn = lo(recv + 1, a, b) - r0;
    sendrecv(dst + lo(send, a, b), lo(send + 1, a, b) - lo(send, a, b), right, scratch, rn, left, 0);
    add_part(dst + r0, scratch, src + r0, rn);
  }
  for (i = lo(own, a, b); scale && i < lo(own + 1, a, b); i++) dst[i] /= nb;
  for (s = 0; s < world - 1; s++) {
    int send = (me + 1 - s + world) % world, recv = (me - s + world) % world;
    sendrecv(dst + lo(send, a, b), lo(send + 1, a, b) - lo(send, a, b), right, dst + lo(recv, a, b), lo(recv + 1, a, b) - lo(recv, a, b), left, 1);
  }
  busy_us += now() - t0;
}

/* segment j: [pts[j], pts[j - 1]), the last [0, pts[npts - 1]) */
static int segments(void) { return npts + (npts == 0 || pts[npts - 1] > 0); }
static long seg_hi(int j) { return j == 0 ? n : pts[j - 1]; }
static long seg_lo(int j) { return j < npts ? pts[j] : 0; }

static void *communicate(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!quit && done == posted) pthread_cond_wait(&cv_post, &mu);
    if (done == posted) break; /* quit */
    {
      int j = done;
      pthread_mutex_unlock(&mu);
      ring(seg_lo(j), seg_hi(j));
      pthread_mutex_lock(&mu);
    }
    done++;
    pthread_cond_signal(&cv_done);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* kiln_grads_hook while recording the segments, and while a step runs */
static void record(long from) {
  long *p = (long *)realloc(pts, (size_t)(npts + 1) * sizeof *pts);
  if (!p) { fprintf(stderr, "model_train: out of memory\n"); exit(1); }
  pts = p;
  pts[npts++] = from;
}

static void post(long from) {
  (void)from;
  pthread_mutex_lock(&mu);
  if (posted < npts) posted++;
  pthread_cond_signal(&cv_post);
  pthread_mutex_unlock(&mu);
}

/* counts the dry run's in-step all-reduces (synchronized BatchNormalization) */
static long in_step_reduces;
static void count_reduce(float *buf, long len) { (void)buf, (void)len, in_step_reduces++; }

int kiln_mpi_overlap(void (*grad_step)(void *ctx), void *ctx) {
  if (world == 1 || !threaded || comm_on) return comm_on;
  kiln_grads_hook = record;
  kiln_allreduce_hook = count_reduce;
  grad_step(ctx);
  kiln_grads_hook = NULL;
  kiln_allreduce_hook = NULL;
  /* a gradStep whose own all-reduces run on the main thread would meet the communication thread's messages on the
     same communicator (and MPI_THREAD_SERIALIZED forbids the two at once): such a step is reduced after it ends */
  if (in_step_reduces > 0) return 0;
  if (npts < 1 || (npts == 1 && pts[0] == 0)) return 0; /* nothing completes before the end */
  if (pthread_create(&comm, NULL, communicate, NULL) != 0) return 0;
  kiln_grads_hook = post;
  return comm_on = 1;
}

int kiln_mpi_crowded(void) {
  MPI_Comm node;
  int local = 1, mine_crowded, any = 0;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
  }
  mine_crowded = local >= sysconf(_SC_NPROCESSORS_ONLN);
  check(MPI_Allreduce(&mine_crowded, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return any;
}

int kiln_mpi_segments(void) { return comm_on ? segments() : 1; }

void kiln_mpi_begin(const float *from, float *to, long elements, long rows, long batch_rows, long step) {
  long most = 0;
  int c;
  if (comm_on && (npts > 0 && pts[0] > elements)) { fprintf(stderr, "model_train: the gradients' segments do not fit the vector\n"); exit(1); }
  pthread_mutex_lock(&mu);
  src = from, dst = to, n = elements, mine = (float)rows, nb = (float)batch_rows, scale = rows >= 0;
  posted = done = 0;
  busy_us = 0;
  for (c = 0; c < world; c++)
    if (lo(c + 1, 0, n) - lo(c, 0, n) > most) most = lo(c + 1, 0, n) - lo(c, 0, n);
  if (most > scratch_n) {
    free(scratch);
    scratch = (float *)malloc((size_t)most * sizeof *scratch);
    if (!scratch) { fprintf(stderr, "model_train: out of memory\n"); exit(1); }
    scratch_n = most;
  }
  pthread_mutex_unlock(&mu);
  if (world > 1) kiln_mpi_watch(step);
}

double kiln_mpi_end(void) {
  double busy;
  if (world == 1) {
    if (dst != src) memcpy(dst, src, (size_t)n * sizeof *dst);
    return 0;
  }
  if (comm_on) {
    pthread_mutex_lock(&mu);
    posted = segments(); /* the rest (all of it on a rank without rows, which ran no gradStep) */
    pthread_cond_signal(&cv_post);
    while (done < posted) pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
  } else {
    ring(0, n);
  }
  busy = busy_us;
  kiln_mpi_watch(-1);
  return busy;
}

void kiln_mpi_allreduce(float *buf, long elements, long step) {
  if (world == 1) return;
  kiln_mpi_begin(buf, buf, elements, -1, 1, step);
  if (comm_on) {
    int was = comm_on;
    comm_on = 0;
    kiln_mpi_end();
    comm_on = was;
  } else {
    kiln_mpi_end();
  }
}

static long in_step;

/* An all-reduce inside gradStep (synchronized BatchNormalization) runs between the step's kiln_mpi_begin and
   kiln_mpi_end: it must leave the step's vector, scaling and watchdog as they were (such a step is never overlapped,
   kiln_mpi_overlap, so no segment is in flight) */
static void step_allreduce(float *buf, long len) {
  const float *s_src = src;
  float *s_dst = dst, s_mine = mine, s_nb = nb;
  long s_n = n;
  int s_scale = scale;
  double s_busy = busy_us;
  kiln_mpi_allreduce(buf, len, in_step);
  src = s_src, dst = s_dst, n = s_n, mine = s_mine, nb = s_nb, scale = s_scale, busy_us = s_busy;
  if (world > 1) kiln_mpi_watch(in_step);
}

void kiln_mpi_in_step(long step) {
  in_step = step;
  kiln_allreduce_hook = step_allreduce;
}

void kiln_mpi_finalize(void) {
  if (comm_on) {
    pthread_mutex_lock(&mu);
    quit = 1;
    pthread_cond_signal(&cv_post);
    pthread_mutex_unlock(&mu);
    pthread_join(comm, NULL);
    comm_on = 0;
  }
  free(scratch);
  free(pts);
  MPI_Finalize();
}
