#include "small_kernels.h"
#include "dispatch.h"
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

// The path is chosen from the CPU's features, never from its model: AVX-512 (F, BW, DQ, VL) where
// cpuid reports them and the OS saves their registers, else AVX2 + FMA where cpuid reports both,
// else portable C. __builtin_cpu_supports already folds in the OS check (compiler-rt's
// cpu_model/x86.c sets FEATURE_AVX512F only when XCR0 bits 5–7, the opmask and zmm state, are
// set, and libgcc's cpuinfo does the same); the XGETBV test below makes that independent of which
// runtime library supplies __cpu_model.

static const char *const PATH_NAMES[] = {"portable", "avx2-fma", "avx512"};

// XCR0 bits 1–2 (SSE and AVX state) and 5–7 (opmask, upper halves of zmm0–15, zmm16–31) saved.
__attribute__((target("xsave"))) static int os_saves_zmm(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return 0;
    unsigned long long xcr0 = _xgetbv(0);
    return (xcr0 & 0xE6) == 0xE6;
}

static int best_supported(void) {
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && os_saves_zmm();
    return avx512 ? RNNKIT_PATH_AVX512 : avx2 ? RNNKIT_PATH_AVX2 : RNNKIT_PATH_PORTABLE;
}

// -1 for an unknown name, else the path; NULL and "" name the best the CPU supports.
static int path_named(const char *name, int best) {
    if (!name || !*name) return best;
    for (int p = 0; p < 3; p++)
        if (strcmp(name, PATH_NAMES[p]) == 0) return p;
    return -1;
}

// -1 until first use. Worker threads read it at once, so every access is atomic (relaxed: every
// thread that chooses computes the same answer from the same features and environment).
static int current_path = -1;

static int cached_best(void) {
    static int best = -1;
    int known = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (known < 0) {
        known = best_supported();
        __atomic_store_n(&best, known, __ATOMIC_RELAXED);
    }
    return known;
}

// The first choice: RNNKIT_SMALL_KERNELS when it names a path this CPU runs, else the best. An
// unknown or unsupported name is not reported here (the Swift side says so); the best path runs.
static int initial_path(void) {
    int best = cached_best();
    int requested = path_named(getenv("RNNKIT_SMALL_KERNELS"), best);
    return requested >= 0 && requested <= best ? requested : best;
}

int rnnkit_kernel_path(void) {
    int known = __atomic_load_n(&current_path, __ATOMIC_RELAXED);
    if (known < 0) {
        int expected = -1;
        known = initial_path();
        // A force() that ran meanwhile wins.
        if (!__atomic_compare_exchange_n(&current_path, &expected, known, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) known = expected;
    }
    return known;
}

const char *rnnkit_small_kernels_isa(void) { return PATH_NAMES[rnnkit_kernel_path()]; }

int rnnkit_small_kernels_supports(const char *name) {
    int path = path_named(name, cached_best());
    return path >= 0 && path <= cached_best();
}

int rnnkit_small_kernels_force(const char *name) {
    int best = cached_best();
    int path = path_named(name, best);
    if (path < 0 || path > best) return 0;
    __atomic_store_n(&current_path, path, __ATOMIC_RELAXED);
    return 1;
}

// F16C (binary16 ↔ float in ymm registers) for the half-precision weights on the AVX2 path; the
// AVX-512 path needs nothing beyond AVX-512F. Its state is the ymm state the AVX2 path already needs.
int rnnkit_f16c_available(void) {
    static int known = -1;
    int f16c = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (f16c < 0) {
        f16c = __builtin_cpu_supports("f16c") ? 1 : 0;
        __atomic_store_n(&known, f16c, __ATOMIC_RELAXED);
    }
    return f16c;
}

void rnnkit_small_kernels_force_portable(int portable) { rnnkit_small_kernels_force(portable ? "portable" : NULL); }
