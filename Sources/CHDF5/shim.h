// HDF5's C interface (the serial build, 1.10 or later). Its type and property handles
// (H5T_NATIVE_FLOAT, H5P_DEFAULT, …) and its versioned names (H5Oget_info_by_name, …) are
// macros, which Swift cannot import; these functions hand them over.
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

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
    if (H5Pset_fapl_core(access, 1 << 16, 0) >= 0 && H5Pset_file_image(access, (void *)bytes, count) >= 0) {
        file = H5Fopen("rnnkit-image.h5", H5F_ACC_RDONLY, access);
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
    if (H5Lexists(location, path, H5P_DEFAULT) <= 0) return -1;
    hid_t object = H5Oopen(location, path, H5P_DEFAULT);
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
