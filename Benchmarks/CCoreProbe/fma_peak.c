// The machine's limit: independent multiply-adds on registers only, no memory traffic (see CCoreProbe.h).
#include <immintrin.h>
#include "CCoreProbe.h"

// Twelve independent accumulators: at least latency (4 cycles) × ports (2) in flight, so the loop
// is bound by the FMA units' throughput, not by one chain's latency. The multiplier just under 1
// and the small addend keep every value finite however long the loop runs.
#define ACCUMULATORS 12

// Makes every accumulator opaque to the compiler after each round, so it can neither fold nor
// drop any of the multiply-adds (without it clang merged one chain away).
#define KEEP(acc)                                                                                              \
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]), \
                     "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]), "+v"(acc[10]), "+v"(acc[11]))

__attribute__((target("avx512f"))) static double loop512(long iterations) {
    __m512 acc[ACCUMULATORS];
    for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        KEEP(acc);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < ACCUMULATORS; i++) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static double loop256(long iterations) {
    __m256 acc[ACCUMULATORS];
    for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm256_set1_ps((float)i);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
        KEEP(acc);
    }
    float lanes[8];
    __m256 sum = acc[0];
    for (int i = 1; i < ACCUMULATORS; i++) sum = _mm256_add_ps(sum, acc[i]);
    _mm256_storeu_ps(lanes, sum);
    return lanes[0];
}

// SSE has no FMA: a multiply and an add, counted as one multiply-add.
static double loop128(long iterations) {
    __m128 acc[ACCUMULATORS];
    for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm_set1_ps((float)i);
    const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-6f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < ACCUMULATORS; i++) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], a), b);
        KEEP(acc);
    }
    return _mm_cvtss_f32(acc[0]);
}

static volatile double sink;

double rnnkit_fma_loop(int width, long iterations) {
    switch (width) {
    case 512: sink = loop512(iterations); return 2.0 * 16 * ACCUMULATORS * (double)iterations;
    case 256: sink = loop256(iterations); return 2.0 * 8 * ACCUMULATORS * (double)iterations;
    case 128: sink = loop128(iterations); return 2.0 * 4 * ACCUMULATORS * (double)iterations;
    default: return 0;
    }
}
