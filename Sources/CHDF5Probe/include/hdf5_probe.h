// Reads an HDF5 file image once in a child process before RNNKit reads it in its own.
#include <stddef.h>

/// What the probe found.
typedef enum {
    RNNKIT_H5_PROBE_FINISHED = 0,   ///< libhdf5 walked the whole file (errors included) and returned
    RNNKIT_H5_PROBE_CRASHED = 1,    ///< libhdf5 was ended by a signal (`signal` says which)
    RNNKIT_H5_PROBE_TIMED_OUT = 2,  ///< libhdf5 did not finish within the time allowed
    RNNKIT_H5_PROBE_OUT_OF_MEMORY = 3, ///< libhdf5 asked for more memory than the probe allows
    RNNKIT_H5_PROBE_UNAVAILABLE = 4, ///< no child process could be started (`signal` holds errno)
    RNNKIT_H5_PROBE_REFUSED = 5,    ///< the file holds what is refused before anything opens it (`reason` says what, where)
    RNNKIT_H5_PROBE_FAILED = 6      ///< the child exited with a status of its own (`signal` holds it): not a finished walk
} rnnkit_h5_probe_result;

/// Forks a child that opens `count` bytes at `bytes` as HDF5 (in memory) and walks every link,
/// object and dataset through the same libhdf5 calls RNNKit's reader makes, reading the data the
/// reader would read, then exits. libhdf5 1.10 crashes on some damaged files (it copies into a
/// buffer whose allocation failed) and may loop on others; in the child, that ends the child.
/// The child may open no file at all (RLIMIT_NOFILE 0: a virtual dataset opens its source files
/// when it is opened, before its layout can be read, so the parent must never open one), may use
/// `memory_limit` bytes of address space beyond what it inherits (not enforced under a
/// sanitizer) and `timeout_ms` milliseconds. A dataset that is virtual, keeps its data in other
/// files or cannot be opened is reported as refused, with what and where in `reason`.
rnnkit_h5_probe_result rnnkit_h5_probe(const void *bytes, size_t count, unsigned timeout_ms, size_t memory_limit, int *signal,
                                       char *reason, size_t reason_size);
