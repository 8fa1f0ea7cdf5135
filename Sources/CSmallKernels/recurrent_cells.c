// Fused recurrent steps for gated cells on AVX-512 (see include/recurrent_cells.h).
#include "recurrent_cells.h"
#include "small_kernels.h"
#include "dispatch.h"
#include "vector_tanh.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline)) static inline

// The widest panels' units (AVX-512).
#define PANEL 16

// The fused steps follow the small kernels' one choice per process (and the switch that forces
// another path for tests and benchmarks): 16-unit panels on AVX-512, 8-unit ones on AVX2 + FMA,
// none in portable C.
static long panel_width(void) {
    switch (rnnkit_kernel_path()) {
    case RNNKIT_PATH_AVX512: return 16;
    case RNNKIT_PATH_AVX2: return 8;
    default: return 0;
    }
}

long rnnkit_panel_width(void) { return panel_width(); }

// `halfGates` for the bfloat16 panels, where every gate is bfloat16 (see gate16).
#define BFLOAT16_GATES (-1)

// A cell's packed panel holds, for each of the units rows k, every gate's `width` weights side by
// side: the first `halfGates` gates' in binary16, the others' in float (halfGates 0: the float
// layout). At batch 1 a step waits on its weights; widening a vector of binary16 keeps a core's
// conversion unit busy about as long as reading the float vector it replaces keeps its L2 cache
// busy (on Zen 4, where this was measured), so rows read part as binary16 and part as float use
// both at once and come faster than all in either (LSTM_HALF_GATES, GRU_HALF_GATES below).
static inline long cell_row_bytes(long gates, const int halfGates, long width) {
    return halfGates == BFLOAT16_GATES ? 2 * gates * width : width * (2 * halfGates + 4 * (gates - halfGates));
}

// The binary16 panels: as wide as the float ones where the path can widen them in registers
// (AVX-512F's vcvtph2ps on zmm; F16C beside AVX2), else none.
static long half_panel_width(void) {
    switch (rnnkit_kernel_path()) {
    case RNNKIT_PATH_AVX512: return 16;
    case RNNKIT_PATH_AVX2: return rnnkit_f16c_available() ? 8 : 0;
    default: return 0;
    }
}

long rnnkit_half_panel_width(void) { return half_panel_width(); }

// The gates of a cell's half-precision panels held in binary16 (the first ones, in Keras's order:
// LSTM's i and f, GRU's z and r); the rest stay float (see cell_row_bytes).
#define LSTM_HALF_GATES 2
#define GRU_HALF_GATES 2

long rnnkit_cell_half_gates(long gates) { return gates == 4 ? LSTM_HALF_GATES : gates == 3 ? GRU_HALF_GATES : 0; }

// In binary16 units, sized for the widest panels.
long rnnkit_cell_packed_half_count(long gates, long units) {
    const long halfGates = rnnkit_cell_half_gates(gates);
    return (units + PANEL - 1) / PANEL * units * PANEL * (halfGates + 2 * (gates - halfGates));
}

int rnnkit_cell_pack_half(long gates, long units, const float *u, unsigned short *packed) {
    const long w = half_panel_width(), halfGates = rnnkit_cell_half_gates(gates);
    if (!w || units < 1 || !halfGates) return 0;
    const long width = gates * units, panels = (units + w - 1) / w, rowBytes = cell_row_bytes(gates, (int)halfGates, w);
    float column[PANEL];
    for (long p = 0; p < panels; p++) {
        char *panel = (char *)packed + p * units * rowBytes;
        for (long k = 0; k < units; k++) {
            char *row = panel + k * rowBytes;
            for (long g = 0; g < gates; g++) {
                for (long j = 0; j < w; j++) column[j] = p * w + j < units ? u[k * width + g * units + p * w + j] : 0.0f;
                if (g < halfGates) rnnkit_half_from_floats(column, w, (unsigned short *)(row + 2 * w * g), 0);
                else memcpy(row + 2 * w * halfGates + 4 * w * (g - halfGates), column, sizeof(float) * w);
            }
        }
    }
    return 1;
}

long rnnkit_bfloat16_panel_width(void) { return panel_width() == 16 ? 16 : 0; }

long rnnkit_cell_packed_bfloat16_count(long gates, long units) { return (units + PANEL - 1) / PANEL * units * PANEL * gates; }

// Gates 2m and 2m + 1 interleaved in 16-bit halves of 32-bit lanes, an odd last gate alone (gate16).
int rnnkit_cell_pack_bfloat16(long gates, long units, const float *u, unsigned short *packed) {
    if (!rnnkit_bfloat16_panel_width() || units < 1 || gates < 1) return 0;
    const long width = gates * units, panels = (units + PANEL - 1) / PANEL;
    float column[PANEL];
    unsigned short rounded[PANEL];
    for (long p = 0; p < panels; p++)
        for (long k = 0; k < units; k++) {
            unsigned short *row = packed + (p * units + k) * gates * PANEL;
            for (long g = 0; g < gates; g++) {
                for (long j = 0; j < PANEL; j++) column[j] = p * PANEL + j < units ? u[k * width + g * units + p * PANEL + j] : 0.0f;
                rnnkit_bfloat16_from_floats(column, PANEL, rounded);
                const int paired = !(g == gates - 1 && gates % 2);
                for (long j = 0; j < PANEL; j++) row[2 * PANEL * (g / 2) + (paired ? 2 * j + g % 2 : j)] = rounded[j];
            }
        }
    return 1;
}

// Gate g's 16 weights in a row of a cell's packed panel (see cell_row_bytes). bfloat16 is float's
// upper half, so a gate in a pair's high halves needs only its low halves cleared, one in the low
// halves a shift; an odd last gate is widened from 16 bits first. No conversion instruction.
AVX512_INLINE __m512 gate16(const char *row, const int g, const int gates, const int halfGates) {
    if (halfGates == BFLOAT16_GATES) {
        if (g == gates - 1 && gates % 2)
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 64 * (g / 2)))), 16));
        const __m512i pair = _mm512_loadu_si512(row + 64 * (g / 2));
        return _mm512_castsi512_ps(g % 2 ? _mm512_and_si512(pair, _mm512_set1_epi32((int)0xFFFF0000u)) : _mm512_slli_epi32(pair, 16));
    }
    return g < halfGates ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 32 * g)))
                         : _mm512_loadu_ps((const float *)(row + 32 * halfGates + 64 * (g - halfGates)));
}

AVX512_INLINE __m512 sigmoid16(__m512 x) {
    const __m512 half = _mm512_set1_ps(0.5f);
    return _mm512_fmadd_ps(half, tanh512(_mm512_mul_ps(half, x)), half);
}

// The AVX2 + FMA forms: 8-unit panels, 16 ymm registers (so fewer rows per block).
// F16C widens binary16 weights (the half-precision panels); the float bodies never use it, and
// the half ones run only where dispatch.c found it. `halfGates` (see cell_row_bytes) is a constant
// at every call, so each body is compiled once for float panels and once for mixed ones.
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#define AVX2_BODY __attribute__((target("avx2,fma,f16c")))

AVX2_INLINE __m256 gate8(const char *row, const int g, const int halfGates) {
    return g < halfGates ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 16 * g)))
                         : _mm256_loadu_ps((const float *)(row + 16 * halfGates + 32 * (g - halfGates)));
}


AVX2_INLINE __m256 sigmoid8(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(half, tanh_avx2(_mm256_mul_ps(half, x)), half);
}

AVX2_INLINE __m256 load8(const float *p, __m256i mask, int full) { return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask); }
AVX2_INLINE void store8(float *p, __m256 v, __m256i mask, int full) {
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mask, v);
}

// R rows (a constant, at most 2: 8 accumulators beside the panel's 4 vectors; 3 rows spill the
// 16 registers and ran at half the speed) × one 8-unit panel of LSTM's four gates.
AVX2_INLINE void lstm_block8(const int R, const int halfGates, long units, const void *panel, const float *h,
                             const float *previousCell, float *gates, float *cell, float *activatedCell, float *state, long unit, __m256i mask, int full) {
    const long width = 4 * units;
    __m256 acc[2][4];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < 4; g++) acc[r][g] = load8(gates + r * width + g * units + unit, mask, full);
    if (h) {
        for (long k = 0; k < units; k++) {
            const char *row = (const char *)panel + k * cell_row_bytes(4, halfGates, 8);
            const __m256 b[4] = {gate8(row, 0, halfGates), gate8(row, 1, halfGates), gate8(row, 2, halfGates),
                                 gate8(row, 3, halfGates)};
            for (int r = 0; r < R; r++) {
                const __m256 a = _mm256_broadcast_ss(h + r * units + k);
                for (int g = 0; g < 4; g++) acc[r][g] = _mm256_fmadd_ps(a, b[g], acc[r][g]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        float *g = gates + r * width + unit;
        const long s = r * units + unit;
        const __m256 i = sigmoid8(acc[r][0]), f = sigmoid8(acc[r][1]), candidate = tanh_avx2(acc[r][2]), o = sigmoid8(acc[r][3]);
        store8(g, i, mask, full);
        store8(g + units, f, mask, full);
        store8(g + 2 * units, candidate, mask, full);
        store8(g + 3 * units, o, mask, full);
        const __m256 c = _mm256_add_ps(_mm256_mul_ps(f, load8(previousCell + s, mask, full)), _mm256_mul_ps(i, candidate));
        const __m256 a = tanh_avx2(c);
        store8(cell + s, c, mask, full);
        store8(activatedCell + s, a, mask, full);
        store8(state + s, _mm256_mul_ps(o, a), mask, full);
    }
}

AVX2_INLINE void lstm_forward_step256(const int halfGates, long batch, long units, const void *packed, const float *h,
                                      const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) {
    const long panels = (units + 7) / 8, width = 4 * units;
    for (long p = 0; p < panels; p++) {
        const long unit = p * 8, left = units - unit;
        const int full = left >= 8;
        const __m256i mask = rnnkit_first_lanes(full ? 8 : left);
        const void *panel = (const char *)packed + p * units * cell_row_bytes(4, halfGates, 8);
        long r = 0;
#define LSTM8(R)                                                                                                     \
    lstm_block8(R, halfGates, units, panel, h ? h + r * units : 0, previousCell + r * units, gates + r * width, cell + r * units, \
                activatedCell + r * units, state + r * units, unit, mask, full)
        for (; r + 2 <= batch; r += 2) LSTM8(2);
        if (r < batch) LSTM8(1);
#undef LSTM8
    }
}

// R rows (at most 3: 9 accumulators beside the panel's 3 vectors) × one 8-unit panel of GRU's
// three gates.
AVX2_INLINE void gru_block8(const int R, const int halfGates, long units, const void *panel, const float *bias, const float *h,
                            const float *previous, float *gates, float *auxiliary, float *state, long unit, __m256i mask, int full) {
    const long width = 3 * units;
    __m256 acc[3][3];
    for (int g = 0; g < 3; g++) {
        const __m256 b = load8(bias + g * units + unit, mask, full);
        for (int r = 0; r < R; r++) acc[r][g] = b;
    }
    if (h) {
        for (long k = 0; k < units; k++) {
            const char *row = (const char *)panel + k * cell_row_bytes(3, halfGates, 8);
            const __m256 b[3] = {gate8(row, 0, halfGates), gate8(row, 1, halfGates), gate8(row, 2, halfGates)};
            for (int r = 0; r < R; r++) {
                const __m256 a = _mm256_broadcast_ss(h + r * units + k);
                for (int g = 0; g < 3; g++) acc[r][g] = _mm256_fmadd_ps(a, b[g], acc[r][g]);
            }
        }
    }
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < R; r++) {
        float *g = gates + r * width + unit;
        const long s = r * units + unit;
        const __m256 z = sigmoid8(_mm256_add_ps(load8(g, mask, full), acc[r][0]));
        const __m256 reset = sigmoid8(_mm256_add_ps(load8(g + units, mask, full), acc[r][1]));
        const __m256 candidate = tanh_avx2(_mm256_add_ps(load8(g + 2 * units, mask, full), _mm256_mul_ps(reset, acc[r][2])));
        store8(g, z, mask, full);
        store8(g + units, reset, mask, full);
        store8(g + 2 * units, candidate, mask, full);
        store8(auxiliary + s, acc[r][2], mask, full);
        store8(state + s,
               _mm256_add_ps(_mm256_mul_ps(z, load8(previous + s, mask, full)), _mm256_mul_ps(_mm256_sub_ps(one, z), candidate)),
               mask, full);
    }
}

AVX2_INLINE void gru_forward_step256(const int halfGates, long batch, long units, const void *packed, const float *bias, const float *h,
                                          const float *previous, float *gates, float *auxiliary, float *state) {
    const long panels = (units + 7) / 8, width = 3 * units;
    for (long p = 0; p < panels; p++) {
        const long unit = p * 8, left = units - unit;
        const int full = left >= 8;
        const __m256i mask = rnnkit_first_lanes(full ? 8 : left);
        const void *panel = (const char *)packed + p * units * cell_row_bytes(3, halfGates, 8);
        long r = 0;
#define GRU8(R)                                                                                                      \
    gru_block8(R, halfGates, units, panel, bias, h ? h + r * units : 0, previous + r * units, gates + r * width, auxiliary + r * units, \
               state + r * units, unit, mask, full)
        for (; r + 3 <= batch; r += 3) GRU8(3);
        switch (batch - r) {
        case 2: GRU8(2); break;
        case 1: GRU8(1); break;
        default: break;
        }
#undef GRU8
    }
}

AVX2_BODY static void lstm_backward_step256(long batch, long units, const float *gates, const float *previousCell,
                                            const float *activatedCell, const float *upstream, const float *carried,
                                            float *cellGradient, int hasLaterCell, float *gateGradient) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (long b = 0; b < batch; b++) {
        const float *g = gates + b * 4 * units;
        float *dg = gateGradient + b * 4 * units;
        const long row = b * units;
        for (long j = 0; j < units; j += 8) {
            const int full = units - j >= 8;
            const __m256i m = rnnkit_first_lanes(full ? 8 : units - j);
            __m256 dh = _mm256_setzero_ps();
            if (upstream) dh = _mm256_add_ps(dh, load8(upstream + row + j, m, full));
            if (carried) dh = _mm256_add_ps(dh, load8(carried + row + j, m, full));
            const __m256 i = load8(g + j, m, full), f = load8(g + units + j, m, full), candidate = load8(g + 2 * units + j, m, full),
                         o = load8(g + 3 * units + j, m, full), a = load8(activatedCell + row + j, m, full);
            __m256 dc = _mm256_mul_ps(_mm256_mul_ps(dh, o), _mm256_sub_ps(one, _mm256_mul_ps(a, a)));
            if (hasLaterCell) dc = _mm256_add_ps(dc, load8(cellGradient + row + j, m, full));
            store8(dg + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dc, candidate), i), _mm256_sub_ps(one, i)), m, full);
            store8(dg + units + j,
                   _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dc, load8(previousCell + row + j, m, full)), f), _mm256_sub_ps(one, f)),
                   m, full);
            store8(dg + 2 * units + j, _mm256_mul_ps(_mm256_mul_ps(dc, i), _mm256_sub_ps(one, _mm256_mul_ps(candidate, candidate))), m,
                   full);
            store8(dg + 3 * units + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dh, a), o), _mm256_sub_ps(one, o)), m, full);
            store8(cellGradient + row + j, _mm256_mul_ps(dc, f), m, full);
        }
    }
}

// R rows (at most 6) × P 8-column panels (at most 2): 12 accumulators.
AVX2_INLINE void product_block8(const int R, const int P, long depth, const float *a, long lda, const float *panels, long panelDepth,
                                int beta, float *c, long ldc, long column, long columns) {
    __m256 acc[6][2];
    __m256i masks[2];
    int full[2];
    for (int p = 0; p < P; p++) {
        const long left = columns - column - p * 8;
        full[p] = left >= 8;
        masks[p] = rnnkit_first_lanes(full[p] ? 8 : left);
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            acc[r][p] = beta ? load8(c + r * ldc + column + p * 8, masks[p], full[p]) : _mm256_setzero_ps();
    for (long k = 0; k < depth; k++) {
        __m256 b[2];
        for (int p = 0; p < P; p++) b[p] = _mm256_loadu_ps(panels + (p * panelDepth + k) * 8);
        for (int r = 0; r < R; r++) {
            const __m256 x = _mm256_broadcast_ss(a + r * lda + k);
            for (int p = 0; p < P; p++) acc[r][p] = _mm256_fmadd_ps(x, b[p], acc[r][p]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) store8(c + r * ldc + column + p * 8, acc[r][p], masks[p], full[p]);
}

AVX2_BODY static void packed_product256(long rows, long columns, long depth, const float *a, long lda, const float *packed,
                                        long panelDepth, int beta, float *c, long ldc) {
    const long panels = (columns + 7) / 8;
    long r = 0;
#define ROWS8(R)                                                                                                    \
    {                                                                                                               \
        long p = 0;                                                                                                 \
        for (; p + 2 <= panels; p += 2)                                                                             \
            product_block8(R, 2, depth, a + r * lda, lda, packed + p * panelDepth * 8, panelDepth, beta, c + r * ldc, ldc, \
                           p * 8, columns);                                                                         \
        if (p < panels)                                                                                             \
            product_block8(R, 1, depth, a + r * lda, lda, packed + p * panelDepth * 8, panelDepth, beta, c + r * ldc, ldc, \
                           p * 8, columns);                                                                         \
    }
    for (; r + 6 <= rows; r += 6) ROWS8(6)
    switch (rows - r) {
    case 5: ROWS8(5) break;
    case 4: ROWS8(4) break;
    case 3: ROWS8(3) break;
    case 2: ROWS8(2) break;
    case 1: ROWS8(1) break;
    default: break;
    }
#undef ROWS8
}


// Sized for the widest panels, so that the count does not depend on the path.
long rnnkit_cell_packed_count(long gates, long units) { return (units + PANEL - 1) / PANEL * units * gates * PANEL; }

int rnnkit_cell_pack(long gates, long units, const float *u, float *packed) {
    const long w = panel_width();
    if (!w || units < 1 || gates < 1) return 0;
    const long width = gates * units, panels = (units + w - 1) / w;
    for (long p = 0; p < panels; p++) {
        float *panel = packed + p * units * gates * w;
        for (long k = 0; k < units; k++) {
            for (long g = 0; g < gates; g++) {
                float *target = panel + (k * gates + g) * w;
                for (long j = 0; j < w; j++) {
                    const long unit = p * w + j;
                    target[j] = unit < units ? u[k * width + g * units + unit] : 0.0f;
                }
            }
        }
    }
    return 1;
}

// R rows (a constant at every call, so the loops unroll into registers: 4R accumulators, at most
// 24 of the 32) × one panel of 16 units (`mask` for a last, partial one).
AVX512_INLINE void lstm_block(const int R, const int halfGates, long units, const void *panel, const float *h,
                              const float *previousCell, float *gates, float *cell, float *activatedCell, float *state, long unit, __mmask16 mask) {
    const long width = 4 * units;
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < 4; g++) acc[r][g] = _mm512_maskz_loadu_ps(mask, gates + r * width + g * units + unit);
    if (h) {
        for (long k = 0; k < units; k++) {
            const char *row = (const char *)panel + k * cell_row_bytes(4, halfGates, PANEL);
            const __m512 b0 = gate16(row, 0, 4, halfGates), b1 = gate16(row, 1, 4, halfGates), b2 = gate16(row, 2, 4, halfGates),
                         b3 = gate16(row, 3, 4, halfGates);
            for (int r = 0; r < R; r++) {
                const __m512 a = _mm512_set1_ps(h[r * units + k]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        float *g = gates + r * width + unit;
        const long s = r * units + unit;
        const __m512 i = sigmoid16(acc[r][0]), f = sigmoid16(acc[r][1]), candidate = tanh512(acc[r][2]),
                     o = sigmoid16(acc[r][3]);
        _mm512_mask_storeu_ps(g, mask, i);
        _mm512_mask_storeu_ps(g + units, mask, f);
        _mm512_mask_storeu_ps(g + 2 * units, mask, candidate);
        _mm512_mask_storeu_ps(g + 3 * units, mask, o);
        const __m512 c = _mm512_add_ps(_mm512_mul_ps(f, _mm512_maskz_loadu_ps(mask, previousCell + s)), _mm512_mul_ps(i, candidate));
        const __m512 a = tanh512(c);
        _mm512_mask_storeu_ps(cell + s, mask, c);
        _mm512_mask_storeu_ps(activatedCell + s, mask, a);
        _mm512_mask_storeu_ps(state + s, mask, _mm512_mul_ps(o, a));
    }
}

AVX512_INLINE void lstm_forward_step512(const int halfGates, long batch, long units, const void *packed, const float *h,
                                        const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) {
    const long panels = (units + PANEL - 1) / PANEL, width = 4 * units;
    for (long p = 0; p < panels; p++) {
        const long unit = p * PANEL, left = units - unit;
        const __mmask16 mask = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const void *panel = (const char *)packed + p * units * cell_row_bytes(4, halfGates, PANEL);
        long r = 0;
        for (; r + 6 <= batch; r += 6)
            lstm_block(6, halfGates, units, panel, h ? h + r * units : 0, previousCell + r * units, gates + r * width, cell + r * units,
                       activatedCell + r * units, state + r * units, unit, mask);
#define TAIL(R)                                                                                                      \
    case R:                                                                                                          \
        lstm_block(R, halfGates, units, panel, h ? h + r * units : 0, previousCell + r * units, gates + r * width, cell + r * units, \
                   activatedCell + r * units, state + r * units, unit, mask);                                       \
        break;
        switch (batch - r) {
            TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5)
        default: break;
        }
#undef TAIL
    }
}

// Each body compiled on its own for float and for binary16 panels.
#define LSTM_PARAMETERS                                                                                                \
    long batch, long units, const void *packed, const float *h, const float *previousCell, float *gates, float *cell, \
        float *activatedCell, float *state
#define LSTM_ARGUMENTS batch, units, packed, h, previousCell, gates, cell, activatedCell, state
AVX512 static void lstm_step512_float(LSTM_PARAMETERS) { lstm_forward_step512(0, LSTM_ARGUMENTS); }
AVX512 static void lstm_step512_half(LSTM_PARAMETERS) { lstm_forward_step512(LSTM_HALF_GATES, LSTM_ARGUMENTS); }
AVX512 static void lstm_step512_bfloat16(LSTM_PARAMETERS) { lstm_forward_step512(BFLOAT16_GATES, LSTM_ARGUMENTS); }
AVX2_BODY static void lstm_step256_float(LSTM_PARAMETERS) { lstm_forward_step256(0, LSTM_ARGUMENTS); }
AVX2_BODY static void lstm_step256_half(LSTM_PARAMETERS) { lstm_forward_step256(LSTM_HALF_GATES, LSTM_ARGUMENTS); }

// half: 0 float, 1 binary16, 2 bfloat16 (AVX-512 only).
static int lstm_step(const int half, LSTM_PARAMETERS) {
    const long w = half == 2 ? rnnkit_bfloat16_panel_width() : half ? half_panel_width() : panel_width();
    if (!w || batch < 1 || units < 1) return 0;
    if (half == 2) {
        lstm_step512_bfloat16(LSTM_ARGUMENTS);
        return 1;
    }
    if (w == 16) (half ? lstm_step512_half : lstm_step512_float)(LSTM_ARGUMENTS);
    else (half ? lstm_step256_half : lstm_step256_float)(LSTM_ARGUMENTS);
    return 1;
}
#undef LSTM_PARAMETERS
#undef LSTM_ARGUMENTS

int rnnkit_lstm_forward_step(long batch, long units, const float *packed, const float *previousState, const float *previousCell,
                             float *gates, float *cell, float *activatedCell, float *state) {
    return lstm_step(0, batch, units, packed, previousState, previousCell, gates, cell, activatedCell, state);
}

int rnnkit_lstm_forward_step_half(long batch, long units, const unsigned short *packed, const float *previousState,
                                  const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) {
    return lstm_step(1, batch, units, packed, previousState, previousCell, gates, cell, activatedCell, state);
}

int rnnkit_lstm_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *previousState,
                                      const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) {
    return lstm_step(2, batch, units, packed, previousState, previousCell, gates, cell, activatedCell, state);
}

// R rows (a constant, at most 8: 3R accumulators) × one panel of 16 units of GRU's three gates.
AVX512_INLINE void gru_block(const int R, const int halfGates, long units, const void *panel, const float *bias, const float *h,
                             const float *previous, float *gates, float *auxiliary, float *state, long unit, __mmask16 mask) {
    const long width = 3 * units;
    __m512 acc[8][3];
    for (int g = 0; g < 3; g++) {
        const __m512 b = _mm512_maskz_loadu_ps(mask, bias + g * units + unit);
        for (int r = 0; r < R; r++) acc[r][g] = b;
    }
    if (h) {
        for (long k = 0; k < units; k++) {
            const char *row = (const char *)panel + k * cell_row_bytes(3, halfGates, PANEL);
            const __m512 b0 = gate16(row, 0, 3, halfGates), b1 = gate16(row, 1, 3, halfGates), b2 = gate16(row, 2, 3, halfGates);
            for (int r = 0; r < R; r++) {
                const __m512 a = _mm512_set1_ps(h[r * units + k]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            }
        }
    }
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int r = 0; r < R; r++) {
        float *g = gates + r * width + unit;
        const long s = r * units + unit;
        const __m512 z = sigmoid16(_mm512_add_ps(_mm512_maskz_loadu_ps(mask, g), acc[r][0]));
        const __m512 reset = sigmoid16(_mm512_add_ps(_mm512_maskz_loadu_ps(mask, g + units), acc[r][1]));
        const __m512 candidate = tanh512(_mm512_add_ps(_mm512_maskz_loadu_ps(mask, g + 2 * units), _mm512_mul_ps(reset, acc[r][2])));
        _mm512_mask_storeu_ps(g, mask, z);
        _mm512_mask_storeu_ps(g + units, mask, reset);
        _mm512_mask_storeu_ps(g + 2 * units, mask, candidate);
        _mm512_mask_storeu_ps(auxiliary + s, mask, acc[r][2]);
        const __m512 blended = _mm512_add_ps(_mm512_mul_ps(z, _mm512_maskz_loadu_ps(mask, previous + s)),
                                             _mm512_mul_ps(_mm512_sub_ps(one, z), candidate));
        _mm512_mask_storeu_ps(state + s, mask, blended);
    }
}

AVX512_INLINE void gru_forward_step512(const int halfGates, long batch, long units, const void *packed, const float *bias, const float *h,
                                       const float *previous, float *gates, float *auxiliary, float *state) {
    const long panels = (units + PANEL - 1) / PANEL, width = 3 * units;
    for (long p = 0; p < panels; p++) {
        const long unit = p * PANEL, left = units - unit;
        const __mmask16 mask = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const void *panel = (const char *)packed + p * units * cell_row_bytes(3, halfGates, PANEL);
        long r = 0;
#define GRU_ROWS(R)                                                                                                  \
    gru_block(R, halfGates, units, panel, bias, h ? h + r * units : 0, previous + r * units, gates + r * width, auxiliary + r * units, \
              state + r * units, unit, mask)
        for (; r + 8 <= batch; r += 8) GRU_ROWS(8);
        switch (batch - r) {
        case 7: GRU_ROWS(7); break;
        case 6: GRU_ROWS(6); break;
        case 5: GRU_ROWS(5); break;
        case 4: GRU_ROWS(4); break;
        case 3: GRU_ROWS(3); break;
        case 2: GRU_ROWS(2); break;
        case 1: GRU_ROWS(1); break;
        default: break;
        }
#undef GRU_ROWS
    }
}

#define GRU_PARAMETERS                                                                                               \
    long batch, long units, const void *packed, const float *bias, const float *h, const float *previous, float *gates, \
        float *auxiliary, float *state
#define GRU_ARGUMENTS batch, units, packed, bias, h, previous, gates, auxiliary, state
AVX512 static void gru_step512_float(GRU_PARAMETERS) { gru_forward_step512(0, GRU_ARGUMENTS); }
AVX512 static void gru_step512_half(GRU_PARAMETERS) { gru_forward_step512(GRU_HALF_GATES, GRU_ARGUMENTS); }
AVX512 static void gru_step512_bfloat16(GRU_PARAMETERS) { gru_forward_step512(BFLOAT16_GATES, GRU_ARGUMENTS); }
AVX2_BODY static void gru_step256_float(GRU_PARAMETERS) { gru_forward_step256(0, GRU_ARGUMENTS); }
AVX2_BODY static void gru_step256_half(GRU_PARAMETERS) { gru_forward_step256(GRU_HALF_GATES, GRU_ARGUMENTS); }

// half: as lstm_step's.
static int gru_step(const int half, GRU_PARAMETERS) {
    const long w = half == 2 ? rnnkit_bfloat16_panel_width() : half ? half_panel_width() : panel_width();
    if (!w || batch < 1 || units < 1) return 0;
    if (half == 2) {
        gru_step512_bfloat16(GRU_ARGUMENTS);
        return 1;
    }
    if (w == 16) (half ? gru_step512_half : gru_step512_float)(GRU_ARGUMENTS);
    else (half ? gru_step256_half : gru_step256_float)(GRU_ARGUMENTS);
    return 1;
}
#undef GRU_PARAMETERS
#undef GRU_ARGUMENTS

int rnnkit_gru_forward_step(long batch, long units, const float *packed, const float *recurrentBias,
                            const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                            float *state) {
    return gru_step(0, batch, units, packed, recurrentBias, previousForProduct, previousState, gates, auxiliary, state);
}

int rnnkit_gru_forward_step_half(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                 const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                 float *state) {
    return gru_step(1, batch, units, packed, recurrentBias, previousForProduct, previousState, gates, auxiliary, state);
}

int rnnkit_gru_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                     const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                     float *state) {
    return gru_step(2, batch, units, packed, recurrentBias, previousForProduct, previousState, gates, auxiliary, state);
}

AVX512 static void lstm_backward_step512(long batch, long units, const float *gates, const float *previousCell,
                                         const float *activatedCell, const float *upstream, const float *carried,
                                         float *cellGradient, int hasLaterCell, float *gateGradient) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long b = 0; b < batch; b++) {
        const float *g = gates + b * 4 * units;
        float *dg = gateGradient + b * 4 * units;
        const long row = b * units;
        for (long j = 0; j < units; j += PANEL) {
            const long left = units - j;
            const __mmask16 m = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            __m512 dh = _mm512_setzero_ps();
            if (upstream) dh = _mm512_add_ps(dh, _mm512_maskz_loadu_ps(m, upstream + row + j));
            if (carried) dh = _mm512_add_ps(dh, _mm512_maskz_loadu_ps(m, carried + row + j));
            const __m512 i = _mm512_maskz_loadu_ps(m, g + j), f = _mm512_maskz_loadu_ps(m, g + units + j),
                         candidate = _mm512_maskz_loadu_ps(m, g + 2 * units + j), o = _mm512_maskz_loadu_ps(m, g + 3 * units + j);
            const __m512 a = _mm512_maskz_loadu_ps(m, activatedCell + row + j);
            __m512 dc = _mm512_mul_ps(_mm512_mul_ps(dh, o), _mm512_sub_ps(one, _mm512_mul_ps(a, a)));
            if (hasLaterCell) dc = _mm512_add_ps(dc, _mm512_maskz_loadu_ps(m, cellGradient + row + j));
            _mm512_mask_storeu_ps(dg + j, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dc, candidate), i), _mm512_sub_ps(one, i)));
            _mm512_mask_storeu_ps(dg + units + j, m,
                                  _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dc, _mm512_maskz_loadu_ps(m, previousCell + row + j)), f),
                                                _mm512_sub_ps(one, f)));
            _mm512_mask_storeu_ps(dg + 2 * units + j, m,
                                  _mm512_mul_ps(_mm512_mul_ps(dc, i), _mm512_sub_ps(one, _mm512_mul_ps(candidate, candidate))));
            _mm512_mask_storeu_ps(dg + 3 * units + j, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dh, a), o), _mm512_sub_ps(one, o)));
            _mm512_mask_storeu_ps(cellGradient + row + j, m, _mm512_mul_ps(dc, f));
        }
    }
}

int rnnkit_lstm_backward_step(long batch, long units, const float *gates, const float *previousCell, const float *activatedCell,
                              const float *upstream, const float *carried, float *cellGradient, int hasLaterCell,
                              float *gateGradient) {
    const long w = panel_width();
    if (!w || batch < 1 || units < 1) return 0;
    if (w == 16)
        lstm_backward_step512(batch, units, gates, previousCell, activatedCell, upstream, carried, cellGradient, hasLaterCell,
                              gateGradient);
    else
        lstm_backward_step256(batch, units, gates, previousCell, activatedCell, upstream, carried, cellGradient, hasLaterCell,
                              gateGradient);
    return 1;
}

long rnnkit_panels_count(long columns, long depth) { return (columns + PANEL - 1) / PANEL * depth * PANEL; }

int rnnkit_pack_panels(long columns, long depth, const float *b, long columnStride, long depthStride, float *packed) {
    const long w = panel_width();
    if (!w || columns < 1 || depth < 1) return 0;
    const long panels = (columns + w - 1) / w;
    for (long p = 0; p < panels; p++)
        for (long k = 0; k < depth; k++)
            for (long j = 0; j < w; j++) {
                const long column = p * w + j;
                packed[(p * depth + k) * w + j] = column < columns ? b[column * columnStride + k * depthStride] : 0.0f;
            }
    return 1;
}

// R rows × P panels (constants at every call): R·P accumulators.
AVX512_INLINE void product_block(const int R, const int P, long depth, const float *a, long lda, const float *panels,
                                 long panelDepth, int beta, float *c, long ldc, long column, long columns) {
    __m512 acc[8][2];
    __mmask16 masks[2];
    for (int p = 0; p < P; p++) {
        const long left = columns - column - p * PANEL;
        masks[p] = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            acc[r][p] = beta ? _mm512_maskz_loadu_ps(masks[p], c + r * ldc + column + p * PANEL) : _mm512_setzero_ps();
    for (long k = 0; k < depth; k++) {
        __m512 b[2];
        for (int p = 0; p < P; p++) b[p] = _mm512_loadu_ps(panels + (p * panelDepth + k) * PANEL);
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + k]);
            for (int p = 0; p < P; p++) acc[r][p] = _mm512_fmadd_ps(x, b[p], acc[r][p]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) _mm512_mask_storeu_ps(c + r * ldc + column + p * PANEL, masks[p], acc[r][p]);
}

AVX512 static void packed_product512(long rows, long columns, long depth, const float *a, long lda, const float *packed,
                                     long panelDepth, int beta, float *c, long ldc) {
    const long panels = (columns + PANEL - 1) / PANEL;
    long r = 0;
#define ROWS(R)                                                                                                     \
    {                                                                                                               \
        long p = 0;                                                                                                 \
        for (; p + 2 <= panels; p += 2)                                                                             \
            product_block(R, 2, depth, a + r * lda, lda, packed + p * panelDepth * PANEL, panelDepth, beta, c + r * ldc, ldc, \
                          p * PANEL, columns);                                                                      \
        if (p < panels)                                                                                             \
            product_block(R, 1, depth, a + r * lda, lda, packed + p * panelDepth * PANEL, panelDepth, beta, c + r * ldc, ldc, \
                          p * PANEL, columns);                                                                      \
    }
    for (; r + 8 <= rows; r += 8) ROWS(8)
    switch (rows - r) {
    case 7: ROWS(7) break;
    case 6: ROWS(6) break;
    case 5: ROWS(5) break;
    case 4: ROWS(4) break;
    case 3: ROWS(3) break;
    case 2: ROWS(2) break;
    case 1: ROWS(1) break;
    default: break;
    }
#undef ROWS
}

int rnnkit_packed_product(long rows, long columns, long depth, const float *a, long lda, const float *packed, long panelDepth,
                          int beta, float *c, long ldc) {
    const long w = panel_width();
    if (!w || rows < 1 || columns < 1 || depth < 1) return 0;
    if (w == 16) packed_product512(rows, columns, depth, a, lda, packed, panelDepth, beta ? 1 : 0, c, ldc);
    else packed_product256(rows, columns, depth, a, lda, packed, panelDepth, beta ? 1 : 0, c, ldc);
    return 1;
}

// R rows of C (a constant, at most 6) × P 16-column vectors (at most 4): 24 accumulators. Each k
// broadcasts R consecutive elements of A's row k and loads P vectors of B's row k.
AVX512_INLINE void transposed_a_block(const int R, const int P, long depth, const float *a, long lda, const float *b, long ldb,
                                      int first, float *c, long ldc, long columnsLeft) {
    __m512 acc[6][4];
    __mmask16 masks[4];
    for (int p = 0; p < P; p++) {
        const long left = columnsLeft - p * PANEL;
        masks[p] = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << (left > 0 ? left : 0)) - 1);
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            acc[r][p] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(masks[p], c + r * ldc + p * PANEL);
    for (long k = 0; k < depth; k++) {
        __m512 v[4];
        // B's rows lie a whole gate row apart: fetched from memory on the first row block's pass,
        // each would wait its full latency without asking for it ahead (from the cache after).
        for (int p = 0; p < P; p++) _mm_prefetch((const char *)(b + (k + 12) * ldb + p * PANEL), _MM_HINT_T0);
        for (int p = 0; p < P; p++) v[p] = _mm512_maskz_loadu_ps(masks[p], b + k * ldb + p * PANEL);
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(a[k * lda + r]);
            for (int p = 0; p < P; p++) acc[r][p] = _mm512_fmadd_ps(x, v[p], acc[r][p]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) _mm512_mask_storeu_ps(c + r * ldc + p * PANEL, masks[p], acc[r][p]);
}

// The depth in blocks whose rows of B (up to 64 columns of them) stay in the L2 cache while every
// row block of C passes over them; C is read back between blocks.
#define DEPTH_BLOCK 384

// Adds the sums over kc rows of B (up to 4 vectors of columns, `columnsLeft` of them real) into sums.
AVX512_INLINE void add_column_sums(const int P, long kc, const float *b, long ldb, float *sums, int first, long columnsLeft) {
    for (int p = 0; p < P; p++) {
        const long left = columnsLeft - p * PANEL;
        const __mmask16 mask = left >= PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 total = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, sums + p * PANEL);
        for (long k = 0; k < kc; k++) total = _mm512_add_ps(total, _mm512_maskz_loadu_ps(mask, b + k * ldb + p * PANEL));
        _mm512_mask_storeu_ps(sums + p * PANEL, mask, total);
    }
}

AVX512 static void transposed_a_product512(long rows, long columns, long depth, const float *a, long lda, const float *b, long ldb,
                                           int beta, float *c, long ldc, float *columnSums) {
    for (long k0 = 0; k0 < depth; k0 += DEPTH_BLOCK) {
        const long kc = depth - k0 < DEPTH_BLOCK ? depth - k0 : DEPTH_BLOCK;
        const int first = k0 == 0 && !beta;
        for (long j = 0; j < columns; j += 4 * PANEL) {
            const long left = columns - j;
            const int P = left >= 4 * PANEL ? 4 : (int)((left + PANEL - 1) / PANEL);
            long r = 0;
#define TA(R, P)                                                                                                          \
    transposed_a_block(R, P, kc, a + k0 * lda + r, lda, b + k0 * ldb + j, ldb, first, c + r * ldc + j, ldc, left)
#define TA_ROWS(R)                                                                                                        \
    switch (P) {                                                                                                          \
    case 4: TA(R, 4); break;                                                                                              \
    case 3: TA(R, 3); break;                                                                                              \
    case 2: TA(R, 2); break;                                                                                              \
    default: TA(R, 1); break;                                                                                             \
    }
            for (; r + 6 <= rows; r += 6) TA_ROWS(6)
            switch (rows - r) {
            case 5: TA_ROWS(5) break;
            case 4: TA_ROWS(4) break;
            case 3: TA_ROWS(3) break;
            case 2: TA_ROWS(2) break;
            case 1: TA_ROWS(1) break;
            default: break;
            }
#undef TA_ROWS
#undef TA
            if (columnSums) add_column_sums(P, kc, b + k0 * ldb + j, ldb, columnSums + j, k0 == 0, left);
        }
    }
}

int rnnkit_transposed_a_product(long rows, long columns, long depth, const float *a, long lda, const float *b, long ldb, int beta,
                                float *c, long ldc, float *columnSums) {
    if (panel_width() != 16 || rows < 1 || columns < 1 || depth < 1) return 0;
    transposed_a_product512(rows, columns, depth, a, lda, b, ldb, beta ? 1 : 0, c, ldc, columnSums);
    return 1;
}

#else
int rnnkit_transposed_a_product(long rows, long columns, long depth, const float *a, long lda, const float *b, long ldb, int beta,
                                float *c, long ldc, float *columnSums) { return 0; }
long rnnkit_cell_packed_count(long gates, long units) { return 0; }
int rnnkit_cell_pack(long gates, long units, const float *u, float *packed) { return 0; }
int rnnkit_lstm_forward_step(long batch, long units, const float *packed, const float *previousState, const float *previousCell,
                             float *gates, float *cell, float *activatedCell, float *state) { return 0; }
int rnnkit_gru_forward_step(long batch, long units, const float *packed, const float *recurrentBias,
                            const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                            float *state) { return 0; }
int rnnkit_lstm_backward_step(long batch, long units, const float *gates, const float *previousCell, const float *activatedCell,
                              const float *upstream, const float *carried, float *cellGradient, int hasLaterCell,
                              float *gateGradient) { return 0; }
long rnnkit_panels_count(long columns, long depth) { return 0; }
long rnnkit_panel_width(void) { return 0; }
int rnnkit_pack_panels(long columns, long depth, const float *b, long columnStride, long depthStride, float *packed) { return 0; }
int rnnkit_packed_product(long rows, long columns, long depth, const float *a, long lda, const float *packed, long panelDepth,
                          int beta, float *c, long ldc) { return 0; }
long rnnkit_half_panel_width(void) { return 0; }
long rnnkit_cell_half_gates(long gates) { return 0; }
long rnnkit_cell_packed_half_count(long gates, long units) { return 0; }
int rnnkit_cell_pack_half(long gates, long units, const float *u, unsigned short *packed) { return 0; }
int rnnkit_lstm_forward_step_half(long batch, long units, const unsigned short *packed, const float *previousState,
                                  const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) { return 0; }
int rnnkit_gru_forward_step_half(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                 const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                 float *state) { return 0; }
long rnnkit_bfloat16_panel_width(void) { return 0; }
long rnnkit_cell_packed_bfloat16_count(long gates, long units) { return 0; }
int rnnkit_cell_pack_bfloat16(long gates, long units, const float *u, unsigned short *packed) { return 0; }
int rnnkit_lstm_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *previousState,
                                      const float *previousCell, float *gates, float *cell, float *activatedCell, float *state) { return 0; }
int rnnkit_gru_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                     const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                     float *state) { return 0; }
#endif
