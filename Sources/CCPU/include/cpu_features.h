#ifndef RNNKIT_CPU_FEATURES_H
#define RNNKIT_CPU_FEATURES_H

// What this processor is and which vector instructions it and the operating system let a program
// use, read with CPUID and XGETBV. A feature counts only when the OS also saves its registers on a
// context switch (XCR0): a CPU with AVX-512 under a kernel that does not enable it has no AVX-512.
// On a processor that is not x86-64 every flag is 0 and the vendor is empty.
typedef struct {
    char vendor[13];  // "GenuineIntel", "AuthenticAMD", "HygonGenuine", …
    char brand[49];   // the marketing name, e.g. "AMD EPYC 9R14 96-Core Processor"
    int family;       // display family and model (base plus extended, as the vendor manuals define)
    int model;
    int stepping;
    int sse3, ssse3, sse41, sse42;
    int avx, fma, avx2;
    int avx512f, avx512bw, avx512dq, avx512vl, avx512_bf16, avx512_fp16, avx512_vnni;
    int amx_tile, amx_bf16, amx_int8;
} rnnkit_cpu_info;

// Fills info; returns 1 on x86-64 and 0 elsewhere (info is then zeroed).
int rnnkit_cpu_describe(rnnkit_cpu_info *info);

#endif
