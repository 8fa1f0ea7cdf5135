// CPUID and XGETBV, read directly rather than through the compiler's __builtin_cpu_supports so
// that the description can name the vendor, model and every feature the BLAS core choice depends on.
#include <string.h>
#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>

static unsigned long long extended_control_register(void) {
    unsigned int low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}

static int bit(unsigned int word, int index) { return (int)((word >> index) & 1u); }

int rnnkit_cpu_describe(rnnkit_cpu_info *info) {
    memset(info, 0, sizeof *info);
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 1;
    unsigned int highest = a;
    memcpy(info->vendor, &b, 4);
    memcpy(info->vendor + 4, &d, 4);
    memcpy(info->vendor + 8, &c, 4);

    __cpuid(1, a, b, c, d);
    int baseFamily = (int)((a >> 8) & 0xf), baseModel = (int)((a >> 4) & 0xf);
    info->family = baseFamily == 0xf ? baseFamily + (int)((a >> 20) & 0xff) : baseFamily;
    info->model = (baseFamily == 0x6 || baseFamily == 0xf) ? baseModel + (int)(((a >> 16) & 0xf) << 4) : baseModel;
    info->stepping = (int)(a & 0xf);
    info->sse3 = bit(c, 0);
    info->ssse3 = bit(c, 9);
    info->sse41 = bit(c, 19);
    info->sse42 = bit(c, 20);

    // The OS must have enabled XSAVE (OSXSAVE) before XGETBV may run at all.
    unsigned long long xcr0 = bit(c, 27) ? extended_control_register() : 0;
    int ymmSaved = (xcr0 & 0x6) == 0x6;                   // SSE and AVX state
    int zmmSaved = ymmSaved && (xcr0 & 0xe0) == 0xe0;     // opmask, upper ZMM0–15, ZMM16–31
    int tilesSaved = (xcr0 & 0x60000) == 0x60000;         // AMX tile configuration and data
    info->avx = bit(c, 28) && ymmSaved;
    info->fma = bit(c, 12) && ymmSaved;

    if (highest >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned int subleaves = a;
        info->avx2 = bit(b, 5) && ymmSaved;
        info->avx512f = bit(b, 16) && zmmSaved;
        info->avx512dq = bit(b, 17) && zmmSaved;
        info->avx512bw = bit(b, 30) && zmmSaved;
        info->avx512vl = bit(b, 31) && zmmSaved;
        info->avx512_vnni = bit(c, 11) && zmmSaved;
        info->avx512_fp16 = bit(d, 23) && zmmSaved;
        info->amx_bf16 = bit(d, 22) && tilesSaved;
        info->amx_tile = bit(d, 24) && tilesSaved;
        info->amx_int8 = bit(d, 25) && tilesSaved;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            info->avx512_bf16 = bit(a, 5) && zmmSaved;
        }
    }

    __cpuid(0x80000000, a, b, c, d);
    if (a >= 0x80000004) {
        unsigned int words[12];
        for (unsigned int leaf = 0; leaf < 3; leaf++)
            __cpuid(0x80000002 + leaf, words[4 * leaf], words[4 * leaf + 1], words[4 * leaf + 2], words[4 * leaf + 3]);
        memcpy(info->brand, words, 48);
        info->brand[48] = 0;
    }
    return 1;
}
#else
int rnnkit_cpu_describe(rnnkit_cpu_info *info) {
    memset(info, 0, sizeof *info);
    return 0;
}
#endif
