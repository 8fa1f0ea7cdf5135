#include "hdf5_probe.h"
#include "../CHDF5/shim.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { probe_links = 20000, probe_depth = 16 };

/// The child's exit codes beyond 0 (walked): what the parent reports.
enum { probe_exit_out_of_memory = 3, probe_exit_refused = 4 };

typedef struct {
    unsigned long long groups[probe_links];
    int group_count;
    int links;
    unsigned long long file_size;
    int report;  ///< the pipe to the parent
} probe_walk;

static int seen(probe_walk *walk, unsigned long long address) {
    for (int i = 0; i < walk->group_count; i++) if (walk->groups[i] == address) return 1;
    if (walk->group_count < probe_links) walk->groups[walk->group_count++] = address;
    return 0;
}

/// Whether the HDF5 error stack holds an allocation failure (libhdf5 then fails cleanly, and
/// the parent, with no address-space limit, would succeed at whatever it was).
static herr_t probe_error(unsigned n, const H5E_error2_t *error, void *data) {
    (void)n;
    if (error->maj_num == H5E_RESOURCE || error->min_num == H5E_CANTALLOC || error->min_num == H5E_NOSPACE) *(int *)data = 1;
    return 0;
}

static void probe_check_memory(void) {
    int exhausted = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, probe_error, &exhausted);
    if (exhausted) _exit(probe_exit_out_of_memory);
}

/// Ends the child with a clause about `path` sent to the parent (`format` holds one %s for it).
static void probe_refuse(probe_walk *walk, const char *format, const char *path) {
    char line[1024];
    int length = snprintf(line, sizeof(line), format, path);
    if (length > 0) {
        ssize_t written = write(walk->report, line, (size_t)(length < (int)sizeof(line) ? length : (int)sizeof(line) - 1));
        (void)written;
    }
    _exit(probe_exit_refused);
}

/// The dataset at `path`: opened by path as RNNKit's lookups do (with no file descriptor to
/// spare, so a virtual dataset cannot open its sources), refused to the parent when it is
/// virtual, keeps its data in other files or cannot be opened, and its data read as the reader
/// would: filtered chunks each decoded and converted; compact, contiguous and unfiltered chunked
/// data whole when the file's bytes can hold it, as the reader's audit requires.
static void probe_dataset(hid_t file, const char *path, probe_walk *walk) {
    hid_t dataset = rnnkit_h5_open_dataset(file, path);
    if (dataset < 0) {
        probe_check_memory();
        probe_refuse(walk, "dataset /%s cannot be opened (damaged, or its data would come from other files)", path);
    }
    rnnkit_h5_dataset_facts facts;
    if (rnnkit_h5_describe_dataset(dataset, &facts) != 0) {
        probe_check_memory();
        probe_refuse(walk, "dataset /%s cannot be described (damaged?)", path);
    }
    if (facts.layout == 3) probe_refuse(walk, "dataset /%s is a virtual dataset (its data would come from other files)", path);
    hid_t object = H5Oopen(file, path, rnnkit_h5_safe_lapl());
    if (object >= 0) H5Oclose(object);
    // External raw storage is the audit's to refuse by name; nothing of it is read here.
    if (facts.rank >= 0 && facts.type_size >= 1 && facts.type_size <= 16 && facts.external_files == 0) {
        unsigned long long count = 1, raw = 0;
        int fits = 1;
        for (int d = 0; d < facts.rank; d++) {
            if (__builtin_mul_overflow(count, facts.extents[d], &count)) fits = 0;
        }
        if (__builtin_mul_overflow(count, facts.type_size, &raw)) fits = 0;
        if (fits && count > 0 && facts.layout == 2 && facts.filter_count > 0) {
            rnnkit_h5_read_filtered(dataset, NULL, 0);
        } else if (fits && count > 0 && raw <= walk->file_size && raw <= facts.storage_size && facts.storage_size <= walk->file_size
                   && facts.filter_count == 0 && facts.layout >= 0 && facts.layout <= 2) {
            double *values = malloc((size_t)count * sizeof(double));
            if (values) {
                if (H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) probe_check_memory();
                free(values);
            }
        }
    }
    H5Dclose(dataset);
}

/// Walks the group at `path` as the reader's audit does: its links listed in one pass, each
/// object's identity taken by name, each path looked up from the file's root.
static void probe_group(hid_t file, const char *path, int depth, probe_walk *walk) {
    if (depth > probe_depth) return;
    hid_t group = rnnkit_h5_open_group(file, path[0] ? path : "/");
    if (group < 0) {
        probe_check_memory();
        return;
    }
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
                if (kind == 0 && !seen(walk, address)) probe_group(file, child, depth + 1, walk);
                else if (kind == 1) probe_dataset(file, child, walk);
                else if (kind < 0) probe_check_memory();
            }
            free(child);
        }
    } else {
        probe_check_memory();
    }
    rnnkit_h5_free_links(&list);
    H5Gclose(group);
}

static void probe_child(const void *bytes, size_t count, size_t memory_limit, int report) {
    // No core file from a crash the parent expects and reports.
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    // Nor a crash report from a handler the parent installed (Swift's backtracer, a sanitizer's).
    int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) signal(fatal[i], SIG_DFL);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && !(defined(__has_feature) && (__has_feature(address_sanitizer) || __has_feature(thread_sanitizer)))
    // The address space the child inherits, plus the allowance (a sanitizer needs terabytes of it).
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
    // Not one more file: whatever libhdf5 is led to open (a virtual dataset's sources, an
    // external link's target, a FIFO) fails at once, in the kernel.
    struct rlimit no_files = {0, 0};
    setrlimit(RLIMIT_NOFILE, &no_files);
#ifdef DEBUG
    // The tests' way to see the parent's side of a crash and of a hang (debug builds only).
    const char *rehearsal = getenv("RNNKIT_HDF5_PROBE_REHEARSAL");
    if (rehearsal && strcmp(rehearsal, "crash") == 0) raise(SIGSEGV);
    if (rehearsal && strcmp(rehearsal, "hang") == 0) for (;;) pause();
    if (rehearsal && strcmp(rehearsal, "exit") == 0) _exit(77);
#endif
    rnnkit_h5_silence_errors();
    hid_t file = rnnkit_h5_open_image(bytes, count);
    if (file < 0) {
        probe_check_memory();
        _exit(0);
    }
    probe_walk *walk = calloc(1, sizeof(probe_walk));
    if (!walk) _exit(probe_exit_out_of_memory);
    walk->file_size = (unsigned long long)count;
    walk->report = report;
    probe_group(file, "", 0, walk);
    _exit(0);
}

rnnkit_h5_probe_result rnnkit_h5_probe(const void *bytes, size_t count, unsigned timeout_ms, size_t memory_limit, int *signal_number,
                                       char *reason, size_t reason_size) {
    *signal_number = 0;
    if (reason_size > 0) reason[0] = 0;
    int report[2];
    if (pipe(report) != 0) {
        *signal_number = errno;
        return RNNKIT_H5_PROBE_UNAVAILABLE;
    }
    // The child must be waited for here, whatever the host did with SIGCHLD.
    struct sigaction child_signal, previous;
    memset(&child_signal, 0, sizeof(child_signal));
    child_signal.sa_handler = SIG_DFL;
    sigemptyset(&child_signal.sa_mask);
    sigaction(SIGCHLD, &child_signal, &previous);
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        *signal_number = errno;
        sigaction(SIGCHLD, &previous, NULL);
        close(report[0]);
        close(report[1]);
        return RNNKIT_H5_PROBE_UNAVAILABLE;
    }
    if (child == 0) {
        close(report[0]);
        probe_child(bytes, count, memory_limit, report[1]);
    }
    close(report[1]);
    rnnkit_h5_probe_result result = RNNKIT_H5_PROBE_FINISHED;
    struct timespec start, now, pause = {0, 200000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status = 0;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) {
            if (WIFSIGNALED(status)) {
                *signal_number = WTERMSIG(status);
                result = RNNKIT_H5_PROBE_CRASHED;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == probe_exit_out_of_memory) {
                result = RNNKIT_H5_PROBE_OUT_OF_MEMORY;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == probe_exit_refused) {
                result = RNNKIT_H5_PROBE_REFUSED;
                ssize_t got = reason_size > 1 ? read(report[0], reason, reason_size - 1) : 0;
                if (reason_size > 0) reason[got > 0 ? got : 0] = 0;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
                // Something in the child (libhdf5, or a handler of the host's) ended it early:
                // the walk did not finish, so the file must not be opened here either.
                *signal_number = WEXITSTATUS(status);
                result = RNNKIT_H5_PROBE_FAILED;
            }
            break;
        }
        if (done < 0 && errno != EINTR) {
            *signal_number = errno;
            result = RNNKIT_H5_PROBE_UNAVAILABLE;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long elapsed = (long long)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > timeout_ms) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            result = RNNKIT_H5_PROBE_TIMED_OUT;
            break;
        }
        nanosleep(&pause, NULL);
        if (pause.tv_nsec < 5000000) pause.tv_nsec *= 2;
    }
    close(report[0]);
    sigaction(SIGCHLD, &previous, NULL);
    return result;
}
