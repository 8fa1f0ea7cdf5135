#include "hdf5_probe.h"
#include "../CHDF5/shim.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define RNNKIT_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RNNKIT_SANITIZED 1
#endif

enum { probe_links = 20000, probe_depth = 16 };

typedef struct {
    unsigned long long groups[probe_links];
    int group_count;
    int links;
} probe_walk;

static int seen(probe_walk *walk, unsigned long long address) {
    for (int i = 0; i < walk->group_count; i++) if (walk->groups[i] == address) return 1;
    if (walk->group_count < probe_links) walk->groups[walk->group_count++] = address;
    return 0;
}

/// The dataset at `path`: described, opened by path as RNNKit's lookups do, and its chunks read
/// (the chunk index is where libhdf5 walks the most structure): filtered chunks each decoded and
/// dropped; unfiltered ones read whole when every chunk is stored and within the file, as the
/// reader's audit requires before it reads any.
static void probe_dataset(hid_t file, const char *path, unsigned long long file_size) {
    hid_t object = H5Oopen(file, path, rnnkit_h5_safe_lapl());
    if (object >= 0) H5Oclose(object);
    hid_t dataset = rnnkit_h5_open_dataset(file, path);
    if (dataset < 0) return;
    rnnkit_h5_dataset_facts facts;
    if (rnnkit_h5_describe_dataset(dataset, &facts) == 0 && facts.layout == 2 && facts.external_files == 0 && facts.rank > 0) {
        if (facts.filter_count > 0) {
            rnnkit_h5_read_filtered(dataset, NULL, 0);
        } else {
            unsigned long long count = 1;
            for (int d = 0; d < facts.rank && count <= file_size; d++) count *= facts.extents[d];
            unsigned long long raw = count * (unsigned long long)facts.type_size;
            if (count > 0 && count <= file_size && raw <= facts.storage_size && facts.storage_size <= file_size) {
                double *values = malloc((size_t)count * sizeof(double));
                if (values) {
                    H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
                    free(values);
                }
            }
        }
    }
    H5Dclose(dataset);
}

/// Walks the group at `path` as the reader's audit does: its links listed in one pass, each
/// object's identity taken by name, each path looked up from the file's root.
static void probe_group(hid_t file, const char *path, int depth, probe_walk *walk, unsigned long long file_size) {
    if (depth > probe_depth) return;
    hid_t group = rnnkit_h5_open_group(file, path[0] ? path : "/");
    if (group < 0) return;
    rnnkit_h5_link_list list;
    if (rnnkit_h5_list_links(group, 10000, &list) == 0 && !list.truncated && !list.long_name) {
        for (size_t index = 0; index < list.count && walk->links < probe_links; index++) {
            walk->links++;
            const char *name = list.names[index];
            size_t length = strlen(path) + strlen(name) + 2;
            char *child = malloc(length);
            if (!child) break;
            snprintf(child, length, "%s%s%s", path, path[0] ? "/" : "", name);
            H5Lexists(file, child, rnnkit_h5_safe_lapl());
            if (list.types[index] == 0) {
                unsigned long long address = 0;
                int kind = rnnkit_h5_object_by_name(group, name, &address);
                if (kind == 0 && !seen(walk, address)) probe_group(file, child, depth + 1, walk, file_size);
                else if (kind == 1) probe_dataset(file, child, file_size);
            }
            free(child);
        }
    }
    rnnkit_h5_free_links(&list);
    H5Gclose(group);
}

static void probe_child(const void *bytes, size_t count, size_t memory_limit) {
#ifndef RNNKIT_SANITIZED
    // The address space the child inherits, plus the allowance.
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (statm) {
        if (fscanf(statm, "%lu", &pages) != 1) pages = 0;
        fclose(statm);
    }
    if (pages > 0) {
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + memory_limit;
        setrlimit(RLIMIT_AS, &limit);
    }
#else
    (void)memory_limit;
#endif
    // The tests' way to see the parent's side of a crash and of a hang.
    const char *rehearsal = getenv("RNNKIT_HDF5_PROBE_REHEARSAL");
    if (rehearsal && strcmp(rehearsal, "crash") == 0) raise(SIGSEGV);
    if (rehearsal && strcmp(rehearsal, "hang") == 0) for (;;) pause();
    rnnkit_h5_silence_errors();
    hid_t file = rnnkit_h5_open_image(bytes, count);
    if (file < 0) _exit(0);
    probe_walk *walk = calloc(1, sizeof(probe_walk));
    if (!walk) _exit(3);
    probe_group(file, "", 0, walk, (unsigned long long)count);
    _exit(0);
}

rnnkit_h5_probe_result rnnkit_h5_probe(const void *bytes, size_t count, unsigned timeout_ms, size_t memory_limit, int *signal_number) {
    *signal_number = 0;
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        *signal_number = errno;
        return RNNKIT_H5_PROBE_UNAVAILABLE;
    }
    if (child == 0) {
        // No core file from a crash the parent expects and reports.
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        // Nor a crash report from a handler the parent installed (Swift's backtracer, a sanitizer's).
        int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) signal(fatal[i], SIG_DFL);
        probe_child(bytes, count, memory_limit);
    }
    struct timespec start, now, pause = {0, 200000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status = 0;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) {
            if (WIFSIGNALED(status)) {
                *signal_number = WTERMSIG(status);
                return RNNKIT_H5_PROBE_CRASHED;
            }
            return WIFEXITED(status) && WEXITSTATUS(status) == 3 ? RNNKIT_H5_PROBE_OUT_OF_MEMORY : RNNKIT_H5_PROBE_FINISHED;
        }
        if (done < 0 && errno != EINTR) {
            *signal_number = errno;
            return RNNKIT_H5_PROBE_UNAVAILABLE;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long elapsed = (long long)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > timeout_ms) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            return RNNKIT_H5_PROBE_TIMED_OUT;
        }
        nanosleep(&pause, NULL);
        if (pause.tv_nsec < 5000000) pause.tv_nsec *= 2;
    }
}
