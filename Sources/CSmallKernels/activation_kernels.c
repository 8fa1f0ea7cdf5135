// The engine's activations and the gated cells' element-wise steps on the one tanh of
// vector_tanh.h (see include/small_kernels.h and include/recurrent_cells.h).
#include "small_kernels.h"
#include "recurrent_cells.h"
#include "dispatch.h"
#include "vector_tanh.h"

#define AVX2_BODY __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

// Whether the vector forms run: on the AVX2 and the AVX-512 paths alike, so that every tanh of a
// process gives the same bits (tanh512 matches tanh_avx2 lane for lane).
static int vector_path(void) { return rnnkit_kernel_path() != RNNKIT_PATH_PORTABLE; }

AVX2_INLINE __m256 load_lanes(const float *p, long left) {
    return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, rnnkit_first_lanes(left));
}
AVX2_INLINE void store_lanes(float *p, __m256 v, long left) {
    if (left >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, rnnkit_first_lanes(left), v);
}
AVX2_INLINE __m256 sigmoid_avx2(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(half, tanh_avx2(_mm256_mul_ps(half, x)), half);
}
static inline float sigmoid_portable(float x) { return 0.5f * tanh_portable(0.5f * x) + 0.5f; }

AVX2_BODY static void tanh_avx2_in_place(float *values, long count) {
    for (long i = 0; i < count; i += 8) store_lanes(values + i, tanh_avx2(load_lanes(values + i, count - i)), count - i);
}

AVX2_BODY static void sigmoid_avx2_in_place(float *values, long count) {
    for (long i = 0; i < count; i += 8) store_lanes(values + i, sigmoid_avx2(load_lanes(values + i, count - i)), count - i);
}

void rnnkit_tanh_in_place(float *values, long count) {
    if (vector_path()) return tanh_avx2_in_place(values, count);
    for (long i = 0; i < count; i++) values[i] = tanh_portable(values[i]);
}

void rnnkit_sigmoid_in_place(float *values, long count) {
    if (vector_path()) return sigmoid_avx2_in_place(values, count);
    for (long i = 0; i < count; i++) values[i] = sigmoid_portable(values[i]);
}

// The step of rnnkit_lstm_forward_step's fused blocks (lstm_block8), after a product run apart.
AVX2_BODY static void lstm_step_avx2(long rows, long units, float *gates, const float *previousCell, float *cell,
                                     float *activatedCell, float *state) {
    for (long b = 0; b < rows; b++) {
        float *g = gates + b * 4 * units;
        const long s = b * units;
        for (long j = 0; j < units; j += 8) {
            const long left = units - j;
            const __m256 i = sigmoid_avx2(load_lanes(g + j, left)), f = sigmoid_avx2(load_lanes(g + units + j, left));
            const __m256 candidate = tanh_avx2(load_lanes(g + 2 * units + j, left));
            const __m256 o = sigmoid_avx2(load_lanes(g + 3 * units + j, left));
            const __m256 c = _mm256_add_ps(_mm256_mul_ps(f, load_lanes(previousCell + s + j, left)), _mm256_mul_ps(i, candidate));
            const __m256 a = tanh_avx2(c);
            store_lanes(g + j, i, left);
            store_lanes(g + units + j, f, left);
            store_lanes(g + 2 * units + j, candidate, left);
            store_lanes(g + 3 * units + j, o, left);
            store_lanes(cell + s + j, c, left);
            store_lanes(activatedCell + s + j, a, left);
            store_lanes(state + s + j, _mm256_mul_ps(o, a), left);
        }
    }
}

int rnnkit_lstm_step(long rows, long units, float *gates, const float *previousCell, float *cell, float *activatedCell,
                     float *state) {
    if (!vector_path() || rows < 1 || units < 1) return 0;
    lstm_step_avx2(rows, units, gates, previousCell, cell, activatedCell, state);
    return 1;
}

// The step of rnnkit_gru_forward_step's fused blocks (gru_block8), after a product run apart.
AVX2_BODY static void gru_step_avx2(long rows, long units, float *gates, const float *recurrent, const float *previousState,
                                    float *auxiliary, float *state) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (long b = 0; b < rows; b++) {
        float *g = gates + b * 3 * units;
        const float *u = recurrent + b * 3 * units;
        const long s = b * units;
        for (long j = 0; j < units; j += 8) {
            const long left = units - j;
            const __m256 z = sigmoid_avx2(_mm256_add_ps(load_lanes(g + j, left), load_lanes(u + j, left)));
            const __m256 reset = sigmoid_avx2(_mm256_add_ps(load_lanes(g + units + j, left), load_lanes(u + units + j, left)));
            const __m256 uh = load_lanes(u + 2 * units + j, left);
            const __m256 candidate = tanh_avx2(_mm256_add_ps(load_lanes(g + 2 * units + j, left), _mm256_mul_ps(reset, uh)));
            store_lanes(g + j, z, left);
            store_lanes(g + units + j, reset, left);
            store_lanes(g + 2 * units + j, candidate, left);
            store_lanes(auxiliary + s + j, uh, left);
            const __m256 previous = load_lanes(previousState + s + j, left);
            store_lanes(state + s + j, _mm256_add_ps(_mm256_mul_ps(z, previous), _mm256_mul_ps(_mm256_sub_ps(one, z), candidate)),
                        left);
        }
    }
}

int rnnkit_gru_step(long rows, long units, float *gates, const float *recurrent, const float *previousState, float *auxiliary,
                    float *state) {
    if (!vector_path() || rows < 1 || units < 1) return 0;
    gru_step_avx2(rows, units, gates, recurrent, previousState, auxiliary, state);
    return 1;
}
