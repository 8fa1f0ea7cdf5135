#ifndef RNNKIT_DISPATCH_H
#define RNNKIT_DISPATCH_H

// Whether this core runs the AVX2 + FMA kernels: checked once (cpuid), then cached. Every kernel
// with an AVX2 body asks it and otherwise runs its portable C body.
int rnnkit_avx2_available(void);

#endif
