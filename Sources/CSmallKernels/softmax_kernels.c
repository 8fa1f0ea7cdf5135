#include "small_kernels.h"
#include "dispatch.h"
#include <immintrin.h>
#include <math.h>

// The softmax of each row, 8 lanes (AVX2) or 16 (AVX-512) at a time with a vector exp: for a
// classifier's 10 classes the C library's scalar expf, called once per logit, cost more than the
// Dense head's products.

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

// The same exp on 16 lanes.
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
static inline __m512 exp_avx512(__m512 x) {
    const __m512 high = _mm512_set1_ps(88.3762626647949f), low = _mm512_set1_ps(-87.3365447504019f);
    __m512 clamped = _mm512_max_ps(low, _mm512_min_ps(high, x));
    __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(clamped, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                    _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), clamped);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i exponent = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 result = _mm512_mul_ps(p, _mm512_castsi512_ps(exponent));
    // 0 where e^x is below the smallest normal float; NaN stays NaN (the comparison is false).
    return _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(x, low, _CMP_LT_OQ), result);
}

// A row of up to 64 values in at most four registers, read and written through a mask register
// (no copy: the masked lanes load as −∞, whose e^x adds nothing to the sum).
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
static void softmax_row_avx512(float *row, long columns) {
    long vectors = (columns + 15) / 16;
    __mmask16 last = rnnkit_first_lanes16(columns - 16 * (vectors - 1));
    __m512 v[SOFTMAX_ROW_LIMIT / 16];
    for (long i = 0; i < vectors; i++)
        v[i] = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), i + 1 < vectors ? (__mmask16)0xFFFF : last, row + 16 * i);
    __m512 maximum = v[0];
    for (long i = 1; i < vectors; i++) maximum = _mm512_max_ps(maximum, v[i]);
    __m256 half = _mm256_max_ps(_mm512_castps512_ps256(maximum), _mm512_extractf32x8_ps(maximum, 1));
    __m128 quarter = _mm_max_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    quarter = _mm_max_ps(quarter, _mm_movehl_ps(quarter, quarter));
    quarter = _mm_max_ss(quarter, _mm_movehdup_ps(quarter));
    __m512 shift = _mm512_broadcastss_ps(quarter);
    __m512 sum = _mm512_setzero_ps();
    for (long i = 0; i < vectors; i++) {
        v[i] = exp_avx512(_mm512_sub_ps(v[i], shift));
        sum = _mm512_add_ps(sum, v[i]);
    }
    __m256 sum8 = _mm256_add_ps(_mm512_castps512_ps256(sum), _mm512_extractf32x8_ps(sum, 1));
    __m128 total = _mm_add_ps(_mm256_castps256_ps128(sum8), _mm256_extractf128_ps(sum8, 1));
    total = _mm_add_ps(total, _mm_movehl_ps(total, total));
    total = _mm_add_ss(total, _mm_movehdup_ps(total));
    __m512 inverse = _mm512_set1_ps(1.0f / _mm_cvtss_f32(total));
    for (long i = 0; i < vectors; i++)
        _mm512_mask_storeu_ps(row + 16 * i, i + 1 < vectors ? (__mmask16)0xFFFF : last, _mm512_mul_ps(v[i], inverse));
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
    int path = columns <= SOFTMAX_ROW_LIMIT ? rnnkit_kernel_path() : RNNKIT_PATH_PORTABLE;
    for (long r = 0; r < rows; r++) {
        if (path == RNNKIT_PATH_AVX512) softmax_row_avx512(values + r * columns, columns);
        else if (path == RNNKIT_PATH_AVX2) softmax_row_avx2(values + r * columns, columns);
        else softmax_row_portable(values + r * columns, columns);
    }
}
