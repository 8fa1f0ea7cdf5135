#ifndef RNNKIT_VECTOR_TANH_H
#define RNNKIT_VECTOR_TANH_H

// The one tanh of RNNKit, on 8 and 16 lanes and as a scalar: every AVX2 and AVX-512 body (the
// small products' fused steps, the whole-sequence recurrence, the fused gated cells) and, through
// rnnkit_tanh_in_place and rnnkit_sigmoid_in_place, the Swift engine's activations call these.
// The two vector forms give the same bits lane for lane; the scalar form (portable path only)
// divides instead of estimating the reciprocal.
#include <immintrin.h>
#include "kernel_shapes.h"

// tanh as the [13/6] rational approximation Eigen uses (to a few ulp), in 17
// vector operations instead of 23: min/max for the clamp, and c · (P(c²) · 1/Q(c²)) instead of
// (c · P(c²)) / Q(c²) with a branch for small c. P/Q is close to 1 near 0, so the product keeps
// full relative accuracy down to the subnormals without the branch (which was there because
// c · P(c²) underflows first).
__attribute__((target("avx2,fma")))
static inline __m256 tanh_avx2(__m256 x) {
    // minps and maxps return their second operand when either is NaN: x passes through as NaN.
    __m256 c = _mm256_min_ps(_mm256_set1_ps(TANH_BOUND), x);
    c = _mm256_max_ps(_mm256_set1_ps(-TANH_BOUND), c);
    __m256 x2 = _mm256_mul_ps(c, c);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.76076847742355e-16f), _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(4.89352455891786e-03f));
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.19825839466702e-06f), _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(4.89352518554385e-03f));
    // 1/q through the reciprocal estimate and one Newton step (relative error about 2^-23): a
    // division costs as much as the rest of the polynomial.
    __m256 r = _mm256_rcp_ps(q);
    r = _mm256_mul_ps(r, _mm256_fnmadd_ps(q, r, _mm256_set1_ps(2.0f)));
    return _mm256_mul_ps(c, _mm256_mul_ps(p, r));
}

// tanh as tanh_avx2 computes it, lane for lane: the same rational function, clamp, reciprocal
// estimate and Newton step.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"), always_inline))
static inline __m512 tanh512(__m512 x) {
    // vminps/vmaxps return their second operand when either is NaN: x passes through as NaN.
    __m512 c = _mm512_min_ps(_mm512_set1_ps(TANH_BOUND), x);
    c = _mm512_max_ps(_mm512_set1_ps(-TANH_BOUND), c);
    __m512 x2 = _mm512_mul_ps(c, c);
    __m512 p = _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.76076847742355e-16f), _mm512_set1_ps(2.00018790482477e-13f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-8.60467152213735e-11f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(5.12229709037114e-08f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(1.48572235717979e-05f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(6.37261928875436e-04f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(4.89352455891786e-03f));
    __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(1.19825839466702e-06f), _mm512_set1_ps(1.18534705686654e-04f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(2.26843463243900e-03f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(4.89352518554385e-03f));
    // The reciprocal estimate of tanh_avx2 (rcpps on each half) rather than rcp14: the estimates
    // differ in their last bits, and every tanh of a process must give the same bits, whichever
    // width computed it (a masked step in one kernel, the same step unmasked in another).
    __m512 r = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_rcp_ps(_mm512_castps512_ps256(q))),
                                  _mm256_rcp_ps(_mm512_extractf32x8_ps(q, 1)), 1);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
    return _mm512_mul_ps(c, _mm512_mul_ps(p, r));
}

// The portable form: the same rational function and clamp, with a division. Comparisons, not
// fminf/fmaxf, so that NaN stays NaN (a diverging model is noticed).
static inline float tanh_portable(float x) {
    float c = x > TANH_BOUND ? TANH_BOUND : x;
    c = c < -TANH_BOUND ? -TANH_BOUND : c;
    const float x2 = c * c;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    return c * (p / q);
}

#endif
