// HDF5's C interface (the serial build, 1.10 or later). Its type and property handles
// (H5T_NATIVE_FLOAT, H5P_DEFAULT, …) and its versioned names (H5Oget_info_by_name, …) are
// macros, which Swift cannot import; these functions hand them over.
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

static inline hid_t rnnkit_h5_safe_lapl(void);

static inline hid_t rnnkit_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t rnnkit_h5s_all(void) { return H5S_ALL; }
static inline hid_t rnnkit_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t rnnkit_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t rnnkit_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t rnnkit_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t rnnkit_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t rnnkit_h5t_std_i64le(void) { return H5T_STD_I64LE; }

/// Stops HDF5 printing its error stack on stderr: every failure is reported by the caller.
static inline void rnnkit_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// Opens a file image held in memory, read-only (the core driver; nothing touches the disk).
static inline hid_t rnnkit_h5_open_image(const void *bytes, size_t count) {
    hid_t access = H5Pcreate(H5P_FILE_ACCESS);
    if (access < 0) return -1;
    hid_t file = -1;
    // A name of its own: libhdf5 takes a file of the same name as one already open for that one.
    static unsigned long long opened = 0;
    char name[64];
    snprintf(name, sizeof(name), "rnnkit-image-%d-%llu.h5", (int)getpid(), ++opened);
    if (H5Pset_fapl_core(access, 1 << 16, 0) >= 0 && H5Pset_file_image(access, (void *)bytes, count) >= 0) {
        file = H5Fopen(name, H5F_ACC_RDONLY, access);
    }
    H5Pclose(access);
    return file;
}

/// Creates an empty file in memory under `name` (unique among files open at once).
static inline hid_t rnnkit_h5_create_in_memory(const char *name) {
    hid_t access = H5Pcreate(H5P_FILE_ACCESS);
    if (access < 0) return -1;
    hid_t file = -1;
    if (H5Pset_fapl_core(access, 1 << 16, 0) >= 0) file = H5Fcreate(name, H5F_ACC_EXCL, H5P_DEFAULT, access);
    H5Pclose(access);
    return file;
}

/// The bytes of a file made by `rnnkit_h5_create_in_memory`, in a buffer the caller frees.
static inline void *rnnkit_h5_copy_image(hid_t file, size_t *count) {
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) return NULL;
    ssize_t size = H5Fget_file_image(file, NULL, 0);
    if (size <= 0) return NULL;
    void *bytes = malloc((size_t)size);
    if (!bytes) return NULL;
    if (H5Fget_file_image(file, bytes, (size_t)size) != size) { free(bytes); return NULL; }
    *count = (size_t)size;
    return bytes;
}

/// 0 group, 1 dataset, 2 other, -1 no such object (every link on the way must exist).
static inline int rnnkit_h5_object_kind(hid_t location, const char *path) {
    if (H5Lexists(location, path, rnnkit_h5_safe_lapl()) <= 0) return -1;
    hid_t object = H5Oopen(location, path, rnnkit_h5_safe_lapl());
    if (object < 0) return -1;
    H5I_type_t type = H5Iget_type(object);
    H5Oclose(object);
    return type == H5I_GROUP ? 0 : type == H5I_DATASET ? 1 : 2;
}

/// Writes a scalar variable-length UTF-8 string attribute, as h5py writes a Python `str`.
static inline int rnnkit_h5_write_string_attribute(hid_t object, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int status = attribute < 0 ? -1 : (H5Awrite(attribute, type, &value) < 0 ? -1 : 0);
    if (attribute >= 0) H5Aclose(attribute);
    H5Sclose(space);
    H5Tclose(type);
    return status;
}


// MARK: Reading hostile files
//
// A weights file comes from anywhere. HDF5 can make a file pull bytes from other files (external
// links, external raw storage, virtual datasets) and inflate a small chunk to any size. The
// functions below let the reader refuse all of that before any data is read: links are never
// followed out of the file, every object is inspected first, and deflate never inflates a chunk
// past the size its dataset declares.

/// External links are never traversed: the callback HDF5 calls before opening another file fails.
static inline herr_t rnnkit_h5_refuse_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                                    const char *child_object, unsigned *flags, hid_t fapl, void *data) {
    (void)parent_file; (void)parent_group; (void)child_file; (void)child_object; (void)flags; (void)fapl; (void)data;
    return -1;
}

/// A property list of `list_class` (link, dataset or group access) with external links refused:
/// the callback HDF5 calls before opening another file fails. Soft links keep HDF5's own bound of
/// 16 traversals a lookup (the reader refuses them anyway).
static inline hid_t rnnkit_h5_refusing_external_links(hid_t list_class) {
    hid_t list = H5Pcreate(list_class);
    if (list < 0) return -1;
    if (H5Pset_elink_cb(list, rnnkit_h5_refuse_external_link, NULL) < 0) {
        H5Pclose(list);
        return -1;
    }
    return list;
}

/// The link-access list every lookup uses, made once.
static inline hid_t rnnkit_h5_safe_lapl(void) {
    static hid_t list = -1;
    if (list < 0) list = rnnkit_h5_refusing_external_links(H5P_LINK_ACCESS);
    return list;
}

/// The dataset-access list every dataset is opened with, made once.
static inline hid_t rnnkit_h5_safe_dapl(void) {
    static hid_t list = -1;
    if (list < 0) list = rnnkit_h5_refusing_external_links(H5P_DATASET_ACCESS);
    return list;
}

/// The group-access list every group is opened with, made once.
static inline hid_t rnnkit_h5_safe_gapl(void) {
    static hid_t list = -1;
    if (list < 0) list = rnnkit_h5_refusing_external_links(H5P_GROUP_ACCESS);
    return list;
}

/// A group's links, listed in one pass of H5Literate: a lookup by index costs libhdf5 1.10 a walk
/// of the group's whole index, so listing a wide group by index takes quadratic time.
typedef struct {
    char **names;
    int *types;          ///< 0 hard, 1 soft, 64 external, another value user-defined
    size_t count, capacity, limit;
    int truncated;       ///< the group has more than `limit` links
    int long_name;       ///< a name is longer than `RNNKIT_H5_LONGEST_NAME` bytes
} rnnkit_h5_link_list;

enum { RNNKIT_H5_LONGEST_NAME = 1024 };

#if H5_VERSION_GE(1, 12, 0)
static inline herr_t rnnkit_h5_collect_link(hid_t group, const char *name, const H5L_info2_t *info, void *data) {
#else
static inline herr_t rnnkit_h5_collect_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
#endif
    (void)group;
    rnnkit_h5_link_list *list = (rnnkit_h5_link_list *)data;
    if (list->count >= list->limit) { list->truncated = 1; return 1; }
    if (strlen(name) > RNNKIT_H5_LONGEST_NAME) { list->long_name = 1; return 1; }
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 16;
        char **names = (char **)realloc(list->names, capacity * sizeof(char *));
        if (!names) return -1;
        list->names = names;
        int *types = (int *)realloc(list->types, capacity * sizeof(int));
        if (!types) return -1;
        list->types = types;
        list->capacity = capacity;
    }
    char *copy = strdup(name);
    if (!copy) return -1;
    list->names[list->count] = copy;
    list->types[list->count] = (int)info->type;
    list->count++;
    return 0;
}

/// Lists the links of `group` (at most `limit`, in name order) into `list`; 0, or -1 when HDF5 fails.
/// The caller frees the list with `rnnkit_h5_free_links` whatever this returns.
static inline int rnnkit_h5_list_links(hid_t group, size_t limit, rnnkit_h5_link_list *list) {
    memset(list, 0, sizeof(*list));
    list->limit = limit;
    hsize_t index = 0;
#if H5_VERSION_GE(1, 12, 0)
    herr_t status = H5Literate2(group, H5_INDEX_NAME, H5_ITER_INC, &index, rnnkit_h5_collect_link, list);
#else
    herr_t status = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, rnnkit_h5_collect_link, list);
#endif
    return status < 0 ? -1 : 0;
}

static inline void rnnkit_h5_free_links(rnnkit_h5_link_list *list) {
    for (size_t i = 0; i < list->count; i++) free(list->names[i]);
    free(list->names);
    free(list->types);
    memset(list, 0, sizeof(*list));
}

/// The name of link `index` of a list, for Swift.
static inline const char *rnnkit_h5_link_name(const rnnkit_h5_link_list *list, size_t index) { return list->names[index]; }
static inline int rnnkit_h5_link_kind(const rnnkit_h5_link_list *list, size_t index) { return list->types[index]; }

/// The identity (header address) and kind (0 group, 1 dataset, 2 other) of the object `name`
/// links to from `group`; -1 on failure.
static inline int rnnkit_h5_object_by_name(hid_t group, const char *name, unsigned long long *address) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info_by_name3(group, name, &info, H5O_INFO_BASIC, rnnkit_h5_safe_lapl()) < 0) return -1;
    unsigned long long key = 0;
    memcpy(&key, &info.token, sizeof(key) < sizeof(info.token) ? sizeof(key) : sizeof(info.token));
    *address = key;
#else
    H5O_info_t info;
    if (H5Oget_info_by_name2(group, name, &info, H5O_INFO_BASIC, rnnkit_h5_safe_lapl()) < 0) return -1;
    *address = (unsigned long long)info.addr;
#endif
    return info.type == H5O_TYPE_GROUP ? 0 : info.type == H5O_TYPE_DATASET ? 1 : 2;
}

/// What the reader checks of a dataset before it reads a byte of its data.
typedef struct {
    int layout;             ///< 0 compact, 1 contiguous, 2 chunked, 3 virtual, -1 unknown
    int external_files;     ///< external raw-data files (must be 0)
    char external_name[256];///< the first one's name, for the message
    int filter_count;
    int filters[8];         ///< filter ids (1 deflate, 2 shuffle)
    int rank;               ///< -1 when not a simple dataspace
    unsigned long long extents[32];
    int chunk_rank;
    unsigned long long chunk[32];
    int type_class;         ///< 0 integer, 1 float, 2 other
    unsigned long long type_size;
    int type_signed;
    unsigned long long storage_size;  ///< bytes allocated in the file for its data
    unsigned long long offset;        ///< contiguous data's address in the file, or all ones
} rnnkit_h5_dataset_facts;

/// Fills `facts` for the dataset `dataset`; -1 when HDF5 cannot describe it.
static inline int rnnkit_h5_describe_dataset(hid_t dataset, rnnkit_h5_dataset_facts *facts) {
    memset(facts, 0, sizeof(*facts));
    facts->layout = -1;
    facts->rank = -1;
    hid_t plist = H5Dget_create_plist(dataset);
    if (plist < 0) return -1;
    H5D_layout_t layout = H5Pget_layout(plist);
    facts->layout = layout == H5D_COMPACT ? 0 : layout == H5D_CONTIGUOUS ? 1 : layout == H5D_CHUNKED ? 2 : layout == H5D_VIRTUAL ? 3 : -1;
    int externals = H5Pget_external_count(plist);
    facts->external_files = externals < 0 ? 1 : externals;
    if (externals > 0) {
        off_t offset;
        hsize_t size;
        if (H5Pget_external(plist, 0, sizeof(facts->external_name) - 1, facts->external_name, &offset, &size) < 0) facts->external_name[0] = 0;
        facts->external_name[sizeof(facts->external_name) - 1] = 0;
    }
    int filters = H5Pget_nfilters(plist);
    facts->filter_count = filters < 0 ? 99 : filters;
    for (int i = 0; i < filters && i < 8; i++) {
        unsigned flags = 0;
        size_t values = 0;
        unsigned config = 0;
        facts->filters[i] = (int)H5Pget_filter2(plist, (unsigned)i, &flags, &values, NULL, 0, NULL, &config);
    }
    if (layout == H5D_CHUNKED) {
        hsize_t chunk[32];
        int rank = H5Pget_chunk(plist, 32, chunk);
        facts->chunk_rank = rank;
        for (int i = 0; i < rank && i < 32; i++) facts->chunk[i] = chunk[i];
    }
    H5Pclose(plist);

    hid_t space = H5Dget_space(dataset);
    if (space < 0) return -1;
    if (H5Sget_simple_extent_type(space) != H5S_NO_CLASS) {
        int rank = H5Sget_simple_extent_ndims(space);
        if (rank >= 0 && rank <= 32) {
            hsize_t extents[32];
            if (H5Sget_simple_extent_dims(space, extents, NULL) >= 0) facts->rank = rank;
            for (int i = 0; i < rank; i++) facts->extents[i] = extents[i];
        }
    }
    H5Sclose(space);

    hid_t type = H5Dget_type(dataset);
    if (type < 0) return -1;
    H5T_class_t class = H5Tget_class(type);
    facts->type_class = class == H5T_INTEGER ? 0 : class == H5T_FLOAT ? 1 : 2;
    facts->type_size = (unsigned long long)H5Tget_size(type);
    facts->type_signed = class == H5T_INTEGER && H5Tget_sign(type) != H5T_SGN_NONE;
    H5Tclose(type);

    facts->storage_size = (unsigned long long)H5Dget_storage_size(dataset);
    facts->offset = (unsigned long long)H5Dget_offset(dataset);
    return 0;
}

/// Reads a chunked dataset whose filters are deflate and shuffle (in any order) by decoding each
/// chunk here rather than through HDF5's pipeline, whose deflate grows its buffer until the
/// stream ends: here a chunk inflates to its declared size and no further, and a chunk that
/// stores more than deflate's worst case for that size is refused before it is read.
///
/// The chunks are visited by their place in the dataset's grid, each looked up by its offset
/// (`H5Dget_chunk_storage_size`, then `H5Dread_chunk`, which finds it the same way), so the size
/// checked is the size read, however the chunk index was crafted, and a chunk never written is
/// found. `out` receives the dataset's `count` elements as doubles, in row-major order (NULL:
/// each chunk is read, decoded and converted, and nothing kept). Returns 0, or a negative code:
/// -1 HDF5 failed, -2 a chunk stores more than its size allows, -3 a chunk does not inflate to
/// exactly its size, -4 a filter this reader does not apply, -5 out of memory, -6 chunks over
/// `RNNKIT_H5_LARGEST_CHUNK`, -7 a chunk was never written.
enum { RNNKIT_H5_LARGEST_CHUNK = 64 << 20 };

static inline int rnnkit_h5_read_filtered(hid_t dataset, double *out, size_t count) {
    int result = -1;
    hid_t plist = -1, type = -1, space = -1;
    unsigned char *stored = NULL, *raw = NULL, *work = NULL, *converted = NULL;
    plist = H5Dget_create_plist(dataset);
    if (plist < 0) goto done;
    int filters = H5Pget_nfilters(plist);
    if (filters < 0 || filters > 8) { result = -4; goto done; }
    int pipeline[8];
    for (int i = 0; i < filters; i++) {
        unsigned flags = 0, config = 0;
        size_t values = 0;
        pipeline[i] = (int)H5Pget_filter2(plist, (unsigned)i, &flags, &values, NULL, 0, NULL, &config);
        if (pipeline[i] != H5Z_FILTER_DEFLATE && pipeline[i] != H5Z_FILTER_SHUFFLE) { result = -4; goto done; }
    }
    hsize_t chunk[32], extents[32];
    int rank = H5Pget_chunk(plist, 32, chunk);
    space = H5Dget_space(dataset);
    if (rank <= 0 || space < 0 || H5Sget_simple_extent_ndims(space) != rank) goto done;
    if (H5Sget_simple_extent_dims(space, extents, NULL) < 0) goto done;
    type = H5Dget_type(dataset);
    if (type < 0) goto done;
    size_t element = H5Tget_size(type);
    if (element == 0 || element > 8) goto done;
    size_t chunkElements = 1;
    for (int d = 0; d < rank; d++) {
        if (chunk[d] == 0 || chunk[d] > extents[d] || chunkElements > ((size_t)1 << 40) / chunk[d]) goto done;
        chunkElements *= (size_t)chunk[d];
    }
    size_t chunkBytes = chunkElements * element;
    if (chunkBytes > (size_t)RNNKIT_H5_LARGEST_CHUNK) { result = -6; goto done; }
    // Deflate's worst case: stored blocks, 5 bytes each per 64 KiB, and zlib's 6-byte frame.
    size_t largestStored = chunkBytes + (chunkBytes >> 10) + 64;
    stored = malloc(largestStored);
    raw = malloc(chunkBytes);
    work = malloc(chunkBytes);
    converted = malloc(chunkElements * 8);
    if (!stored || !raw || !work || !converted) { result = -5; goto done; }
    hsize_t offset[32] = {0};
    for (;;) {
        hsize_t size = 0;
        if (H5Dget_chunk_storage_size(dataset, offset, &size) < 0 || size == 0) { result = -7; goto done; }
        if (size > largestStored) { result = -2; goto done; }
        unsigned readMask = 0;
        if (H5Dread_chunk(dataset, H5P_DEFAULT, offset, &readMask, stored) < 0) goto done;
        // Undo the pipeline from its last filter to its first (a set bit of the mask: not applied).
        unsigned char *current = stored;
        size_t length = (size_t)size;
        for (int i = filters - 1; i >= 0; i--) {
            if (readMask & (1u << i)) continue;
            unsigned char *target = current == raw ? work : raw;
            if (pipeline[i] == H5Z_FILTER_DEFLATE) {
                z_stream stream;
                memset(&stream, 0, sizeof(stream));
                if (inflateInit(&stream) != Z_OK) goto done;
                stream.next_in = current;
                stream.avail_in = (uInt)length;
                stream.next_out = target;
                stream.avail_out = (uInt)chunkBytes;
                int status = inflate(&stream, Z_FINISH);
                size_t produced = (size_t)stream.total_out;
                inflateEnd(&stream);
                if (status != Z_STREAM_END || produced != chunkBytes) { result = -3; goto done; }
                length = produced;
            } else {
                if (length != chunkBytes) { result = -3; goto done; }
                // Shuffle stores byte k of every element together: gather them back.
                size_t elements = length / element;
                for (size_t k = 0; k < element; k++)
                    for (size_t e = 0; e < elements; e++) target[e * element + k] = current[k * elements + e];
            }
            current = target;
        }
        if (length != chunkBytes) { result = -3; goto done; }
        memcpy(converted, current, chunkBytes);
        if (H5Tconvert(type, H5T_NATIVE_DOUBLE, chunkElements, converted, NULL, H5P_DEFAULT) < 0) goto done;
        if (out) {
            const double *values = (const double *)converted;
            // Scatter the chunk into the row-major result, leaving out what lies past the dataset's edge.
            hsize_t local[32] = {0};
            for (size_t e = 0; e < chunkElements; e++) {
                size_t target = 0;
                int inside = 1;
                for (int d = 0; d < rank; d++) {
                    hsize_t coordinate = offset[d] + local[d];
                    if (coordinate >= extents[d]) { inside = 0; break; }
                    target = target * (size_t)extents[d] + (size_t)coordinate;
                }
                if (inside && target < count) out[target] = values[e];
                for (int d = rank - 1; d >= 0; d--) {
                    if (++local[d] < chunk[d]) break;
                    local[d] = 0;
                }
            }
        }
        // The next chunk of the grid, the last axis fastest.
        int d = rank - 1;
        for (; d >= 0; d--) {
            offset[d] += chunk[d];
            if (offset[d] < extents[d]) break;
            offset[d] = 0;
        }
        if (d < 0) break;
    }
    result = 0;
done:
    free(stored);
    free(raw);
    free(work);
    free(converted);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (plist >= 0) H5Pclose(plist);
    return result;
}

/// Opens the object at `path` with the safe link-access list (never following a link out of the file).
static inline hid_t rnnkit_h5_open_dataset(hid_t file, const char *path) {
    hid_t list = rnnkit_h5_safe_dapl();
    return list < 0 ? -1 : H5Dopen2(file, path, list);
}
static inline hid_t rnnkit_h5_open_group(hid_t file, const char *path) {
    hid_t list = rnnkit_h5_safe_gapl();
    return list < 0 ? -1 : H5Gopen2(file, path, list);
}
