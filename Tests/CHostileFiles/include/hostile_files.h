// Crafts the hostile HDF5 files of the hostile-input tests: each function takes a valid Keras
// weights file (a copy made by the caller) and changes one thing in it with HDF5's own API, as an
// attacker would. Every function returns 0 on success and -1 when HDF5 refused.
#include <stddef.h>

/// Replaces the dataset at `path` (float32 of shape `dims`) by one whose data HDF5 would read from
/// `external` (external raw storage), `bytes` long from its start.
int hostile_external_storage(const char *file, const char *path, int rank, const unsigned long long *dims,
                             const char *external, unsigned long long bytes);
/// Replaces the dataset at `path` by an external link to `object` in `target`.
int hostile_external_link(const char *file, const char *path, const char *target, const char *object);
/// Replaces the dataset at `path` by a virtual dataset whose data comes from `object` in `source`.
int hostile_virtual(const char *file, const char *path, int rank, const unsigned long long *dims, const char *source,
                    const char *object);
/// Replaces the dataset at `path` by a soft link to `target` (a path in the same file).
int hostile_soft_link(const char *file, const char *path, const char *target);
/// Adds the group `group` holding a hard link to itself (a group that contains itself) and, with
/// `with_dataset`, a dataset.
int hostile_self_loop(const char *file, const char *group, int with_dataset);
/// Replaces the dataset at `path` by a float32 dataset of `elements` never written (`chunked`: as
/// chunks of 2^20 elements, none of them written, else contiguous and unallocated).
int hostile_never_written(const char *file, const char *path, unsigned long long elements, int chunked);
/// Replaces the dataset at `path` (float32 of shape `dims`, one chunk) by one whose only chunk is a
/// deflate stream of `inflated` zero bytes, written as it is (HDF5's direct chunk write).
int hostile_deflate_chunk(const char *file, const char *path, int rank, const unsigned long long *dims,
                          unsigned long long inflated);
/// Replaces the dataset at `path` (float32 of shape `dims`) by one with the Fletcher-32 filter.
int hostile_fletcher(const char *file, const char *path, int rank, const unsigned long long *dims);
/// Replaces the scalar at `path` by a float64 scalar `value` (`as_integer`: an int64 of `integer`).
int hostile_scalar(const char *file, const char *path, double value, int as_integer, long long integer);
/// Replaces the dataset at `path` by an int64 dataset of `elements` stored as deflated chunks of
/// zeros (every chunk written), small on disk and huge when read.
int hostile_compressed_integers(const char *file, const char *path, unsigned long long elements);
/// Writes a new file holding one float32 dataset `object` of shape `dims`, filled with `value`.
int hostile_write_source(const char *file, const char *object, int rank, const unsigned long long *dims, float value);
/// Copies every object of `source` into a new file `destination` that starts with a user block of 512 bytes.
int hostile_with_user_block(const char *source, const char *destination);
/// Replaces the dataset at `path` by a valid one, shuffled and deflated in chunks of `chunk`
/// (the last ones cut by the dataset's edge), holding `values`.
int hostile_compressed_valid(const char *file, const char *path, int rank, const unsigned long long *dims,
                             const unsigned long long *chunk, const float *values);
/// Adds the group `path` holding `count` empty groups (a wide group: listed by index, libhdf5 1.10
/// takes quadratic time over it).
int hostile_wide_group(const char *file, const char *path, int count);
/// Replaces the dataset at `path` by a float64 one of shape `dims` filled with `value`.
int hostile_float64_values(const char *file, const char *path, int rank, const unsigned long long *dims, double value);
/// Adds at `path` a virtual dataset with an unlimited mapping from `data` in `source`: libhdf5
/// opens `source` when the dataset is opened, to find its extent, before its layout can be read.
int hostile_virtual_unlimited(const char *file, const char *path, const char *source);
