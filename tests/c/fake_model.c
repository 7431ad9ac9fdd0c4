/* A hand-written stand-in for generated model.o + model_desc.c: predict y = two*x + w, and a trainStep updating w. */
#include "model.h"

#include <stdint.h>
#include <string.h>

/* memory layout (bytes): arena 64..191, inputs 256.., params 448.., the constant `two` at 704 */
enum { Y = 64, POS = 128, LOSS = 64, PRED = 96, W_NEW = 128, X = 256, LABELS = 320, RNG = 384, W = 448, ITERS = 512, LAST_RNG = 576, FLAGS = 640, TWO = 704 };
#define B 2
#define C 3

#define F(off) ((float *)(mem + (off)))
#define I(off) ((int32_t *)(mem + (off)))

/* y[b, j] = two * x[b, j] + w[j]; pos[b] = #(x[b, :] > 0) + flags[b] */
void fake_predict(unsigned char *mem) {
  int b, j;
  for (b = 0; b < B; b++) {
    I(POS)[b] = mem[FLAGS + b];
    for (j = 0; j < C; j++) {
      F(Y)[b * C + j] = F(TWO)[0] * F(X)[b * C + j] + F(W)[j];
      I(POS)[b] += F(X)[b * C + j] > 0;
    }
  }
}

/* pred = two*x + w; loss = mean((pred - onehot(label))^2); w_new = w - 0.5 * dloss/dw (copied onto w afterwards);
   iterations += 1 and last_rng = rng_counter in place */
void fake_train_step(unsigned char *mem) {
  float grad[C] = {0, 0, 0}, loss = 0;
  int b, j;
  for (b = 0; b < B; b++)
    for (j = 0; j < C; j++) {
      float r;
      F(PRED)[b * C + j] = F(TWO)[0] * F(X)[b * C + j] + F(W)[j];
      r = F(PRED)[b * C + j] - (I(LABELS)[b] == j ? 1.0f : 0.0f);
      loss += r * r;
      grad[j] += 2 * r / (B * C);
    }
  F(LOSS)[0] = loss / (B * C);
  for (j = 0; j < C; j++) F(W_NEW)[j] = F(W)[j] - 0.5f * grad[j];
  I(ITERS)[0] += 1;
  I(LAST_RNG)[0] = I(RNG)[0];
}

static const kiln_tensor params[] = {
    {"fake/w", KILN_F32, 1, {C}, W, C},
    {"fake/flags", KILN_BOOL, 1, {B}, FLAGS, B},
    {"optimizer/iterations", KILN_I32, 0, {0}, ITERS, 1},
    {"fake/last_rng", KILN_I32, 0, {0}, LAST_RNG, 1},
};
static const kiln_tensor predict_inputs[] = {{"x", KILN_F32, 2, {B, C}, X, B * C}};
static const kiln_tensor predict_outputs[] = {{"out/y", KILN_F32, 2, {B, C}, Y, B * C}, {"pos", KILN_I32, 1, {B}, POS, B}};
static const kiln_tensor train_inputs[] = {
    {"x", KILN_F32, 2, {B, C}, X, B * C},
    {"target/out/y", KILN_I32, 1, {B}, LABELS, B},
    {"rng_counter", KILN_I32, 0, {0}, RNG, 1},
};
static const kiln_tensor train_outputs[] = {{"loss", KILN_F32, 0, {0}, LOSS, 1}, {"pred/out/y", KILN_F32, 2, {B, C}, PRED, B * C}};
static const kiln_copy train_copies[] = {{W_NEW, W, C * 4}};
static const kiln_entry entries[] = {
    {"predict", fake_predict, 1, predict_inputs, 2, predict_outputs, 0, NULL, B, "a fake model"},
    {"trainStep", fake_train_step, 3, train_inputs, 2, train_outputs, 1, train_copies, B, "a training step"},
};

static const float two = 2.0f;
#ifdef FAKE_EMBED
static const float w_init[C] = {0.5f, -0.5f, 0.25f};
static const unsigned char flags_init[B] = {1, 0};
static const kiln_segment segments[] = {
    {TWO, 4, (const unsigned char *)&two}, {W, 12, (const unsigned char *)w_init}, {FLAGS, 2, flags_init}};
const kiln_model_desc kiln_model = {KILN_MEMORY_BYTES, KILN_ARENA_BYTES, 4, params, 2, entries, 3, segments, 1};
#else
static const kiln_segment segments[] = {{TWO, 4, (const unsigned char *)&two}};
const kiln_model_desc kiln_model = {KILN_MEMORY_BYTES, KILN_ARENA_BYTES, 4, params, 2, entries, 1, segments, 0};
#endif
