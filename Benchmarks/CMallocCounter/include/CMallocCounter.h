#ifndef CMALLOCCOUNTER_H
#define CMALLOCCOUNTER_H
/// How many times malloc has been called in this process (the benchmarks executable).
long rnnkit_malloc_count(void);
#endif
