#include "small_kernels.h"
#include "dispatch.h"
#include <immintrin.h>
#include <string.h>
#include "kernel_shapes.h"
#include "vector_tanh.h"

// ---------------------------------------------------------------------------------------------
// Portable kernels, for either type: plain loops in an order the compiler vectorises (the inner
// loop runs along a row of B and of C).

#define PORTABLE_BLOCKED(NAME, T)                                                                 \
static void NAME(long m, long n, long k, T alpha, const T *a, long rowStride, long depthStride,   \
                 const T *b, long ldb, T beta, T *c, long ldc) {                                  \
    for (long i = 0; i < m; i++) {                                                                \
        T *row = c + i * ldc;                                                                     \
        T sums[64];                                                                               \
        for (long j0 = 0; j0 < n; j0 += 64) {                                                     \
            long width = n - j0 < 64 ? n - j0 : 64;                                               \
            for (long j = 0; j < width; j++) sums[j] = 0;                                         \
            for (long kk = 0; kk < k; kk++) {                                                     \
                T scale = a[i * rowStride + kk * depthStride];                                    \
                const T *bRow = b + kk * ldb + j0;                                                \
                for (long j = 0; j < width; j++) sums[j] += scale * bRow[j];                      \
            }                                                                                     \
            for (long j = 0; j < width; j++)                                                      \
                row[j0 + j] = beta == 0 ? alpha * sums[j] : alpha * sums[j] + beta * row[j0 + j]; \
        }                                                                                         \
    }                                                                                             \
}

PORTABLE_BLOCKED(blocked_portable_f, float)
PORTABLE_BLOCKED(blocked_portable_d, double)

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA, float: a block of 4 rows x 16 columns of C (8 x 8-lane registers) stays in
// registers over the whole k loop, so each broadcast of an element of A feeds two fused
// multiply-adds and each load of B four; narrower blocks (8 columns, and the ragged last one,
// with masked loads and stores that never touch memory past the row) follow the same pattern.
// The epilogue scales, adds beta * C, and optionally applies tanh before the single store.


#define FULL_MASK _mm256_set1_epi32(-1)

// result = e(α · sum + β · C), stored once. Each step is a constant of `kind` (so a fixed form's
// body has no test in it) or, for FINISH_GENERAL, decided per vector from α, β and `e`; every form
// runs the same operations in the same order, so all give the same bits.
__attribute__((target("avx2,fma"), always_inline))
static inline void finish_kind(const int kind, __m256 sum, float *target, float alpha, float beta, int partial, __m256i mask,
                               const epilogue *e) {
    const int general = kind == FINISH_GENERAL;
    const int addsC = general ? beta != 0.0f : kind == FINISH_ADD_TANH || kind == FINISH_ADD_DERIVATIVE || kind == FINISH_ADD;
    const int tanh = general ? e->tanh : kind == FINISH_ADD_TANH;
    const int derivative = general ? e->y != 0 : kind == FINISH_DERIVATIVE || kind == FINISH_ADD_DERIVATIVE;
    __m256 result = !general || alpha == 1.0f ? sum : _mm256_mul_ps(sum, _mm256_set1_ps(alpha));
    if (addsC) {
        __m256 old = partial ? _mm256_maskload_ps(target, mask) : _mm256_loadu_ps(target);
        result = !general || beta == 1.0f ? _mm256_add_ps(result, old) : _mm256_fmadd_ps(old, _mm256_set1_ps(beta), result);
    }
    if (tanh) result = tanh_avx2(result);
    if (derivative) {
        const float *y = e->y + (target - e->c);
        __m256 outputs = partial ? _mm256_maskload_ps(y, mask) : _mm256_loadu_ps(y);
        result = _mm256_mul_ps(result, _mm256_fnmadd_ps(outputs, outputs, _mm256_set1_ps(1.0f)));
    }
    if (partial) _mm256_maskstore_ps(target, mask, result);
    else _mm256_storeu_ps(target, result);
}

// `rows` (1–3) rows of C by `vectors` (1–2) vectors together, with `parities` interleaved partial
// sums over k: rows × vectors × parities independent chains of multiply-adds (six to eight), so a
// long k keeps both FMA units busy instead of waiting on each chain's latency. All three are
// constants once inlined; the last vector is read and written through `last`.
__attribute__((target("avx2,fma"), always_inline))
static inline void tail_rows(const long rows, const long vectors, const long parities, long k, float alpha, const float *a,
                             long rowStride, long depthStride, const float *b, long ldb, float beta, float *c, long ldc,
                             const epilogue *e, __m256i last, const int kind) {
    __m256 sums[3][2][4];
    for (long r = 0; r < rows; r++)
        for (long v = 0; v < vectors; v++)
            for (long p = 0; p < parities; p++) sums[r][v][p] = _mm256_setzero_ps();
    long kk = 0;
    for (; kk + parities <= k; kk += parities) {
        for (long p = 0; p < parities; p++) {
            const float *bp = b + (kk + p) * ldb;
            __m256 bv[2];
            for (long v = 0; v < vectors; v++) bv[v] = v + 1 < vectors ? _mm256_loadu_ps(bp + 8 * v) : _mm256_maskload_ps(bp + 8 * v, last);
            for (long r = 0; r < rows; r++) {
                __m256 x = _mm256_broadcast_ss(a + r * rowStride + (kk + p) * depthStride);
                for (long v = 0; v < vectors; v++) sums[r][v][p] = _mm256_fmadd_ps(x, bv[v], sums[r][v][p]);
            }
        }
    }
    for (; kk < k; kk++) {
        const float *bp = b + kk * ldb;
        for (long r = 0; r < rows; r++) {
            __m256 x = _mm256_broadcast_ss(a + r * rowStride + kk * depthStride);
            for (long v = 0; v < vectors; v++) {
                __m256 bv = v + 1 < vectors ? _mm256_loadu_ps(bp + 8 * v) : _mm256_maskload_ps(bp + 8 * v, last);
                sums[r][v][0] = _mm256_fmadd_ps(x, bv, sums[r][v][0]);
            }
        }
    }
    int lastIsPartial = _mm256_movemask_ps(_mm256_castsi256_ps(last)) != 0xFF;
    for (long r = 0; r < rows; r++)
        for (long v = 0; v < vectors; v++) {
            __m256 sum = sums[r][v][0];
            for (long p = 1; p < parities; p++) sum = _mm256_add_ps(sum, sums[r][v][p]);
            int partial = v + 1 == vectors && lastIsPartial;
            finish_kind(kind, sum, c + r * ldc + 8 * v, alpha, beta, partial, partial ? last : FULL_MASK, e);
        }
}

// Rows a0..a3 (rows i..i+3 of op(A)) of C = op(A)·B: two vectors wide while more than 8 columns
// remain, then one.
__attribute__((target("avx2,fma"), always_inline))
static inline void four_rows(long n, long full, __m256i tail, long k, float alpha, const float *a0, long rowStride,
                             long depthStride, const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e,
                             const int kind) {
    const float *a1 = a0 + rowStride, *a2 = a1 + rowStride, *a3 = a2 + rowStride;
    long j = 0;
    // Two vectors wide while more than 8 columns remain; the second may be the ragged one.
    for (; j + 8 < n; j += 16) {
        int partial = j + 8 >= full;
        __m256i mask = partial ? tail : FULL_MASK;
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0;
        const float *bp = b + j;
        long offset = 0;
        for (long kk = 0; kk < k; kk++, bp += ldb, offset += depthStride) {
            __m256 bv = _mm256_loadu_ps(bp);
            __m256 bw = _mm256_maskload_ps(bp + 8, mask);
            __m256 x0 = _mm256_broadcast_ss(a0 + offset), x1 = _mm256_broadcast_ss(a1 + offset);
            __m256 x2 = _mm256_broadcast_ss(a2 + offset), x3 = _mm256_broadcast_ss(a3 + offset);
            c0 = _mm256_fmadd_ps(x0, bv, c0); d0 = _mm256_fmadd_ps(x0, bw, d0);
            c1 = _mm256_fmadd_ps(x1, bv, c1); d1 = _mm256_fmadd_ps(x1, bw, d1);
            c2 = _mm256_fmadd_ps(x2, bv, c2); d2 = _mm256_fmadd_ps(x2, bw, d2);
            c3 = _mm256_fmadd_ps(x3, bv, c3); d3 = _mm256_fmadd_ps(x3, bw, d3);
        }
        float *row = c + j;
        finish_kind(kind, c0, row, alpha, beta, 0, FULL_MASK, e);
        finish_kind(kind, d0, row + 8, alpha, beta, partial, mask, e);
        finish_kind(kind, c1, row + ldc, alpha, beta, 0, FULL_MASK, e);
        finish_kind(kind, d1, row + ldc + 8, alpha, beta, partial, mask, e);
        finish_kind(kind, c2, row + 2 * ldc, alpha, beta, 0, FULL_MASK, e);
        finish_kind(kind, d2, row + 2 * ldc + 8, alpha, beta, partial, mask, e);
        finish_kind(kind, c3, row + 3 * ldc, alpha, beta, 0, FULL_MASK, e);
        finish_kind(kind, d3, row + 3 * ldc + 8, alpha, beta, partial, mask, e);
    }
    for (; j < n; j += 8) {
        int partial = j >= full;
        __m256i mask = partial ? tail : FULL_MASK;
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        const float *bp = b + j;
        long offset = 0;
        for (long kk = 0; kk < k; kk++, bp += ldb, offset += depthStride) {
            __m256 bv = _mm256_maskload_ps(bp, mask);
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset), bv, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + offset), bv, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + offset), bv, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + offset), bv, c3);
        }
        float *row = c + j;
        finish_kind(kind, c0, row, alpha, beta, partial, mask, e);
        finish_kind(kind, c1, row + ldc, alpha, beta, partial, mask, e);
        finish_kind(kind, c2, row + 2 * ldc, alpha, beta, partial, mask, e);
        finish_kind(kind, c3, row + 3 * ldc, alpha, beta, partial, mask, e);
    }
}

// One row of C, with four partial sums over alternate steps of k, so that a long k (a weight
// gradient's sum over every sample and step) is not one chain of dependent multiply-adds.
__attribute__((target("avx2,fma"), always_inline))
static inline void one_row(long n, long full, __m256i tail, long k, float alpha, const float *a0, long depthStride,
                           const float *b, long ldb, float beta, float *c, const epilogue *e, const int kind) {
    for (long j = 0; j < n; j += 8) {
        int partial = j >= full;
        __m256i mask = partial ? tail : FULL_MASK;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const float *bp = b + j;
        long offset = 0, kk = 0;
        for (; kk + 4 <= k; kk += 4, bp += 4 * ldb, offset += 4 * depthStride) {
            s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset), _mm256_maskload_ps(bp, mask), s0);
            s1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset + depthStride), _mm256_maskload_ps(bp + ldb, mask), s1);
            s2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset + 2 * depthStride), _mm256_maskload_ps(bp + 2 * ldb, mask), s2);
            s3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset + 3 * depthStride), _mm256_maskload_ps(bp + 3 * ldb, mask), s3);
        }
        for (; kk < k; kk++, bp += ldb, offset += depthStride) {
            s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + offset), _mm256_maskload_ps(bp, mask), s0);
        }
        __m256 sum = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
        finish_kind(kind, sum, c + j, alpha, beta, partial, mask, e);
    }
}

__attribute__((target("avx2,fma"), always_inline))
static inline void blocked_body(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                                const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e, const int kind) {
    long full = n & ~7L, rem = n - full;
    __m256i tail = rnnkit_first_lanes(rem);
    long i = 0;
    for (; i + 4 <= m; i += 4)
        four_rows(n, full, tail, k, alpha, a + i * rowStride, rowStride, depthStride, b, ldb, beta, c + i * ldc, ldc, e, kind);
    // The last m % 4 rows: together when n ≤ 16 (tail_rows), else one at a time (one_row).
    if (i < m && n <= 16) {
        const float *rest = a + i * rowStride;
        float *target = c + i * ldc;
        long rows = m - i;
        __m256i last = rem == 0 ? FULL_MASK : tail;
        switch (rows * 10 + (n > 8 ? 2 : 1)) {
        case 11: tail_rows(1, 1, 4, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        case 12: tail_rows(1, 2, 4, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        case 21: tail_rows(2, 1, 4, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        case 22: tail_rows(2, 2, 2, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        case 31: tail_rows(3, 1, 2, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        default: tail_rows(3, 2, 1, k, alpha, rest, rowStride, depthStride, b, ldb, beta, target, ldc, e, last, kind); break;
        }
        return;
    }
    for (; i < m; i++) one_row(n, full, tail, k, alpha, a + i * rowStride, depthStride, b, ldb, beta, c + i * ldc, e, kind);
}

__attribute__((target("avx2,fma")))
static void blocked_avx2(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                         const float *b, long ldb, float beta, float *c, long ldc, const epilogue *e) {
    switch (plain_finish(alpha, beta, e)) {
    case FINISH_STORE: blocked_body(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e, FINISH_STORE); break;
    case FINISH_ADD: blocked_body(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e, FINISH_ADD); break;
    default: blocked_body(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, e, FINISH_GENERAL); break;
    }
}

// A weight gradient's shape, Aᵀ·B with a long k, a narrow n and a wider m (dW = Xᵀ·dZ: m = 28
// inputs, n = 10 units, k = 448 samples × steps), computed as its transpose Cᵀ = Bᵀ·A: the wide m
// then runs along the vector lanes (28 of 32 used, against 10 of 16 the other way round). Two rows
// of Cᵀ by up to four vectors stay in registers over the whole k loop: each broadcast feeds four
// multiply-adds, each load two. Cᵀ goes to `transposed` [n, m], which the caller scatters into C.
// One block of columns [j, j + 8·vectors) of Cᵀ, `vectors` a constant once inlined so that the
// accumulators stay in registers; only the last vector may be ragged (masked).
__attribute__((target("avx2,fma"), always_inline))
static inline void transposed_block(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                                    float *transposed, long j, const long vectors, __m256i last) {
    for (long i = 0; i < n; i += 2) {
        int pair = i + 1 < n;
        const float *b0 = b + i, *b1 = pair ? b0 + 1 : b0;
        __m256 c[4], d[4];
        for (long v = 0; v < vectors; v++) c[v] = d[v] = _mm256_setzero_ps();
        const float *ap = a + j;
        for (long kk = 0; kk < k; kk++, ap += lda) {
            __m256 x0 = _mm256_broadcast_ss(b0 + kk * ldb), x1 = _mm256_broadcast_ss(b1 + kk * ldb);
            for (long v = 0; v < vectors; v++) {
                __m256 av = v + 1 < vectors ? _mm256_loadu_ps(ap + 8 * v) : _mm256_maskload_ps(ap + 8 * v, last);
                c[v] = _mm256_fmadd_ps(x0, av, c[v]);
                d[v] = _mm256_fmadd_ps(x1, av, d[v]);
            }
        }
        for (long v = 0; v < vectors; v++) {
            __m256i mask = v + 1 < vectors ? FULL_MASK : last;
            _mm256_maskstore_ps(transposed + i * m + j + 8 * v, mask, c[v]);
            if (pair) _mm256_maskstore_ps(transposed + (i + 1) * m + j + 8 * v, mask, d[v]);
        }
    }
}

__attribute__((target("avx2,fma")))
static void transposed_product_avx2(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                                    float *transposed) {
    // Cᵀ [n, m], two rows at a time: A' = Bᵀ (element (i, kk) at b[kk·ldb + i]), B' = A (row kk at
    // a + kk·lda, m wide).
    for (long j = 0; j < m; j += 32) {
        long width = m - j < 32 ? m - j : 32, vectors = (width + 7) / 8, ragged = width - 8 * (vectors - 1);
        __m256i last = rnnkit_first_lanes(ragged);
        switch (vectors) {
        case 1: transposed_block(m, n, k, a, lda, b, ldb, transposed, j, 1, last); break;
        case 2: transposed_block(m, n, k, a, lda, b, ldb, transposed, j, 2, last); break;
        case 3: transposed_block(m, n, k, a, lda, b, ldb, transposed, j, 3, last); break;
        default: transposed_block(m, n, k, a, lda, b, ldb, transposed, j, 4, last); break;
        }
    }
}

__attribute__((target("avx2,fma")))
static void swapped_avx2(long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
                         float beta, float *c, long ldc) {
    float transposed[SWAP_LIMIT];
    transposed_product_avx2(m, n, k, a, lda, b, ldb, transposed);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float value = alpha * transposed[j * m + i];
            c[i * ldc + j] = beta == 0 ? value : value + beta * c[i * ldc + j];
        }
}

// Narrow products, flattened: for an even n that is not a multiple of 8 (4, 6, 10, 12, 14), four
// rows of a dense C (ldc == n) are 4n contiguous floats, a whole number of 8-lane vectors (five for
// n = 10, where the 4 x 16 block above fills only 10 of every 16 lanes). Each vector's lanes belong
// to at most two rows, so its share of A is two broadcasts blended; B is packed once per call,
// each of its rows repeated four times, so that its part of every vector is a plain load.
// The body for one n, inlined with n a constant so that the loops over vectors unroll and the
// accumulators, masks and row choices stay in registers.
__attribute__((target("avx2,fma"), always_inline))
static inline void flat_body(long m, const long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                             const float *packed, float beta, float *c, const epilogue *e, const int kind) {
    const long width = FLAT_ROWS * n, vectors = width / 8;
    long low[FLAT_MAX_VECTORS];
    __m256 masks[FLAT_MAX_VECTORS];
    for (long v = 0; v < vectors; v++) {
        low[v] = (8 * v) / n;
        __m256i lane = _mm256_add_epi32(_mm256_set1_epi32((int)(8 * v)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // Lanes whose flat position reaches the next row's start.
        masks[v] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32((int)((low[v] + 1) * n - 1))));
    }
    long i = 0;
    // Eight rows at a time where the accumulators fit in registers (n ≤ 10: two sets of at most
    // five): the next four rows' vectors take the same lanes of B, so each load of B feeds two
    // multiply-adds (the four-row loop is bound by its loads: four broadcasts and five loads of B
    // per five multiply-adds). Written out beside the four-row loop below: one inlined helper for
    // both, taking the number of groups, made the input projection slower in interleaved C runs.
    if (vectors <= 5) {
        for (; i + 2 * FLAT_ROWS <= m; i += 2 * FLAT_ROWS) {
            const float *a0 = a + i * rowStride, *a4 = a0 + FLAT_ROWS * rowStride;
            __m256 acc[FLAT_MAX_VECTORS], next[FLAT_MAX_VECTORS];
            for (long v = 0; v < vectors; v++) acc[v] = next[v] = _mm256_setzero_ps();
            long offset = 0;
            const float *bp = packed;
            for (long kk = 0; kk < k; kk++, offset += depthStride, bp += width) {
                __m256 rows[FLAT_ROWS + 1], later[FLAT_ROWS + 1];
                for (long r = 0; r < FLAT_ROWS; r++) {
                    rows[r] = _mm256_broadcast_ss(a0 + r * rowStride + offset);
                    later[r] = _mm256_broadcast_ss(a4 + r * rowStride + offset);
                }
                rows[FLAT_ROWS] = rows[FLAT_ROWS - 1];
                later[FLAT_ROWS] = later[FLAT_ROWS - 1];
                for (long v = 0; v < vectors; v++) {
                    __m256 bv = _mm256_loadu_ps(bp + 8 * v);
                    acc[v] = _mm256_fmadd_ps(_mm256_blendv_ps(rows[low[v]], rows[low[v] + 1], masks[v]), bv, acc[v]);
                    next[v] = _mm256_fmadd_ps(_mm256_blendv_ps(later[low[v]], later[low[v] + 1], masks[v]), bv, next[v]);
                }
            }
            float *block = c + i * n;
            for (long v = 0; v < vectors; v++) finish_kind(kind, acc[v], block + 8 * v, alpha, beta, 0, FULL_MASK, e);
            for (long v = 0; v < vectors; v++) finish_kind(kind, next[v], block + width + 8 * v, alpha, beta, 0, FULL_MASK, e);
        }
    }
    for (; i + FLAT_ROWS <= m; i += FLAT_ROWS) {
        const float *a0 = a + i * rowStride;
        __m256 acc[FLAT_MAX_VECTORS];
        for (long v = 0; v < vectors; v++) acc[v] = _mm256_setzero_ps();
        long offset = 0;
        const float *bp = packed;
        for (long kk = 0; kk < k; kk++, offset += depthStride, bp += width) {
            __m256 rows[FLAT_ROWS + 1];
            rows[0] = _mm256_broadcast_ss(a0 + offset);
            rows[1] = _mm256_broadcast_ss(a0 + rowStride + offset);
            rows[2] = _mm256_broadcast_ss(a0 + 2 * rowStride + offset);
            rows[3] = _mm256_broadcast_ss(a0 + 3 * rowStride + offset);
            rows[4] = rows[3];
            for (long v = 0; v < vectors; v++) {
                __m256 av = _mm256_blendv_ps(rows[low[v]], rows[low[v] + 1], masks[v]);
                acc[v] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + 8 * v), acc[v]);
            }
        }
        float *block = c + i * n;
        for (long v = 0; v < vectors; v++) finish_kind(kind, acc[v], block + 8 * v, alpha, beta, 0, FULL_MASK, e);
    }
}

// The flattened product's whole groups of four rows against B already packed. `n` must be a flat
// width (flat_width); the caller sends the last m % 4 rows to the blocked kernel.
__attribute__((target("avx2,fma"), always_inline))
static inline void flat_rows(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                             const float *packed, float beta, float *c, const epilogue *e, const int kind) {
    switch (n) {
    case 4: flat_body(m, 4, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind); break;
    case 6: flat_body(m, 6, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind); break;
    case 10: flat_body(m, 10, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind); break;
    case 12: flat_body(m, 12, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind); break;
    default: flat_body(m, 14, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind); break;
    }
}

// The flattened product for a flat width: its groups of four rows in `kind`'s form, the last
// m % 4 rows (rare: a batch not a multiple of 4) through the general blocked kernel, which reads B
// unpacked.
__attribute__((target("avx2,fma"), always_inline))
static inline void flat_all_rows(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                                 const float *packed, const float *b, long ldb, float beta, float *c, const epilogue *e,
                                 const int kind) {
    flat_rows(m, n, k, alpha, a, rowStride, depthStride, packed, beta, c, e, kind);
    long done = m / FLAT_ROWS * FLAT_ROWS;
    if (done < m) blocked_avx2(m - done, n, k, alpha, a + done * rowStride, rowStride, depthStride, b, ldb, beta, c + done * n, n, e);
}

// The flattened product against B already packed (`b` is still read for the last m % 4 rows).
__attribute__((target("avx2,fma")))
static void flat_packed_avx2(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                             const float *packed, const float *b, long ldb, float beta, float *c, const epilogue *e) {
    if (!flat_width(n)) {
        blocked_avx2(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, n, e);
        return;
    }
    switch (plain_finish(alpha, beta, e)) {
    case FINISH_STORE: flat_all_rows(m, n, k, alpha, a, rowStride, depthStride, packed, b, ldb, beta, c, e, FINISH_STORE); break;
    case FINISH_ADD: flat_all_rows(m, n, k, alpha, a, rowStride, depthStride, packed, b, ldb, beta, c, e, FINISH_ADD); break;
    default: flat_all_rows(m, n, k, alpha, a, rowStride, depthStride, packed, b, ldb, beta, c, e, FINISH_GENERAL); break;
    }
}

__attribute__((target("avx2,fma")))
static void flat_avx2(long m, long n, long k, float alpha, const float *a, long rowStride, long depthStride,
                      const float *b, long ldb, float beta, float *c, const epilogue *e) {
    float packed[FLAT_PACK_LIMIT];
    flat_pack(n, k, b, ldb, packed);
    flat_packed_avx2(m, n, k, alpha, a, rowStride, depthStride, packed, b, ldb, beta, c, e);
}

// ---------------------------------------------------------------------------------------------
// A small tanh SimpleRNN's whole recurrence in one call: U (or Uᵀ) is packed once for every step
// instead of once per step's product, and no step returns to the caller.

__attribute__((target("avx2,fma")))
static void tanh_in_place_avx2(float *values, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(values + i, tanh_avx2(_mm256_loadu_ps(values + i)));
    if (i < count) {
        __m256i mask = rnnkit_first_lanes(count - i);
        _mm256_maskstore_ps(values + i, mask, tanh_avx2(_mm256_maskload_ps(values + i, mask)));
    }
}

// A recurrent step's product c = finish(a [m, k] · b [k, n]), b packed for the flattened kernel
// when `packed` is non-null: one function per finish, each with its form compiled in.
#define RECURRENT_PRODUCT(NAME, KIND)                                                                            \
    __attribute__((target("avx2,fma"))) static void NAME(long m, long n, long k, const float *a, const float *b,  \
                                                         const float *packed, float *c, const epilogue *e) {    \
        float beta = KIND == FINISH_ADD_TANH || KIND == FINISH_ADD_DERIVATIVE ? 1.0f : 0.0f;                    \
        if (packed) flat_all_rows(m, n, k, 1.0f, a, k, 1, packed, b, n, beta, c, e, KIND);                     \
        else blocked_body(m, n, k, 1.0f, a, k, 1, b, n, beta, c, n, e, KIND);                                  \
    }
RECURRENT_PRODUCT(recurrent_add_tanh_avx2, FINISH_ADD_TANH)
RECURRENT_PRODUCT(recurrent_derivative_avx2, FINISH_DERIVATIVE)
RECURRENT_PRODUCT(recurrent_add_derivative_avx2, FINISH_ADD_DERIVATIVE)

// What reaches h0, once a sequence: the general kernels.
__attribute__((target("avx2,fma")))
static void recurrent_store_avx2(long m, long n, long k, const float *a, const float *b, const float *packed, float *c) {
    if (packed) flat_packed_avx2(m, n, k, 1.0f, a, k, 1, packed, b, n, 0.0f, c, &NO_EPILOGUE);
    else blocked_avx2(m, n, k, 1.0f, a, k, 1, b, n, 0.0f, c, n, &NO_EPILOGUE);
}

__attribute__((target("avx2,fma")))
static void rnn_tanh_forward_avx2(long steps, long batch, long units, float *gates, const float *u, const float *h0) {
    float packed[FLAT_PACK_LIMIT];
    int flat = batch >= FLAT_ROWS && flat_suits(units, units, units);
    if (flat) flat_pack(units, units, u, units, packed);
    long step = batch * units;
    for (long t = 0; t < steps; t++) {
        float *g = gates + t * step;
        const float *previous = t == 0 ? h0 : g - step;
        if (!previous) tanh_in_place_avx2(g, step);
        else recurrent_add_tanh_avx2(batch, units, units, previous, u, flat ? packed : 0, g, &TANH_EPILOGUE);
    }
}

__attribute__((target("avx2,fma")))
static void rnn_tanh_backward_avx2(long steps, long batch, long units, const float *states, const float *upstream, int sequence,
                                   const float *u, float *dz, float *carried, int wantInitial) {
    float transposed[RNNKIT_SMALL_TRANSPOSED_LIMIT], packed[FLAT_PACK_LIMIT];
    TRANSPOSE(transposed, u, units, units, units);
    int flat = batch >= FLAT_ROWS && flat_suits(units, units, units);
    if (flat) flat_pack(units, units, transposed, units, packed);
    long step = batch * units, full = step & ~7L;
    __m256i tail = rnnkit_first_lanes(step - full);
    __m256 one = _mm256_set1_ps(1.0f);
    // The last step: dz = upstream ⊙ (1 − h²); plain loads and stores but for the ragged end (a
    // masked store is microcoded on AMD cores, tens of cycles each).
    {
        const float *h = states + (steps - 1) * step, *up = sequence ? upstream + (steps - 1) * step : upstream;
        float *d = dz + (steps - 1) * step;
        long i = 0;
        for (; i < full; i += 8) {
            __m256 y = _mm256_loadu_ps(h + i);
            _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(up + i), _mm256_fnmadd_ps(y, y, one)));
        }
        if (i < step) {
            __m256 y = _mm256_maskload_ps(h + i, tail);
            _mm256_maskstore_ps(d + i, tail, _mm256_mul_ps(_mm256_maskload_ps(up + i, tail), _mm256_fnmadd_ps(y, y, one)));
        }
    }
    // Every earlier step in the product's epilogue: dz_{t−1} = (dz_t · Uᵀ + upstream_{t−1}) ⊙
    // (1 − h_{t−1}²), the gradient reaching h_{t−1} taken through its tanh before the one store.
    for (long t = steps - 1; t > 0; t--) {
        float *previous = dz + (t - 1) * step;
        epilogue derivative = {0, states + (t - 1) * step, previous};
        if (sequence) {
            memcpy(previous, upstream + (t - 1) * step, (size_t)step * sizeof(float));
            recurrent_add_derivative_avx2(batch, units, units, dz + t * step, transposed, flat ? packed : 0, previous, &derivative);
        } else {
            recurrent_derivative_avx2(batch, units, units, dz + t * step, transposed, flat ? packed : 0, previous, &derivative);
        }
    }
    // What reaches h0: carried = dz_0 · Uᵀ.
    if (wantInitial) recurrent_store_avx2(batch, units, units, dz, transposed, flat ? packed : 0, carried);
}

int rnnkit_rnn_tanh_forward(long steps, long batch, long units, float *gates, const float *u, const float *h0) {
    if (!rnnkit_avx2_available() || units > 64 || steps < 1 || batch < 1) return 0;
    if (rnnkit_avx512_active() && rnnkit_rnn_tanh_forward_avx512(steps, batch, units, gates, u, h0)) return 1;
    rnn_tanh_forward_avx2(steps, batch, units, gates, u, h0);
    return 1;
}

int rnnkit_rnn_tanh_backward(long steps, long batch, long units, const float *states, const float *upstream, int sequence,
                             const float *u, float *dz, float *carried, int wantInitial) {
    if (!rnnkit_avx2_available() || units > 64 || steps < 1 || batch < 1) return 0;
    if (rnnkit_avx512_active() &&
        rnnkit_rnn_tanh_backward_avx512(steps, batch, units, states, upstream, sequence, u, dz, carried, wantInitial))
        return 1;
    rnn_tanh_backward_avx2(steps, batch, units, states, upstream, sequence, u, dz, carried, wantInitial);
    return 1;
}

// MNIST-style images as bytes, gathered time-major and scaled. The loop runs over rows outermost
// and images within a row, so a group of images is read as that many streams side by side: the
// first row asks for every image's first cache line at once, and each row prefetches its image two
// lines ahead. (Image after image, with the next image prefetched, took 1.3-1.4 times as long for
// 16 shuffled images of a 47 MB set in an interleaved C benchmark: one image's 13 lines at a time
// are too few misses in flight.)
#define GATHER_GROUP 32
#define GATHER_LINES_AHEAD 2

__attribute__((target("avx2,fma")))
static inline void convert_row_avx2(const unsigned char *source, long columns, long full, __m256 factor, float scale,
                                    float *target) {
    long i = 0;
    for (; i < full; i += 8) {
        long long bytes;
        memcpy(&bytes, source + i, 8);
        __m256 values = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes)));
        _mm256_storeu_ps(target + i, _mm256_mul_ps(values, factor));
    }
    if (i < columns && columns >= 8) {
        // The ragged end as one vector overlapping the last full one (28 = 8 + 8 + 8 + 4).
        i = columns - 8;
        long long bytes;
        memcpy(&bytes, source + i, 8);
        __m256 values = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes)));
        _mm256_storeu_ps(target + i, _mm256_mul_ps(values, factor));
    } else {
        for (; i < columns; i++) target[i] = (float)source[i] * scale;
    }
}

__attribute__((target("avx2,fma")))
static void gather_images_avx2(const unsigned char *pixels, const long *indices, long batch, long rows, long columns,
                               float scale, float *destination) {
    long size = rows * columns, full = columns & ~7L;
    __m256 factor = _mm256_set1_ps(scale);
    for (long first = 0; first < batch; first += GATHER_GROUP) {
        long count = batch - first < GATHER_GROUP ? batch - first : GATHER_GROUP;
        const unsigned char *images[GATHER_GROUP];
        for (long s = 0; s < count; s++) {
            images[s] = pixels + indices[first + s] * size;
            for (long line = 0; line < GATHER_LINES_AHEAD && line * 64 < size; line++) __builtin_prefetch(images[s] + line * 64);
        }
        for (long t = 0; t < rows; t++) {
            float *target = destination + (t * batch + first) * columns;
            for (long s = 0; s < count; s++, target += columns) {
                const unsigned char *source = images[s] + t * columns;
                // Past the image's end this asks for a line that is not needed, never faults.
                __builtin_prefetch(source + GATHER_LINES_AHEAD * 64);
                convert_row_avx2(source, columns, full, factor, scale, target);
            }
        }
    }
}

// With transB, B (stored [n, k]) is copied transposed to `transposed`, [k, n] with row stride n,
// and b and ldb point there: every kernel reads op(B) as [k, n].
#define TRANSPOSE_B_IF_NEEDED(transposed)                                                          \
    if (transB) {                                                                                  \
        TRANSPOSE(transposed, b, n, k, ldb);                                                       \
        b = (transposed);                                                                          \
        ldb = n;                                                                                   \
    }

void rnnkit_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    float transposed[RNNKIT_SMALL_TRANSPOSED_LIMIT];
    TRANSPOSE_B_IF_NEEDED(transposed)
    long rowStride = transA ? 1 : lda, depthStride = transA ? lda : 1;
    int path = rnnkit_kernel_path();
    if (path == RNNKIT_PATH_PORTABLE) blocked_portable_f(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc);
    else if (path == RNNKIT_PATH_AVX512 && avx512_sgemm_suits(transA, transB, m, n, k, ldc))
        rnnkit_sgemm_avx512(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    // Below 32 rows packing B costs more than the flattened blocks save (measured), unless the
    // epilogue's tanh, which the flattened kernel evaluates on 5 vectors instead of 8, is fused in.
    else if (swap_suits_lanes(transA, transB, m, n, k, 8)) swapped_avx2(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else if (m >= 32 && flat_suits(n, k, ldc)) flat_avx2(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, &NO_EPILOGUE);
    else blocked_avx2(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc, &NO_EPILOGUE);
}

int rnnkit_small_sgemm_nn_tanh(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
    if (!rnnkit_avx2_available()) return 0;
    if (rnnkit_avx512_active() && rnnkit_sgemm_nn_tanh_avx512(m, n, k, a, lda, b, ldb, c, ldc)) return 1;
    if (m >= FLAT_ROWS && flat_suits(n, k, ldc)) flat_avx2(m, n, k, 1.0f, a, lda, 1, b, ldb, 1.0f, c, &TANH_EPILOGUE);
    else blocked_avx2(m, n, k, 1.0f, a, lda, 1, b, ldb, 1.0f, c, ldc, &TANH_EPILOGUE);
    return 1;
}

void rnnkit_gather_images(const unsigned char *pixels, const long *indices, long batch, long rows, long columns,
                          float scale, float *destination) {
    if (rnnkit_avx2_available()) {
        gather_images_avx2(pixels, indices, batch, rows, columns, scale, destination);
        return;
    }
    long size = rows * columns;
    for (long s = 0; s < batch; s++) {
        const unsigned char *image = pixels + indices[s] * size;
        for (long t = 0; t < rows; t++) {
            const unsigned char *source = image + t * columns;
            float *target = destination + (t * batch + s) * columns;
            for (long i = 0; i < columns; i++) target[i] = (float)source[i] * scale;
        }
    }
}

void rnnkit_small_dgemm(int transA, int transB, long m, long n, long k, double alpha,
                        const double *a, long lda, const double *b, long ldb, double beta, double *c, long ldc) {
    double transposed[RNNKIT_SMALL_TRANSPOSED_LIMIT];
    TRANSPOSE_B_IF_NEEDED(transposed)
    long rowStride = transA ? 1 : lda, depthStride = transA ? lda : 1;
    blocked_portable_d(m, n, k, alpha, a, rowStride, depthStride, b, ldb, beta, c, ldc);
}
