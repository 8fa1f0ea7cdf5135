#include "small_kernels.h"
#include "dispatch.h"
#include "kernel_shapes.h"
#include "vector_tanh.h"
#include <immintrin.h>
#include <string.h>

// AVX-512 (F, BW, DQ, VL) bodies of the float kernels, beside the AVX2 ones in small_kernels.c and
// chosen by the same run-time dispatch (dispatch.c). What 16 lanes and 32 registers change:
// - A row of up to 16 columns is one register, and a block keeps 8 rows (6 for 32 columns, 4 for
//   48 and 64) in registers over the whole k loop; each element of A is broadcast into its
//   multiply-adds from memory; a few rows over a long k interleave partial sums.
// - A ragged row end is a mask register: the last vector's loads and stores never touch memory
//   past the row, without AVX2's microcoded vmaskmovps.
// - A weight gradient's transpose (the swapped form) keeps four or five rows of Cᵀ by up to four
//   registers.
// Which shapes take these bodies and which stay on the AVX2 ones is measured, per shape, never
// per CPU model: see the entry points at the end.

#define TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"
#define KERNEL __attribute__((target(TARGET)))
#define INLINE_KERNEL __attribute__((target(TARGET), always_inline)) static inline


// The finish forms of kernel_shapes.h on one register: C and y where the result goes are loaded
// only when `kind` needs them.
#define FINISH_FLAGS(kind)                                                                                               \
    const int general = kind == FINISH_GENERAL;                                                                          \
    const int addsC = general ? beta != 0.0f : kind == FINISH_ADD_TANH || kind == FINISH_ADD_DERIVATIVE || kind == FINISH_ADD; \
    const int tanh = general ? e->tanh : kind == FINISH_ADD_TANH;                                                        \
    const int derivative = general ? e->y != 0 : kind == FINISH_DERIVATIVE || kind == FINISH_ADD_DERIVATIVE

// α · sum + β · C, then tanh if asked: the same operations in the same order as finish_kind.
INLINE_KERNEL __m512 finish_value(const int general, __m512 sum, float alpha, float beta, int addsC, int tanh, __m512 old) {
    __m512 result = !general || alpha == 1.0f ? sum : _mm512_mul_ps(sum, _mm512_set1_ps(alpha));
    if (addsC) result = !general || beta == 1.0f ? _mm512_add_ps(result, old) : _mm512_fmadd_ps(old, _mm512_set1_ps(beta), result);
    if (tanh) result = tanh512(result);
    return result;
}

INLINE_KERNEL __m512 times_derivative(__m512 result, __m512 outputs) {
    return _mm512_mul_ps(result, _mm512_fnmadd_ps(outputs, outputs, _mm512_set1_ps(1.0f)));
}

// 16 floats at `p`, the lanes of `mask` (the rest zero); a full mask is a plain load and store.
// A masked store, even with every lane set, keeps a later load of the same bytes from taking its
// value straight from the store (the load waits for the store to retire, several times longer than
// behind a plain store), and a recurrence reads each step's results at the next.
INLINE_KERNEL __m512 load_lanes(const float *p, __mmask16 mask) {
    return mask == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

INLINE_KERNEL void store_lanes(float *p, __mmask16 mask, __m512 v) {
    if (mask == 0xFFFF) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, mask, v);
}

// result = e(α · sum + β · C) into 16 contiguous floats at `target`, the lanes of `mask` only.
INLINE_KERNEL void finish512(const int kind, __m512 sum, float *target, float alpha, float beta, __mmask16 mask,
                             const epilogue *e) {
    FINISH_FLAGS(kind);
    // A backward step adds the upstream gradient from where it lies (no copy into C first: a
    // 64-byte load of what memcpy had just stored in 32-byte pieces waited for the stores).
    const float *addend = kind == FINISH_ADD_DERIVATIVE && e->addend ? e->addend + (target - e->c) : target;
    __m512 old = addsC ? load_lanes(addend, mask) : _mm512_setzero_ps();
    __m512 result = finish_value(general, sum, alpha, beta, addsC, tanh, old);
    if (derivative) result = times_derivative(result, load_lanes(e->y + (target - e->c), mask));
    store_lanes(target, mask, result);
}

// ---------------------------------------------------------------------------------------------
// Blocked: `R` rows of C by `V` registers (16 columns each, the last through `last`), with `P`
// interleaved partial sums over k where R·V alone gives too few independent chains of
// multiply-adds to cover their latency (a long k over few rows: a weight gradient).

#define BLOCK_ROWS 8
#define PARITIES(chains) ((chains) >= 8 ? 1 : (chains) >= 3 ? 2 : 4)

INLINE_KERNEL void block512(const int R, const int V, const int P, long k, float alpha, const float *a, long rowStride,
                            long depthStride, const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e,
                            __mmask16 last, const int kind) {
    __m512 acc[BLOCK_ROWS][4][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++)
            for (int p = 0; p < P; p++) acc[r][v][p] = _mm512_setzero_ps();
    long kk = 0;
    for (; kk + P <= k; kk += P)
        for (int p = 0; p < P; p++) {
            const float *bp = b + (kk + p) * ldb;
            const float *ap = a + (kk + p) * depthStride;
            __m512 bv[4];
            for (int v = 0; v < V; v++) bv[v] = v + 1 < V ? _mm512_loadu_ps(bp + 16 * v) : _mm512_maskz_loadu_ps(last, bp + 16 * v);
            for (int r = 0; r < R; r++) {
                __m512 x = _mm512_set1_ps(ap[r * rowStride]);
                for (int v = 0; v < V; v++) acc[r][v][p] = _mm512_fmadd_ps(x, bv[v], acc[r][v][p]);
            }
        }
    for (; kk < k; kk++) {
        const float *bp = b + kk * ldb;
        const float *ap = a + kk * depthStride;
        __m512 bv[4];
        for (int v = 0; v < V; v++) bv[v] = v + 1 < V ? _mm512_loadu_ps(bp + 16 * v) : _mm512_maskz_loadu_ps(last, bp + 16 * v);
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(ap[r * rowStride]);
            for (int v = 0; v < V; v++) acc[r][v][0] = _mm512_fmadd_ps(x, bv[v], acc[r][v][0]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            __m512 sum = acc[r][v][0];
            for (int p = 1; p < P; p++) sum = _mm512_add_ps(sum, acc[r][v][p]);
            finish512(kind, sum, c + r * ldc + 16 * v, alpha, beta, v + 1 < V ? (__mmask16)0xFFFF : last, e);
        }
}

// Every row of one panel of V registers: blocks of the panel's row count, then the rest together.
#define PANEL_ROWS(V) ((V) == 1 ? 8 : (V) == 2 ? 6 : 4)
#define REST_CASE(N)                                                                                                   \
    case N:                                                                                                            \
        if (N < PANEL_ROWS(V))                                                                                         \
            block512(N, V, PARITIES(N * V), k, alpha, a + i * rowStride, rowStride, depthStride, b, ldb, beta, c + i * ldc, ldc, e, last, kind); \
        break;

INLINE_KERNEL void panel512(const int V, long m, long k, float alpha, const float *a, long rowStride, long depthStride,
                            const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e, __mmask16 last,
                            const int kind) {
    const int R = PANEL_ROWS(V);
    long i = 0;
    for (; i + R <= m; i += R)
        block512(R, V, PARITIES(R * V), k, alpha, a + i * rowStride, rowStride, depthStride, b, ldb, beta, c + i * ldc, ldc, e, last, kind);
    switch (m - i) {
    REST_CASE(1)
    REST_CASE(2)
    REST_CASE(3)
    REST_CASE(4)
    REST_CASE(5)
    REST_CASE(6)
    REST_CASE(7)
    default: break;
    }
}

INLINE_KERNEL void blocked512_body(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                                   const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e, const int kind) {
    for (long j = 0; j < n; j += 64) {
        long width = n - j < 64 ? n - j : 64, vectors = (width + 15) / 16;
        __mmask16 last = rnnkit_first_lanes16(width - 16 * (vectors - 1));
        switch (vectors) {
        case 1: panel512(1, m, k, alpha, a, rowStride, depthStride, b + j, ldb, beta, c + j, ldc, e, last, kind); break;
        case 2: panel512(2, m, k, alpha, a, rowStride, depthStride, b + j, ldb, beta, c + j, ldc, e, last, kind); break;
        case 3: panel512(3, m, k, alpha, a, rowStride, depthStride, b + j, ldb, beta, c + j, ldc, e, last, kind); break;
        default: panel512(4, m, k, alpha, a, rowStride, depthStride, b + j, ldb, beta, c + j, ldc, e, last, kind); break;
        }
    }
}

// One body per finish form, compiled apart (as the AVX2 kernels do); the recurrence calls its forms directly.
#define BLOCKED_FORM(NAME, KIND)                                                                                        \
    KERNEL static void NAME(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,       \
                            const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e) {              \
        blocked512_body(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e, KIND);                      \
    }
BLOCKED_FORM(blocked512_general, FINISH_GENERAL)
BLOCKED_FORM(blocked512_store, FINISH_STORE)
BLOCKED_FORM(blocked512_add, FINISH_ADD)
BLOCKED_FORM(blocked512_add_tanh, FINISH_ADD_TANH)
BLOCKED_FORM(blocked512_derivative, FINISH_DERIVATIVE)
BLOCKED_FORM(blocked512_add_derivative, FINISH_ADD_DERIVATIVE)

KERNEL static void blocked512(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                              const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e) {
    switch (plain_finish(alpha, beta, e)) {
    case FINISH_STORE: blocked512_store(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e); break;
    case FINISH_ADD: blocked512_add(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e); break;
    default: blocked512_general(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e); break;
    }
}

// ---------------------------------------------------------------------------------------------
// Swapped: Cᵀ [n, m] = Bᵀ·A for Aᵀ·B with a long k (see swapped_avx2), Q rows of Cᵀ by V
// registers over the whole k loop; a last group short of Q rows repeats its last row (computed,
// not stored).

INLINE_KERNEL void transposed512_block(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                                       float *transposed, long j, const int V, const int Q, __mmask16 last) {
    for (long i = 0; i < n; i += Q) {
        const float *rows[5];
        for (int q = 0; q < Q; q++) rows[q] = b + (i + q < n ? i + q : n - 1);
        __m512 acc[5][4];
        for (int q = 0; q < Q; q++)
            for (int v = 0; v < V; v++) acc[q][v] = _mm512_setzero_ps();
        const float *ap = a + j;
        long offset = 0;
        for (long kk = 0; kk < k; kk++, ap += lda, offset += ldb) {
            __m512 av[4];
            for (int v = 0; v < V; v++) av[v] = v + 1 < V ? _mm512_loadu_ps(ap + 16 * v) : _mm512_maskz_loadu_ps(last, ap + 16 * v);
            for (int q = 0; q < Q; q++) {
                __m512 x = _mm512_set1_ps(rows[q][offset]);
                for (int v = 0; v < V; v++) acc[q][v] = _mm512_fmadd_ps(x, av[v], acc[q][v]);
            }
        }
        for (int q = 0; q < Q; q++)
            if (i + q < n)
                for (int v = 0; v < V; v++)
                    _mm512_mask_storeu_ps(transposed + (i + q) * m + j + 16 * v, v + 1 < V ? (__mmask16)0xFFFF : last, acc[q][v]);
    }
}

KERNEL static void swapped512(long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
                              float beta, float *c, long ldc) {
    float transposed[SWAP_LIMIT];
    for (long j = 0; j < m; j += 64) {
        long width = m - j < 64 ? m - j : 64, vectors = (width + 15) / 16;
        __mmask16 last = rnnkit_first_lanes16(width - 16 * (vectors - 1));
        switch (vectors) {
        case 1: transposed512_block(m, n, k, a, lda, b, ldb, transposed, j, 1, 5, last); break;
        case 2: transposed512_block(m, n, k, a, lda, b, ldb, transposed, j, 2, 5, last); break;
        case 3: transposed512_block(m, n, k, a, lda, b, ldb, transposed, j, 3, 4, last); break;
        default: transposed512_block(m, n, k, a, lda, b, ldb, transposed, j, 4, 4, last); break;
        }
    }
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float value = alpha * transposed[j * m + i];
            c[i * ldc + j] = beta == 0 ? value : value + beta * c[i * ldc + j];
        }
}

// ---------------------------------------------------------------------------------------------
// Entry points (dispatch.h): which shapes take these bodies, from interleaved timings of both
// paths on one AVX-512 core (a 2-core AMD EPYC, Zen 4, which runs a 512-bit operation as two
// 256-bit halves, so 16 lanes do no more multiply-adds per cycle than two 8-lane vectors; see the
// top of this file). Taken, where they beat the AVX2 bodies: the transposed weight gradient
// (Model A's dW), rows of a whole number of registers (n = 16, 32, 48, 64: no masked store;
// Model B's 16-unit recurrence and its input projection), and any n above 8 with k ≥ 64 (a weight
// gradient's long sum, where the ragged end's masked stores are few against the multiply-adds);
// the recurrence forward for 16–64 units in steps of 16 (the fused tanh runs on 16 lanes),
// backward for 32–64. Left to the AVX2 bodies, where they lose: the flattened widths (a flattened
// AVX-512 body, eight rows as two 8-lane halves of each register, was slower and was removed),
// and a ragged n with a short k (the masked stores). The rule is avx512_sgemm_suits (kernel_shapes.h), tested by
// the caller before it calls here.
void rnnkit_sgemm_avx512(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                         const float *b, long ldb, float beta, float *c, long ldc) {
    long rowStride = transA ? 1 : lda, depthStride = transA ? lda : 1;
    if (swap_suits_lanes(transA, transB, m, n, k, 16)) swapped512(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else blocked512(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, &NO_EPILOGUE);
}

int rnnkit_sgemm_nn_tanh_avx512(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
    if (n % 16 != 0) return 0;
    blocked512(m, n, k, 1.0f, a, lda, 1, b, ldb, 1.0f, c, ldc, &TANH_EPILOGUE);
    return 1;
}

// tanh of `count` values in place, `count` a multiple of 16 (a step of a width the recurrence takes).
KERNEL static void tanh_in_place512(float *values, long count) {
    for (long i = 0; i < count; i += 16) _mm512_storeu_ps(values + i, tanh512(_mm512_loadu_ps(values + i)));
}

// The whole recurrence for units a multiple of 16 (16 to 64: every store a plain one; the rest
// stay on the AVX2 body, flattened or blocked).
int rnnkit_rnn_tanh_forward_avx512(long steps, long batch, long units, float *gates, const float *u, const float *h0) {
    if (units % 16 != 0) return 0;
    long step = batch * units;
    for (long t = 0; t < steps; t++) {
        float *g = gates + t * step;
        const float *previous = t == 0 ? h0 : g - step;
        if (!previous) tanh_in_place512(g, step);
        else blocked512_add_tanh(batch, units, units, 1.0f, previous, units, 1, u, units, 1.0f, g, units, &TANH_EPILOGUE);
    }
    return 1;
}

// d = up ⊙ (1 − h²) over `count` values, a multiple of 16.
KERNEL static void last_step_gradient512(long count, const float *h, const float *up, float *d) {
    __m512 one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < count; i += 16) {
        __m512 y = _mm512_loadu_ps(h + i);
        _mm512_storeu_ps(d + i, _mm512_mul_ps(_mm512_loadu_ps(up + i), _mm512_fnmadd_ps(y, y, one)));
    }
}

// Its backward pass for 32, 48 or 64 units. A backward step has no tanh to share the 16 lanes
// with, so on a core that halves 512-bit operations it is multiply-adds alone, no faster in 16
// lanes than in 8: with 16 units the two bodies run level (interleaved pairs), while from 32 units
// this one is slightly ahead, hence 32–64 only.
int rnnkit_rnn_tanh_backward_avx512(long steps, long batch, long units, const float *states, const float *upstream,
                                    int sequence, const float *u, float *dz, float *carried, int wantInitial) {
    if (units % 16 != 0 || units < 32) return 0;
    float transposed[RNNKIT_SMALL_TRANSPOSED_LIMIT];
    TRANSPOSE(transposed, u, units, units, units);
    long step = batch * units;
    // The last step: dz = upstream ⊙ (1 − h²).
    last_step_gradient512(step, states + (steps - 1) * step, sequence ? upstream + (steps - 1) * step : upstream,
                          dz + (steps - 1) * step);
    // Every earlier step in the product's epilogue (see rnn_tanh_backward_avx2).
    for (long t = steps - 1; t > 0; t--) {
        float *previous = dz + (t - 1) * step;
        epilogue derivative = {0, states + (t - 1) * step, previous, sequence ? upstream + (t - 1) * step : 0};
        if (sequence) {
            blocked512_add_derivative(batch, units, units, 1.0f, dz + t * step, units, 1, transposed, units, 1.0f, previous, units,
                                      &derivative);
        } else {
            blocked512_derivative(batch, units, units, 1.0f, dz + t * step, units, 1, transposed, units, 0.0f, previous, units,
                                  &derivative);
        }
    }
    // What reaches h0: carried = dz_0 · Uᵀ.
    if (wantInitial) blocked512(batch, units, units, 1.0f, dz, units, 1, transposed, units, 0.0f, carried, units, &NO_EPILOGUE);
    return 1;
}
