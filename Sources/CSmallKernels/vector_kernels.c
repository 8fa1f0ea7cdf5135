#include "small_kernels.h"
#include "dispatch.h"
#include <immintrin.h>

// Passes over vectors that a small model runs every step, where the generic Swift loops were slow
// (they must allow their arrays to overlap, and a sum is one serial chain): the optimiser's update
// and finiteness check over the parameter arena (serial time, after the shards meet) and the bias
// gradient's sum over rows. Each operation is written out separately (no fused multiply-add) and
// every element sums in the portable loop's order, so the vector bodies give exactly its results.

#pragma clang fp contract(off)

static inline void adam_scalar(float *w, const float *g, float *m, float *v, long i,
                               float oneMinusBeta1, float oneMinusBeta2, float epsilon, float stepSize) {
    float gradient = g[i];
    m[i] += (gradient - m[i]) * oneMinusBeta1;
    v[i] += (gradient * gradient - v[i]) * oneMinusBeta2;
    w[i] -= stepSize * m[i] / (__builtin_sqrtf(v[i]) + epsilon);
}

__attribute__((target("avx2,fma")))
static void adam_avx2(float *w, const float *g, float *m, float *v, long count,
                      float oneMinusBeta1, float oneMinusBeta2, float epsilon, float stepSize) {
    __m256 b1 = _mm256_set1_ps(oneMinusBeta1), b2 = _mm256_set1_ps(oneMinusBeta2);
    __m256 eps = _mm256_set1_ps(epsilon), step = _mm256_set1_ps(stepSize);
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 gradient = _mm256_loadu_ps(g + i);
        __m256 first = _mm256_loadu_ps(m + i), second = _mm256_loadu_ps(v + i);
        first = _mm256_add_ps(first, _mm256_mul_ps(_mm256_sub_ps(gradient, first), b1));
        second = _mm256_add_ps(second, _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(gradient, gradient), second), b2));
        __m256 update = _mm256_div_ps(_mm256_mul_ps(step, first), _mm256_add_ps(_mm256_sqrt_ps(second), eps));
        _mm256_storeu_ps(m + i, first);
        _mm256_storeu_ps(v + i, second);
        _mm256_storeu_ps(w + i, _mm256_sub_ps(_mm256_loadu_ps(w + i), update));
    }
    for (; i < count; i++) adam_scalar(w, g, m, v, i, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize);
}

void rnnkit_adam_step(float *weights, const float *gradients, float *m, float *v, long count,
                      float oneMinusBeta1, float oneMinusBeta2, float epsilon, float stepSize) {
    if (rnnkit_avx2_available()) {
        adam_avx2(weights, gradients, m, v, count, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize);
        return;
    }
    for (long i = 0; i < count; i++) adam_scalar(weights, gradients, m, v, i, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize);
}

__attribute__((target("avx2,fma")))
static int all_finite_avx2(const float *values, long count) {
    // x·0 is 0 for every finite x and NaN otherwise; four accumulators keep the adds independent.
    __m256 zero = _mm256_setzero_ps(), sums[4] = {zero, zero, zero, zero};
    long i = 0;
    for (; i + 32 <= count; i += 32)
        for (int lane = 0; lane < 4; lane++)
            sums[lane] = _mm256_add_ps(sums[lane], _mm256_mul_ps(_mm256_loadu_ps(values + i + 8 * lane), zero));
    for (; i + 8 <= count; i += 8) sums[0] = _mm256_add_ps(sums[0], _mm256_mul_ps(_mm256_loadu_ps(values + i), zero));
    __m256 total = _mm256_add_ps(_mm256_add_ps(sums[0], sums[1]), _mm256_add_ps(sums[2], sums[3]));
    float probe = 0;
    for (; i < count; i++) probe += values[i] * 0.0f;
    float lanes[8];
    _mm256_storeu_ps(lanes, total);
    for (int lane = 0; lane < 8; lane++) probe += lanes[lane];
    return probe == 0;
}

int rnnkit_all_finite(const float *values, long count) {
    if (rnnkit_avx2_available()) return all_finite_avx2(values, count);
    float probe = 0;
    for (long i = 0; i < count; i++) probe += values[i] * 0.0f;
    return probe == 0;
}

// result[j] = sum over rows of matrix[i, j], four rows at a time ((r0 + r1) + (r2 + r3)) as the
// portable loop adds them; up to 64 columns the sums stay in registers.
#define SUM_ROWS_MAX_VECTORS 8

__attribute__((target("avx2,fma")))
static void sum_rows_avx2(const float *matrix, long rows, long columns, float *result) {
    long vectors = (columns + 7) / 8;
    __m256i tail = rnnkit_first_lanes(columns - 8 * (vectors - 1));
    __m256i full = _mm256_set1_epi32(-1);
    __m256 sums[SUM_ROWS_MAX_VECTORS];
    for (long v = 0; v < vectors; v++) sums[v] = _mm256_setzero_ps();
    long r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *row = matrix + r * columns;
        for (long v = 0; v < vectors; v++) {
            __m256i mask = v == vectors - 1 ? tail : full;
            const float *p = row + 8 * v;
            __m256 pair0 = _mm256_add_ps(_mm256_maskload_ps(p, mask), _mm256_maskload_ps(p + columns, mask));
            __m256 pair1 = _mm256_add_ps(_mm256_maskload_ps(p + 2 * columns, mask), _mm256_maskload_ps(p + 3 * columns, mask));
            sums[v] = _mm256_add_ps(sums[v], _mm256_add_ps(pair0, pair1));
        }
    }
    for (; r < rows; r++)
        for (long v = 0; v < vectors; v++)
            sums[v] = _mm256_add_ps(sums[v], _mm256_maskload_ps(matrix + r * columns + 8 * v, v == vectors - 1 ? tail : full));
    for (long v = 0; v < vectors; v++) _mm256_maskstore_ps(result + 8 * v, v == vectors - 1 ? tail : full, sums[v]);
}

void rnnkit_sum_rows(const float *matrix, long rows, long columns, float *result) {
    if (rnnkit_avx2_available() && columns >= 1 && columns <= 8 * SUM_ROWS_MAX_VECTORS) {
        sum_rows_avx2(matrix, rows, columns, result);
        return;
    }
    for (long j = 0; j < columns; j++) result[j] = 0;
    long r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *row = matrix + r * columns;
        for (long j = 0; j < columns; j++)
            result[j] += (row[j] + row[columns + j]) + (row[2 * columns + j] + row[3 * columns + j]);
    }
    for (; r < rows; r++)
        for (long j = 0; j < columns; j++) result[j] += matrix[r * columns + j];
}
