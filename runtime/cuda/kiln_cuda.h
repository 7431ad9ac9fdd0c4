/* kiln's CUDA support for generated model.cu: launch and thread macros, and scalar helpers with the reference
 * interpreter's semantics. With KILN_CUDA_EMULATE the same source builds as C++ for the CPU: blocks run one after
 * another, a block's thread loops one after the other (the order its barriers impose), each thread with its own
 * copy of the block's per-thread arrays. */
#ifndef KILN_CUDA_H
#define KILN_CUDA_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_CUDA_EMULATE
#include <cuda_runtime.h>
#define KILN_HD __host__ __device__ inline
#define KILN_KERNEL(name, threads) __global__ void __launch_bounds__(threads) name(unsigned char *mem)
#define KILN_BLOCK_ID ((int)blockIdx.x)
/* 16-byte aligned: KILN_FLOAT4_COPY may read or write 4 of its floats at once */
#define KILN_SHARED(type, name, size) __shared__ __align__(16) type name[size]
/* 4 floats copied as one 16-byte load and store (both addresses proved 16-byte aligned: render.ts), or set to v */
#define KILN_FLOAT4_COPY(dst, src) (*(float4 *)(dst) = *(const float4 *)(src))
#define KILN_FLOAT4_FILL(dst, v) (*(float4 *)(dst) = make_float4((v), (v), (v), (v)))
/* a thread loop: iteration t runs on thread t; a barrier after it */
#define KILN_THREADS(t, n) for (int t = (int)threadIdx.x, t##_once = 1; t##_once && t < (n); t##_once = 0)
/* the same with a 64-bit variable: the thread loop of a launch indexing past 2^31 - 1 elements (render.ts wide) */
#define KILN_THREADS_WIDE(t, n) for (long long t = (long long)threadIdx.x, t##_once = 1; t##_once && t < (n); t##_once = 0)
#define KILN_BARRIER() __syncthreads()
/* a declared tree's last levels (n/2, ..., 1 of P[0..n)) on the block's first warp (lanes `mask`, n of them at
   least): lane i holds P[i] and adds lane i + s's value at each level s, so lane 0 ends with the levels' P[0] */
#define KILN_WARP_TREE(type, P, n, mask, a, b, combine) do { if (threadIdx.x < 32) { \
    type a = P[threadIdx.x < (n) ? threadIdx.x : 0]; \
    for (int kiln_s_ = (n) / 2; kiln_s_ > 0; kiln_s_ >>= 1) { type b = __shfl_down_sync(mask, a, kiln_s_); a = (combine); } \
    if (threadIdx.x == 0) P[0] = a; } } while (0)
/* a block's arrival at a counter (loop IR `arrive`): each thread's stores made visible to the grid, then thread 0
   counts the block in; last[0] (shared) is 1 in the block that brings the count to n, which resets the counter, and
   what the other blocks stored before arriving is visible to it (the fence pattern of the CUDA guide's sum) */
#define KILN_ARRIVE(counter, n, last) do { __threadfence(); __syncthreads(); if (threadIdx.x == 0) { \
    int kiln_c_ = atomicAdd((counter), 1) + 1; (last)[0] = kiln_c_ == (n); if (kiln_c_ == (n)) *(counter) = 0; } \
    __syncthreads(); if ((last)[0]) __threadfence(); } while (0)
/* an array private to each thread of a block, alive across its thread loops */
#define KILN_PER_THREAD(type, name, size, threads) type name[size]
#define KILN_MINE(name) name
#define KILN_CHECK(call) do { cudaError_t kiln_e_ = (call); if (kiln_e_ != cudaSuccess) { \
    fprintf(stderr, "kiln: %s failed: %s\n", #call, cudaGetErrorString(kiln_e_)); exit(1); } } while (0)
/* KILN_CUDA_DEBUG set: launches run one at a time, not as a graph, each waited for, so a fault names its kernel */
static int kiln_cuda_debug;
/* Exits with one line naming the kernel where its launch failed (or, debugging, where it faulted). */
static void kiln_launched(const char *kernel, cudaStream_t stream) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    fprintf(stderr, "kiln: kernel %s failed to launch: %s\n", kernel, cudaGetErrorString(e));
    exit(1);
  }
  if (kiln_cuda_debug && (e = cudaStreamSynchronize(stream)) != cudaSuccess) {
    fprintf(stderr, "kiln: kernel %s failed: %s\n", kernel, cudaGetErrorString(e));
    exit(1);
  }
}
#define KILN_LAUNCH(kernel, grid, threads, stream, mem) do { \
    kernel<<<(grid), (threads), 0, (stream)>>>(mem); kiln_launched(#kernel, (stream)); } while (0)
/* Exits with one line where no GPU can run the kernels, before the first allocation would fail with "cudaMalloc
   failed: CUDA driver version is insufficient for CUDA runtime version" (what a machine without a driver says). */
static void kiln_cuda_require_device(void) {
  int driver = 0, runtime = 0, n = 0;
  cudaDriverGetVersion(&driver); /* 0: no driver installed */
  cudaRuntimeGetVersion(&runtime);
  cudaError_t e = cudaGetDeviceCount(&n);
  if (driver == 0 || e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    fputs("kiln: no CUDA device (or driver) found\n", stderr);
    exit(1);
  }
  if (e == cudaErrorInsufficientDriver) {
    fprintf(stderr, "kiln: the CUDA driver (%d.%d) is older than the CUDA runtime this program was built with (%d.%d)\n",
            driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
    exit(1);
  }
  if (e != cudaSuccess) {
    fprintf(stderr, "kiln: cudaGetDeviceCount failed: %s\n", cudaGetErrorString(e));
    exit(1);
  }
}
#else
#define KILN_HD static inline
#define KILN_KERNEL(name, threads) static void name(unsigned char *mem, int kiln_block_)
#define KILN_BLOCK_ID kiln_block_
#define KILN_SHARED(type, name, size) alignas(16) static type name[size]
#define KILN_FLOAT4_COPY(dst, src) memcpy((dst), (src), 16)
#define KILN_FLOAT4_FILL(dst, v) do { float *kiln_d_ = (dst); kiln_d_[0] = kiln_d_[1] = kiln_d_[2] = kiln_d_[3] = (v); } while (0)
#define KILN_THREADS(t, n) for (int t = 0; t < (n) && ((kiln_tid_ = t), 1); ++t)
#define KILN_THREADS_WIDE(t, n) for (long long t = 0; t < (n) && ((kiln_tid_ = (int)t), 1); ++t)
#define KILN_BARRIER() ((void)0)
#define KILN_WARP_TREE(type, P, n, mask, a, b, combine) do { for (int kiln_s_ = (n) / 2; kiln_s_ > 0; kiln_s_ >>= 1) \
    for (int kiln_i_ = 0; kiln_i_ < kiln_s_; ++kiln_i_) { type a = P[kiln_i_], b = P[kiln_i_ + kiln_s_]; P[kiln_i_] = (combine); } } while (0)
#define KILN_PER_THREAD(type, name, size, threads) static type name[threads][size]
/* blocks run one after another: the one that brings the count to n is the last */
#define KILN_ARRIVE(counter, n, last) do { int kiln_c_ = *(counter) + 1; (last)[0] = kiln_c_ == (n); \
    *(counter) = kiln_c_ == (n) ? 0 : kiln_c_; } while (0)
#define KILN_MINE(name) name[kiln_tid_]
static int kiln_tid_;
/* The launch checks of the GPU build: CUDA's limits on a launch's shape, and KILN_CUDA_EMULATE_FAIL=<kernel> to
   make that kernel's launch fail as a GPU's would (which tests the message without a GPU). */
static void kiln_launch_check(const char *kernel, long grid, long threads) {
  const char *fail = getenv("KILN_CUDA_EMULATE_FAIL");
  const char *why = grid < 1 || grid > 2147483647L || threads < 1 || threads > 1024 ? "invalid configuration argument"
                    : fail && strcmp(fail, kernel) == 0 ? "emulated failure (KILN_CUDA_EMULATE_FAIL)" : NULL;
  if (why) {
    fprintf(stderr, "kiln: kernel %s failed to launch: %s\n", kernel, why);
    exit(1);
  }
}
#define KILN_LAUNCH(kernel, grid, threads, stream, mem) do { kiln_launch_check(#kernel, (grid), (threads)); \
    for (int b_ = 0; b_ < (grid); ++b_) kernel((mem), b_); } while (0)
#endif

/* Copies between places of the block, all in one launch (the update copies of an entry: none overlaps another). */
#define KILN_MAX_COPIES 64
typedef struct { int n; long c[KILN_MAX_COPIES][3]; /* from, to, bytes */ } kiln_copy_list;
#ifndef KILN_CUDA_EMULATE
/* block (i, j): the j-th of 8 slices of copy i, in words where it is aligned */
__global__ void __launch_bounds__(256) kiln_copy_all(unsigned char *mem, kiln_copy_list l) {
  const long from = l.c[blockIdx.x][0], to = l.c[blockIdx.x][1], n = l.c[blockIdx.x][2];
  const long start = threadIdx.x + (long)blockIdx.y * blockDim.x, step = (long)blockDim.x * gridDim.y;
  if ((from | to | n) % 4 == 0)
    for (long i = start; i < n / 4; i += step) ((int *)(mem + to))[i] = ((const int *)(mem + from))[i];
  else
    for (long i = start; i < n; i += step) mem[to + i] = mem[from + i];
}
#define KILN_COPY_ALL(mem, list, stream) do { \
    kiln_copy_all<<<dim3((list).n, 8), 256, 0, (stream)>>>((mem), (list)); kiln_launched("kiln_copy_all", (stream)); } while (0)
#else
#define KILN_COPY_ALL(mem, list, stream) do { \
    for (int i_ = 0; i_ < (list).n; i_++) memmove((mem) + (list).c[i_][1], (mem) + (list).c[i_][0], (size_t)(list).c[i_][2]); } while (0)
#endif

/* a quad (codegen/loop/ir.ts): the four int8 elements from p as one little-endian int, p[0] its low byte, at any
   address (a GPU's 32-bit loads must be aligned) */
KILN_HD int kiln_quad(const signed char *p) {
  return (int)((uint32_t)(unsigned char)p[0] | (uint32_t)(unsigned char)p[1] << 8 | (uint32_t)(unsigned char)p[2] << 16 |
               (uint32_t)(unsigned char)p[3] << 24);
}

/* integer power (division, floor division, mod, sign, max and min are legalized into plain C: codegen/loop/legalize.ts) */
KILN_HD int kiln_ipow(int a, int b) {
  if (b < 0) return 0;
  uint32_t r = 1, x = (uint32_t)a;
  for (uint32_t e = (uint32_t)b; e; e >>= 1) { if (e & 1) r *= x; x *= x; }
  return (int)r;
}
/* float to int32 saturating, NaN to 0 */
KILN_HD int kiln_f2i(float a) { return a != a ? 0 : a >= 2147483648.f ? INT32_MAX : a < -2147483648.f ? INT32_MIN : (int)a; }
/* Transcendental ops in double, rounded once to float, as the interpreter (Math.fround(Math.exp(x))) and the wasm
   target: libm's expf and logf (glibc's, CUDA's) are not correctly rounded and differ from it in the last bit (glibc
   expf: 1 in ~1,600 inputs over [-20, 20]), so softmax and the loss would not be bit for bit. */
KILN_HD float kiln_exp(float a) { return (float)exp((double)a); }
KILN_HD float kiln_log(float a) { return (float)log((double)a); }
KILN_HD float kiln_log1p(float a) { return (float)log1p((double)a); }
KILN_HD float kiln_tanh(float a) { return (float)tanh((double)a); }
KILN_HD float kiln_erf(float a) { return (float)erf((double)a); }
KILN_HD float kiln_sin(float a) { return (float)sin((double)a); }
KILN_HD float kiln_cos(float a) { return (float)cos((double)a); }
KILN_HD float kiln_pow(float a, float b) { return (float)pow((double)a, (double)b); }
/* correctly rounded 1/x and 1/sqrt(x) (through double) */
KILN_HD float kiln_recip(float a) { return (float)(1.0 / (double)a); }
KILN_HD float kiln_rsqrt(float a) { return (float)(1.0 / sqrt((double)a)); }

/* int8 requantization (ir/quant.ts): gemmlowp's SaturatingRoundingDoublingHighMul (ties upward; INT32_MIN squared
   saturates) and RoundingDivideByPOT (ties away from zero), exponent in 0..31 */
KILN_HD int kiln_qmulhi(int a, int b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (1LL << 30) : 1 - (1LL << 30);
  return (int)((ab + nudge) / (1LL << 31));
}
KILN_HD int kiln_qshr(int x, int exponent) {
  int mask = (int)((1LL << exponent) - 1), remainder = x & mask, threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* int8 dot products (codegen/cuda/dp4a.ts): the four signed bytes of a times those of b, summed into c, wrapping as
   int32; __dp4a on the GPU (sm_61 and later), these sums in the emulation */
#ifndef KILN_CUDA_EMULATE
#define kiln_dp4a(a, b, c) __dp4a((a), (b), (c))
#else
KILN_HD int kiln_dp4a(int a, int b, int c) {
  unsigned s = (unsigned)c;
  for (int i = 0; i < 32; i += 8) s += (unsigned)((int)(signed char)((unsigned)a >> i) * (int)(signed char)((unsigned)b >> i));
  return (int)s;
}
#endif

/* Uniform float in [0, 1): word index%4 of Philox-4x32-10 block (index/4, counter, 0, 0) keyed (seed, 0). */
KILN_HD float kiln_philox(int32_t seed, int32_t counter, int32_t index) {
  uint32_t c0 = (uint32_t)index >> 2, c1 = (uint32_t)counter, c2 = 0, c3 = 0, k0 = (uint32_t)seed, k1 = 0;
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xd2511f53u * c0, p1 = (uint64_t)0xcd9e8d57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    k0 += 0x9e3779b9u; k1 += 0xbb67ae85u;
  }
  uint32_t w = ((uint32_t)index & 3) == 0 ? c0 : ((uint32_t)index & 3) == 1 ? c1 : ((uint32_t)index & 3) == 2 ? c2 : c3;
  return (float)(w >> 8) * 5.9604644775390625e-8f;
}
#endif
