#include "hostile_files.h"
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static hid_t open_file(const char *file) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
}

static int finish(hid_t file, int status) {
    if (H5Fclose(file) < 0) return -1;
    return status;
}

static int create_float(hid_t file, const char *path, int rank, const unsigned long long *dims, hid_t dcpl) {
    hsize_t extents[32];
    for (int i = 0; i < rank; i++) extents[i] = dims[i];
    hid_t space = H5Screate_simple(rank, extents, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dataset = H5Dcreate2(file, path, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Sclose(space);
    if (dataset < 0) return -1;
    H5Dclose(dataset);
    return 0;
}

/// Creates the group at `path`, and the groups on the way to it.
static hid_t create_group(hid_t file, const char *path) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t group = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    return group;
}

/// Deletes the link at `path` when there is one.
static int remove_if_present(hid_t file, const char *path) {
    return H5Lexists(file, path, H5P_DEFAULT) > 0 ? (H5Ldelete(file, path, H5P_DEFAULT) < 0 ? -1 : 0) : 0;
}

int hostile_external_storage(const char *name, const char *path, int rank, const unsigned long long *dims,
                             const char *external, unsigned long long bytes) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int status = H5Pset_external(dcpl, external, 0, (hsize_t)bytes) < 0 ? -1 : create_float(file, path, rank, dims, dcpl);
    H5Pclose(dcpl);
    return finish(file, status);
}

int hostile_external_link(const char *name, const char *path, const char *target, const char *object) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    return finish(file, H5Lcreate_external(target, object, file, path, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0);
}

int hostile_virtual(const char *name, const char *path, int rank, const unsigned long long *dims, const char *source,
                    const char *object) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hsize_t extents[32];
    for (int i = 0; i < rank; i++) extents[i] = dims[i];
    hid_t space = H5Screate_simple(rank, extents, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int status = H5Pset_virtual(dcpl, space, source, object, space) < 0 ? -1 : 0;
    if (status == 0) {
        hid_t dataset = H5Dcreate2(file, path, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        status = dataset < 0 ? -1 : 0;
        if (dataset >= 0) H5Dclose(dataset);
    }
    H5Pclose(dcpl);
    H5Sclose(space);
    return finish(file, status);
}

int hostile_soft_link(const char *name, const char *path, const char *target) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    return finish(file, H5Lcreate_soft(target, file, path, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0);
}

int hostile_self_loop(const char *name, const char *path, int with_dataset) {
    hid_t file = open_file(name);
    if (file < 0) return -1;
    hid_t group = create_group(file, path);
    if (group < 0) return finish(file, -1);
    unsigned long long dims[1] = {4};
    int status = with_dataset ? create_float(group, "0", 1, dims, H5P_DEFAULT) : 0;
    float values[4] = {1, 2, 3, 4};
    hid_t dataset = status == 0 && with_dataset ? H5Dopen2(group, "0", H5P_DEFAULT) : -1;
    if (with_dataset && (dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)) status = -1;
    if (dataset >= 0) H5Dclose(dataset);
    if (status == 0 && H5Lcreate_hard(group, ".", group, "itself", H5P_DEFAULT, H5P_DEFAULT) < 0) status = -1;
    H5Gclose(group);
    return finish(file, status);
}

int hostile_never_written(const char *name, const char *path, unsigned long long elements, int chunked) {
    hid_t file = open_file(name);
    if (file < 0 || remove_if_present(file, path) < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        hsize_t chunk[1] = {elements < (1ull << 20) ? elements : (1ull << 20)};
        H5Pset_chunk(dcpl, 1, chunk);
    }
    unsigned long long dims[1] = {elements};
    int status = create_float(file, path, 1, dims, dcpl);
    H5Pclose(dcpl);
    return finish(file, status);
}

/// A zlib stream of `count` zero bytes, made without holding them all; the caller frees it.
static unsigned char *deflated_zeros(unsigned long long count, size_t *length) {
    z_stream stream;
    memset(&stream, 0, sizeof(stream));
    if (deflateInit(&stream, 9) != Z_OK) return NULL;
    size_t capacity = (size_t)(count / 1000) + 4096;
    unsigned char *out = malloc(capacity);
    static unsigned char zeros[1 << 16];
    unsigned long long left = count;
    stream.next_out = out;
    stream.avail_out = (uInt)capacity;
    int status;
    do {
        size_t piece = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
        stream.next_in = zeros;
        stream.avail_in = (uInt)piece;
        left -= piece;
        status = deflate(&stream, left == 0 ? Z_FINISH : Z_NO_FLUSH);
    } while (left > 0 && status == Z_OK);
    while (status == Z_OK) status = deflate(&stream, Z_FINISH);
    *length = (size_t)stream.total_out;
    deflateEnd(&stream);
    if (status != Z_STREAM_END) { free(out); return NULL; }
    return out;
}

int hostile_deflate_chunk(const char *name, const char *path, int rank, const unsigned long long *dims,
                          unsigned long long inflated) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hsize_t chunk[32], origin[32] = {0};
    for (int i = 0; i < rank; i++) chunk[i] = dims[i];
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 6);
    int status = create_float(file, path, rank, dims, dcpl);
    H5Pclose(dcpl);
    size_t length = 0;
    unsigned char *stream = status == 0 ? deflated_zeros(inflated, &length) : NULL;
    if (!stream) return finish(file, -1);
    hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dataset < 0 || H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, origin, length, stream) < 0) status = -1;
    if (dataset >= 0) H5Dclose(dataset);
    free(stream);
    return finish(file, status);
}

/// Replaces the dataset at `path` by a chunked float32 one whose pipeline is Fletcher-32
/// (`fletcher`) or shuffle then deflate, holding `values` when given.
static int replace_chunked(const char *name, const char *path, int rank, const unsigned long long *dims,
                           const unsigned long long *chunk_dims, int fletcher, const float *values) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hsize_t chunk[32];
    for (int i = 0; i < rank; i++) chunk[i] = chunk_dims[i];
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (fletcher) {
        H5Pset_fletcher32(dcpl);
    } else {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 6);
    }
    int status = create_float(file, path, rank, dims, dcpl);
    H5Pclose(dcpl);
    if (status == 0 && values) {
        hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
        if (dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) status = -1;
        if (dataset >= 0) H5Dclose(dataset);
    }
    return finish(file, status);
}

int hostile_fletcher(const char *name, const char *path, int rank, const unsigned long long *dims) {
    return replace_chunked(name, path, rank, dims, dims, 1, NULL);
}

int hostile_scalar(const char *name, const char *path, double value, int as_integer, long long integer) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t dataset = H5Dcreate2(file, path, as_integer ? H5T_STD_I64LE : H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int status = dataset < 0 ? -1 : 0;
    if (status == 0) {
        status = as_integer ? H5Dwrite(dataset, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &integer)
                            : H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
        status = status < 0 ? -1 : 0;
        H5Dclose(dataset);
    }
    H5Sclose(space);
    return finish(file, status);
}

int hostile_compressed_integers(const char *name, const char *path, unsigned long long elements) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    const unsigned long long per_chunk = 1ull << 24;
    hsize_t extents[1] = {elements}, chunk[1] = {elements < per_chunk ? elements : per_chunk};
    hid_t space = H5Screate_simple(1, extents, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 9);
    hid_t dataset = H5Dcreate2(file, path, H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (dataset < 0) return finish(file, -1);
    size_t length = 0;
    unsigned char *stream = deflated_zeros(chunk[0] * 8, &length);
    int status = stream ? 0 : -1;
    for (unsigned long long start = 0; status == 0 && start < elements; start += chunk[0]) {
        hsize_t origin[1] = {start};
        if (H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, origin, length, stream) < 0) status = -1;
    }
    free(stream);
    H5Dclose(dataset);
    return finish(file, status);
}

int hostile_write_source(const char *name, const char *object, int rank, const unsigned long long *dims, float value) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return -1;
    int status = create_float(file, object, rank, dims, H5P_DEFAULT);
    unsigned long long count = 1;
    for (int i = 0; i < rank; i++) count *= dims[i];
    float *values = malloc(count * sizeof(float));
    for (unsigned long long i = 0; i < count; i++) values[i] = value;
    hid_t dataset = status == 0 ? H5Dopen2(file, object, H5P_DEFAULT) : -1;
    if (dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) status = -1;
    if (dataset >= 0) H5Dclose(dataset);
    free(values);
    return finish(file, status);
}

static herr_t copy_member(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    return H5Ocopy(group, name, *(hid_t *)data, name, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0;
}

int hostile_with_user_block(const char *source_name, const char *destination_name) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t source = H5Fopen(source_name, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (source < 0) return -1;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, 512);
    hid_t destination = H5Fcreate(destination_name, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (destination < 0) { H5Fclose(source); return -1; }
    int status = H5Literate(source, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_member, &destination) < 0 ? -1 : 0;
    H5Fclose(source);
    return finish(destination, status);
}

int hostile_compressed_valid(const char *name, const char *path, int rank, const unsigned long long *dims,
                             const unsigned long long *chunk_dims, const float *values) {
    return replace_chunked(name, path, rank, dims, chunk_dims, 0, values);
}

int hostile_wide_group(const char *name, const char *path, int count) {
    hid_t file = open_file(name);
    if (file < 0) return -1;
    hid_t group = create_group(file, path);
    int status = group < 0 ? -1 : 0;
    char member[32];
    for (int i = 0; status == 0 && i < count; i++) {
        snprintf(member, sizeof(member), "g%05d", i);
        hid_t child = H5Gcreate2(group, member, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (child < 0) status = -1; else H5Gclose(child);
    }
    if (group >= 0) H5Gclose(group);
    return finish(file, status);
}

int hostile_float64_values(const char *name, const char *path, int rank, const unsigned long long *dims, double value) {
    hid_t file = open_file(name);
    if (file < 0 || H5Ldelete(file, path, H5P_DEFAULT) < 0) return -1;
    hsize_t extents[32];
    unsigned long long count = 1;
    for (int i = 0; i < rank; i++) { extents[i] = dims[i]; count *= dims[i]; }
    hid_t space = H5Screate_simple(rank, extents, NULL);
    hid_t dataset = H5Dcreate2(file, path, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    if (dataset < 0) return finish(file, -1);
    double *values = malloc(count * sizeof(double));
    for (unsigned long long i = 0; i < count; i++) values[i] = value;
    int status = H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0 ? -1 : 0;
    free(values);
    H5Dclose(dataset);
    return finish(file, status);
}

int hostile_virtual_unlimited(const char *name, const char *path, const char *source) {
    hid_t file = open_file(name);
    if (file < 0 || remove_if_present(file, path) < 0) return -1;
    hsize_t none[1] = {0}, unlimited[1] = {H5S_UNLIMITED}, start[1] = {0}, one[1] = {1};
    hid_t space = H5Screate_simple(1, none, unlimited);
    hid_t selection = H5Screate_simple(1, none, unlimited);
    H5Sselect_hyperslab(selection, H5S_SELECT_SET, start, NULL, one, unlimited);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, one, unlimited);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int status = H5Pset_virtual(dcpl, space, source, "data", selection) < 0 ? -1 : 0;
    if (status == 0) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t dataset = H5Dcreate2(file, path, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
        H5Pclose(lcpl);
        status = dataset < 0 ? -1 : 0;
        if (dataset >= 0) H5Dclose(dataset);
    }
    H5Pclose(dcpl);
    H5Sclose(selection);
    H5Sclose(space);
    return finish(file, status);
}
