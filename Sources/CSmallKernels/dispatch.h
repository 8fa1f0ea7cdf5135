#ifndef RNNKIT_DISPATCH_H
#define RNNKIT_DISPATCH_H

// Which float kernels run: one path per process, chosen once from the CPU's features at run time
// (cpuid and XGETBV, never a model number) or forced by name (rnnkit_small_kernels_force, the
// environment variable RNNKIT_SMALL_KERNELS). Every kernel asks here and runs its body for the
// path; a kernel without an AVX-512 body runs its AVX2 body on the AVX-512 path.
#define RNNKIT_PATH_PORTABLE 0
#define RNNKIT_PATH_AVX2 1   // AVX2 + FMA
#define RNNKIT_PATH_AVX512 2 // AVX-512 F, BW, DQ and VL (with AVX2 and FMA), zmm state saved by the OS

int rnnkit_kernel_path(void);

// Whether cpuid reports F16C (the AVX2 path's conversions of binary16 weights).
int rnnkit_f16c_available(void);

// Whether the AVX2 bodies (or better) run: true on the AVX2 and AVX-512 paths.
static inline int rnnkit_avx2_available(void) { return rnnkit_kernel_path() >= RNNKIT_PATH_AVX2; }
static inline int rnnkit_avx512_active(void) { return rnnkit_kernel_path() == RNNKIT_PATH_AVX512; }

#include <immintrin.h>

// A mask of the first `count` (0 to 8) of 8 lanes: a ragged row end's loads and stores.
__attribute__((target("avx2"))) static inline __m256i rnnkit_first_lanes(long count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The same for 16 lanes as an AVX-512 mask register value (count 0 to 16).
static inline unsigned short rnnkit_first_lanes16(long count) {
    return count >= 16 ? (unsigned short)0xFFFF : (unsigned short)((1u << (count < 0 ? 0 : count)) - 1u);
}

// The AVX-512 bodies (small_kernels_avx512.c). rnnkit_sgemm_avx512 runs only products that
// avx512_sgemm_suits (kernel_shapes.h), b being op(B) as [k, n] (already transposed when transB);
// the others return 0, doing nothing, for a shape they leave to the AVX2 body.
void rnnkit_sgemm_avx512(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                         long ldb, float beta, float *c, long ldc);
int rnnkit_sgemm_nn_tanh_avx512(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c,
                                long ldc);
int rnnkit_rnn_tanh_forward_avx512(long steps, long batch, long units, float *gates, const float *u, const float *h0);
int rnnkit_rnn_tanh_backward_avx512(long steps, long batch, long units, const float *states, const float *upstream,
                                    int sequence, const float *u, float *dz, float *carried, int wantInitial);

#endif
