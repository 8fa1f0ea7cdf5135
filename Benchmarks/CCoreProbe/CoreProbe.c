// Times the same work on several cores at the same moment (see CCoreProbe.h).
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include "CCoreProbe.h"

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// What the threads share: a start signal (1 go, −1 give up: not every thread started) and a
// count of arrivals, on which every thread waits before each interval so all start at once.
typedef struct {
    atomic_int go;
    atomic_long arrived;
    int cores;
    int intervals;
    rnnkit_probe_work work;
    void *context;
    double *seconds;
} probe_shared;

typedef struct {
    probe_shared *shared;
    int core;
    int cpu;
} probe_thread;

static void *probe_main(void *argument) {
    probe_thread *p = argument;
    probe_shared *s = p->shared;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    int go;
    while ((go = atomic_load(&s->go)) == 0) sched_yield();
    if (go < 0) return 0;
    for (int i = 0; i < s->intervals; i++) {
        atomic_fetch_add(&s->arrived, 1);
        long everyone = (long)(i + 1) * s->cores;
        while (atomic_load(&s->arrived) < everyone) {}
        double start = seconds_now();
        s->work(s->context, p->core);
        s->seconds[(size_t)i * (size_t)s->cores + (size_t)p->core] = seconds_now() - start;
    }
    return 0;
}

int rnnkit_probe_cores(int cores, int intervals, rnnkit_probe_work work, void *context, double *seconds) {
    if (cores < 1 || cores > 64 || intervals < 1 || !work || !seconds) return -1;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < cores) return -1;
    probe_shared shared = {0, 0, cores, intervals, work, context, seconds};
    probe_thread threads[64];
    pthread_t handles[64];
    for (int cpu = 0, t = 0; cpu < CPU_SETSIZE && t < cores; cpu++) {
        if (CPU_ISSET(cpu, &allowed)) threads[t] = (probe_thread){&shared, t, cpu}, t++;
    }
    int started = 0;
    while (started < cores && pthread_create(&handles[started], 0, probe_main, &threads[started]) == 0) started++;
    atomic_store(&shared.go, started == cores ? 1 : -1);
    for (int t = 0; t < started; t++) pthread_join(handles[t], 0);
    return started == cores ? 0 : -1;
}
