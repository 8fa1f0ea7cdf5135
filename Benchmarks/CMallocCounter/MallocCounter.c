// Counts calls to malloc in the benchmarks process, so it can prove a loop allocates nothing.
// Linked into the benchmarks executable, this definition of malloc takes the place of the C library's
// for every caller (Swift's runtime included) and forwards to glibc's own.
#include <stdatomic.h>
#include <stddef.h>
#include "CMallocCounter.h"

extern void *__libc_malloc(size_t size);
static atomic_long calls;

void *malloc(size_t size) {
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    return __libc_malloc(size);
}

long rnnkit_malloc_count(void) {
    return atomic_load_explicit(&calls, memory_order_relaxed);
}
