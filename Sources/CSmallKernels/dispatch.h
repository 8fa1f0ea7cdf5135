#ifndef RNNKIT_DISPATCH_H
#define RNNKIT_DISPATCH_H

// Whether this core runs the AVX2 + FMA kernels: checked once (cpuid), then cached. Every kernel
// with an AVX2 body asks it and otherwise runs its portable C body.
int rnnkit_avx2_available(void);

#include <immintrin.h>

// A mask of the first `count` (0 to 8) of 8 lanes: a ragged row end's loads and stores.
__attribute__((target("avx2"))) static inline __m256i rnnkit_first_lanes(long count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#endif
