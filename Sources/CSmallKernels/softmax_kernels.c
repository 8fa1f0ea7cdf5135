#include "small_kernels.h"
#include "dispatch.h"
#include <immintrin.h>
#include <math.h>

// The softmax of each row, 8 lanes at a time with a vector exp: for a classifier's 10 classes the
// C library's scalar expf, called once per logit, cost more than the Dense head's products.

// e^x as Cephes computes expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-5 polynomial,
// then 2^n put into the exponent; about 1 ulp over the range where e^x is a normal float. Below
// it the result is 0 (no subnormals); NaN stays NaN.
__attribute__((target("avx2,fma")))
static inline __m256 exp_avx2(__m256 x) {
    const __m256 high = _mm256_set1_ps(88.3762626647949f), low = _mm256_set1_ps(-87.3365447504019f);
    // min and max return their second operand when either is NaN, so NaN passes through.
    __m256 clamped = _mm256_max_ps(low, _mm256_min_ps(high, x));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(clamped, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), clamped);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
    // Where e^x is below the smallest normal float, 0 (the clamp alone would leave about 1e-38).
    return _mm256_andnot_ps(_mm256_cmp_ps(x, low, _CMP_LT_OQ), result);
}

// One row of at most SOFTMAX_ROW_LIMIT values, copied into vectors padded with −∞ (e^−∞ = 0 adds
// nothing to the sum), so no lane reads or writes past the row and no masked store is needed (a
// masked store is microcoded on AMD cores).
#define SOFTMAX_ROW_LIMIT 64

__attribute__((target("avx2,fma")))
static void softmax_row_avx2(float *row, long columns) {
    float padded[SOFTMAX_ROW_LIMIT];
    long vectors = (columns + 7) / 8;
    for (long j = 0; j < vectors * 8; j++) padded[j] = j < columns ? row[j] : -INFINITY;
    __m256 maximum = _mm256_loadu_ps(padded);
    for (long v = 1; v < vectors; v++) maximum = _mm256_max_ps(maximum, _mm256_loadu_ps(padded + 8 * v));
    __m128 half = _mm_max_ps(_mm256_castps256_ps128(maximum), _mm256_extractf128_ps(maximum, 1));
    half = _mm_max_ps(half, _mm_movehl_ps(half, half));
    half = _mm_max_ss(half, _mm_movehdup_ps(half));
    __m256 shift = _mm256_broadcastss_ps(half);
    __m256 sum = _mm256_setzero_ps();
    for (long v = 0; v < vectors; v++) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(padded + 8 * v), shift));
        _mm256_storeu_ps(padded + 8 * v, e);
        sum = _mm256_add_ps(sum, e);
    }
    __m128 total = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    total = _mm_add_ps(total, _mm_movehl_ps(total, total));
    total = _mm_add_ss(total, _mm_movehdup_ps(total));
    float inverse = 1.0f / _mm_cvtss_f32(total);
    for (long j = 0; j < columns; j++) row[j] = padded[j] * inverse;
}

static void softmax_row_portable(float *row, long columns) {
    float maximum = row[0];
    for (long j = 1; j < columns; j++)
        if (row[j] > maximum) maximum = row[j];
    float sum = 0;
    for (long j = 0; j < columns; j++) {
        row[j] = expf(row[j] - maximum);
        sum += row[j];
    }
    float inverse = 1.0f / sum;
    for (long j = 0; j < columns; j++) row[j] *= inverse;
}

void rnnkit_softmax_rows(float *values, long rows, long columns) {
    if (columns < 1) return;
    int vector = rnnkit_avx2_available() && columns <= SOFTMAX_ROW_LIMIT;
    for (long r = 0; r < rows; r++) {
        if (vector) softmax_row_avx2(values + r * columns, columns);
        else softmax_row_portable(values + r * columns, columns);
    }
}
