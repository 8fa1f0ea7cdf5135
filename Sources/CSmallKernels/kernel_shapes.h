#ifndef RNNKIT_KERNEL_SHAPES_H
#define RNNKIT_KERNEL_SHAPES_H

// What the AVX2 and AVX-512 float kernels share: the forms a product's finish takes, and which
// shapes take the flattened and transposed (swapped) layouts. No vector code: each kernel file
// includes it under its own target attributes.

#include "small_kernels.h"
#include <string.h>

// destination [cols, rows] (row stride rows) = source [rows, cols] (row stride ld) transposed.
#define TRANSPOSE(destination, source, rows, cols, ld)                                             \
    for (long r_ = 0; r_ < (rows); r_++)                                                           \
        for (long q_ = 0; q_ < (cols); q_++) (destination)[q_ * (rows) + r_] = (source)[r_ * (ld) + q_]

// tanh's clamp, for every vector width: the rational approximation is within 2 ulp of ±1 here.
#define TANH_BOUND 7.90531110763549805f

// What a product does to each result after α and β, before its one store: nothing, tanh (a
// recurrent step's activation), or a multiply by 1 − y² (tanh's derivative, from the layer's
// outputs y, laid out as C is: a backward step's gradient through the activation).
typedef struct {
    int tanh;
    const float *y; // with `c`, the start of C, so that y's element for c + i is y + i
    const float *c;
    // The AVX-512 bodies' FINISH_ADD_DERIVATIVE adds this (laid out as C) instead of C when set.
    const float *addend;
} epilogue;

static const epilogue NO_EPILOGUE = {0, 0, 0, 0}, TANH_EPILOGUE = {1, 0, 0, 0};

// How a kernel body finishes each vector of results. The general form tests α, β and the
// epilogue for every vector; the others are compiled into a body of their own, chosen once per
// call, so that the small recurrences' forward and backward steps and Model A's input projection
// do not pay a test per vector (the gain is in docs/PERFORMANCE-HISTORY.md).
#define FINISH_GENERAL 0
#define FINISH_ADD_TANH 1       // tanh(C + sum): a forward step, C holding x_t·W + b
#define FINISH_DERIVATIVE 2     // sum ⊙ (1 − y²): a backward step with nothing from above
#define FINISH_ADD_DERIVATIVE 3 // (C + sum) ⊙ (1 − y²): a backward step, C holding the upstream
#define FINISH_STORE 4          // sum: α = 1, β = 0, no epilogue
#define FINISH_ADD 5            // C + sum: α = 1, β = 1, no epilogue

// The finish of a plain product (α = 1, β = 0 or 1, no epilogue: the engine's usual call), or
// FINISH_GENERAL for any other.
static inline int plain_finish(float alpha, float beta, const epilogue *e) {
    if (alpha != 1.0f || e->tanh || e->y) return FINISH_GENERAL;
    return beta == 0.0f ? FINISH_STORE : beta == 1.0f ? FINISH_ADD : FINISH_GENERAL;
}

// A weight gradient's shape that runs as its transpose (swapped_avx2, swapped_avx512): Aᵀ·B with
// a long k, and m filling more of a `lanes`-wide vector's lanes than n does.
#define SWAP_LIMIT 4096

static inline long lane_fill_percent(long width, long lanes) { return 100 * width / ((width + lanes - 1) / lanes * lanes); }

static inline int swap_suits_lanes(int transA, int transB, long m, long n, long k, long lanes) {
    return transA && !transB && k >= 64 && m * n <= SWAP_LIMIT && lane_fill_percent(m, lanes) > lane_fill_percent(n, lanes);
}

// The flattened layout's shapes (see flat_body, and flat512_body for AVX-512): an even n that is
// not a multiple of 8, a dense C (ldc == n), B packed with each of its rows repeated FLAT_ROWS times.
#define FLAT_ROWS 4
#define FLAT_MAX_VECTORS 7
#define FLAT_PACK_LIMIT 8192

// n = 2 would put four rows in one vector (the blend takes two); multiples of 8 fill the block
// kernel's lanes already.
static inline int flat_width(long n) { return n == 4 || n == 6 || n == 10 || n == 12 || n == 14; }

static inline int flat_suits(long n, long k, long ldc) {
    return ldc == n && flat_width(n) && k * FLAT_ROWS * n <= FLAT_PACK_LIMIT;
}

// B [k, n] (row stride ldb) packed for the flattened kernel: each row repeated FLAT_ROWS times.
// Copies of a constant size, which the compiler inlines as a few moves (a call to memcpy per
// 40-byte row cost more than the product it packs for).
#define FLAT_PACK_CASE(N)                                                                          \
    case N:                                                                                        \
        for (long kk = 0; kk < k; kk++)                                                            \
            for (long r = 0; r < FLAT_ROWS; r++) memcpy(packed + kk * 4 * N + r * N, b + kk * ldb, N * sizeof(float)); \
        return;

static inline void flat_pack(long n, long k, const float *b, long ldb, float *packed) {
    switch (n) {
    FLAT_PACK_CASE(4)
    FLAT_PACK_CASE(6)
    FLAT_PACK_CASE(10)
    FLAT_PACK_CASE(12)
    FLAT_PACK_CASE(14)
    default:
        for (long kk = 0; kk < k; kk++)
            for (long r = 0; r < FLAT_ROWS; r++) memcpy(packed + kk * FLAT_ROWS * n + r * n, b + kk * ldb, (size_t)n * sizeof(float));
    }
}

// Which products the AVX-512 bodies take (the rule and its measurements are at the end of
// small_kernels_avx512.c): the transposed weight gradient over 16 lanes; not the flattened widths;
// rows of a whole number of 16-lane registers, or any n above 8 with a long k.
static inline int avx512_blocked_suits(long n, long k) { return n > 8 && (n % 16 == 0 || k >= 64); }

static inline int avx512_sgemm_suits(int transA, int transB, long m, long n, long k, long ldc) {
    if (swap_suits_lanes(transA, transB, m, n, k, 16)) return 1;
    if (m >= 32 && flat_suits(n, k, ldc)) return 0;
    return avx512_blocked_suits(n, k);
}

#endif
