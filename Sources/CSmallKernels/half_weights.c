// Float to IEEE binary16 for the half-precision packed weights (include/recurrent_cells.h). Done
// in portable C once per packing, so that the rounding does not depend on the CPU or its path.
#include "recurrent_cells.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

// The largest finite binary16 and the float bits from which a value rounds to infinity (65520).
#define HALF_MAX 65504.0f
#define ROUNDS_TO_INFINITY 0x477FF000u

static unsigned short half_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    const unsigned short sign = (unsigned short)((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return sign | 0x7E00u; // NaN (refused before packing; quiet if not)
    if (magnitude >= ROUNDS_TO_INFINITY) return sign | 0x7C00u;
    if (magnitude < 0x38800000u) {
        // Under 2^-14, binary16's subnormals, steps of 2^-24: the scaling by 2^24 is exact, and
        // rintf rounds to nearest even in the default rounding mode (1024 is the smallest normal).
        return sign | (unsigned short)rintf(fabsf(value) * 16777216.0f);
    }
    // Normal: rebias the exponent (127 → 15), keep 10 of the 23 mantissa bits, round the other 13
    // to nearest even; a carry runs into the exponent, as it should.
    uint32_t half = ((magnitude >> 23) - 112u) << 10 | (magnitude & 0x7FFFFFu) >> 13;
    const uint32_t rest = magnitude & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return sign | (unsigned short)half;
}

long rnnkit_half_from_floats(const float *x, long count, unsigned short *half, long *flushed) {
    long first = -1, zeros = 0;
    for (long i = 0; i < count; i++) {
        if (!(fabsf(x[i]) <= HALF_MAX)) {
            if (first < 0) first = i;
        } else if (x[i] != 0 && fabsf(x[i]) <= 0x1p-25f) {
            zeros++; // 2^-25 itself is the tie between 0 and the smallest subnormal: even, so 0
        }
        if (half) half[i] = half_from_float(x[i]);
    }
    if (flushed) *flushed = zeros;
    return first;
}

// Float to bfloat16, float's upper 16 bits rounded to nearest even in the lower 16: one integer
// add, so that packing gives the same bits on every CPU. bfloat16 keeps float's exponent, so only
// NaN, infinities and the few finite values past its largest finite one (which round up to
// infinity) are out of reach; the smallest float subnormals round to ±0, too few to matter.
#define BFLOAT16_ROUNDS_TO_INFINITY 0x7F7F8000u

long rnnkit_bfloat16_from_floats(const float *x, long count, unsigned short *bf16) {
    long first = -1;
    for (long i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        const uint32_t magnitude = bits & 0x7FFFFFFFu;
        if (magnitude >= BFLOAT16_ROUNDS_TO_INFINITY && first < 0) first = i;
        if (!bf16) continue;
        if (magnitude > 0x7F800000u) bf16[i] = (unsigned short)((bits >> 16) | 0x40u); // NaN stays NaN (refused before packing)
        else bf16[i] = (unsigned short)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
    return first;
}
