import CHDF5
import Foundation

/// An HDF5 file held in memory (HDF5's core driver): read from the bytes of a `.weights.h5` file
/// or of the `model.weights.h5` inside a `.keras` zip, or built and then taken as bytes, so that
/// nothing is half-written on disk and the caller writes the result atomically.
///
/// Only what Keras's weight files use: groups, numeric datasets (read as Double whatever their
/// stored type, written as float32, float64 or int64) and string attributes. The serial HDF5
/// library is not thread-safe, so every call holds one process-wide lock.
final class HDF5File {
    /// The file's name in errors (`model.keras: model.weights.h5`).
    let name: String
    private let handle: hid_t

    private static let lock = NSLock()
    nonisolated(unsafe) private static var silenced = false  // guarded by `lock`
    nonisolated(unsafe) private static var memoryFiles = 0  // guarded by `lock`

    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if !silenced {
            rnnkit_h5_silence_errors()
            silenced = true
        }
        return try body()
    }

    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Opens `bytes` read-only. Throws `KerasFileError` when they are not an HDF5 file.
    init(reading bytes: Data, name: String) throws {
        self.name = name
        guard bytes.count >= 8, Array(bytes.prefix(8)) == Self.signature else {
            throw KerasFileError(file: name, reason: bytes.isEmpty ? "is empty, not an HDF5 file" : "is not an HDF5 file (no HDF5 signature at its start)")
        }
        // HDF5 copies the image (H5Pset_file_image), so the bytes need not outlive the call.
        let opened = bytes.withUnsafeBytes { raw in Self.locked { rnnkit_h5_open_image(raw.baseAddress, raw.count) } }
        guard opened >= 0 else {
            throw KerasFileError(file: name, reason: "cannot be read as HDF5 (truncated or damaged)")
        }
        handle = opened
    }

    /// Creates an empty file in memory.
    init(creatingNamed name: String) throws {
        self.name = name
        let created: hid_t = Self.locked {
            Self.memoryFiles += 1
            return rnnkit_h5_create_in_memory("rnnkit-memory-\(getpid())-\(Self.memoryFiles).h5")
        }
        guard created >= 0 else { throw KerasFileError(file: name, reason: "HDF5 could not create a file in memory") }
        handle = created
    }

    deinit {
        Self.locked { _ = H5Fclose(handle) }
    }

    // MARK: Reading

    enum Kind { case group, dataset, other }

    /// What is at `path` (slash-separated from the root), or nil when nothing is.
    func kind(at path: String) -> Kind? {
        Self.locked {
            // H5Lexists needs every link on the way to exist, so walk them in turn.
            var prefix = ""
            for component in path.split(separator: "/") {
                prefix += (prefix.isEmpty ? "" : "/") + component
                if rnnkit_h5_object_kind(handle, prefix) < 0 { return nil }
            }
            switch rnnkit_h5_object_kind(handle, path) {
            case 0: return .group
            case 1: return .dataset
            case 2: return .other
            default: return nil
            }
        }
    }

    /// The names of the members of the group at `path`, sorted.
    func members(of path: String) throws -> [String] {
        try Self.locked {
            let group = H5Gopen2(handle, path, rnnkit_h5p_default())
            guard group >= 0 else { throw KerasFileError(file: name, reason: "has no group \(path)") }
            defer { H5Gclose(group) }
            var info = H5G_info_t()
            guard H5Gget_info(group, &info) >= 0 else { throw KerasFileError(file: name, reason: "cannot list group \(path)") }
            var names: [String] = []
            for index in 0..<info.nlinks {
                let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, rnnkit_h5p_default())
                guard length >= 0 else { continue }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, rnnkit_h5p_default())
                names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return names.sorted()
        }
    }

    /// A numeric dataset: its shape, what it is stored as, and its values converted to Double.
    struct Dataset {
        var shape: [Int]
        /// `float32`, `float64`, `int64`, … as numpy names them.
        var storedType: String
        var values: [Double]
    }

    /// Reads the numeric dataset at `path`.
    /// - Throws: `KerasFileError` naming the path when it is missing, not numeric, or unreadable.
    func dataset(at path: String) throws -> Dataset {
        try Self.locked {
            let dataset = H5Dopen2(handle, path, rnnkit_h5p_default())
            guard dataset >= 0 else { throw KerasFileError(file: name, reason: "has no dataset \(path)") }
            defer { H5Dclose(dataset) }
            let space = H5Dget_space(dataset)
            guard space >= 0 else { throw KerasFileError(file: name, reason: "dataset \(path) has no readable shape") }
            defer { H5Sclose(space) }
            let rank = H5Sget_simple_extent_ndims(space)
            guard rank >= 0, rank <= 32 else { throw KerasFileError(file: name, reason: "dataset \(path) has no simple shape") }
            var extents = [hsize_t](repeating: 0, count: Int(rank))
            H5Sget_simple_extent_dims(space, &extents, nil)
            let shape = extents.map { Int($0) }
            var count = 1
            for extent in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: extent)
                guard !overflow, product <= 1 << 31 else { throw KerasFileError(file: name, reason: "dataset \(path) of shape \(shape) is too large for a weight") }
                count = product
            }
            let type = H5Dget_type(dataset)
            defer { H5Tclose(type) }
            let typeClass = H5Tget_class(type)
            let size = H5Tget_size(type)
            let storedType: String
            switch typeClass {
            case H5T_FLOAT: storedType = "float\(size * 8)"
            case H5T_INTEGER: storedType = (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(size * 8)"
            default: throw KerasFileError(file: name, reason: "dataset \(path) is not numeric")
            }
            var values = [Double](repeating: 0, count: count)
            if count > 0 {
                let status = values.withUnsafeMutableBytes {
                    H5Dread(dataset, rnnkit_h5t_native_double(), rnnkit_h5s_all(), rnnkit_h5s_all(), rnnkit_h5p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw KerasFileError(file: name, reason: "dataset \(path) cannot be read (damaged?)") }
            }
            return Dataset(shape: shape, storedType: storedType, values: values)
        }
    }

    // MARK: Writing

    /// Creates the group at `path` and any missing groups on the way.
    func createGroup(_ path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += (prefix.isEmpty ? "" : "/") + component
            if kind(at: prefix) == .group { continue }
            try Self.locked {
                let group = H5Gcreate2(handle, prefix, rnnkit_h5p_default(), rnnkit_h5p_default(), rnnkit_h5p_default())
                guard group >= 0 else { throw KerasFileError(file: name, reason: "cannot create group \(prefix)") }
                H5Gclose(group)
            }
        }
    }

    /// Sets a string attribute on the group at `path`.
    func setAttribute(_ attribute: String, to value: String, on path: String) throws {
        try Self.locked {
            let group = H5Gopen2(handle, path, rnnkit_h5p_default())
            guard group >= 0 else { throw KerasFileError(file: name, reason: "has no group \(path)") }
            defer { H5Gclose(group) }
            guard rnnkit_h5_write_string_attribute(group, attribute, value) == 0 else {
                throw KerasFileError(file: name, reason: "cannot write attribute \(attribute) of \(path)")
            }
        }
    }

    /// What a written dataset is stored as.
    enum StoredType { case float32, float64, int64 }

    /// Writes `values` (row-major) as a dataset of `shape` at `path`, whose group must exist.
    func write(_ values: [Double], shape: [Int], as stored: StoredType, at path: String) throws {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        try Self.locked {
            let extents = shape.map { hsize_t($0) }
            let space = extents.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(extents.count), extents, nil)
            guard space >= 0 else { throw KerasFileError(file: name, reason: "cannot describe shape \(shape) for \(path)") }
            defer { H5Sclose(space) }
            let fileType = switch stored {
            case .float32: rnnkit_h5t_ieee_f32le()
            case .float64: rnnkit_h5t_ieee_f64le()
            case .int64: rnnkit_h5t_std_i64le()
            }
            let dataset = H5Dcreate2(handle, path, fileType, space, rnnkit_h5p_default(), rnnkit_h5p_default(), rnnkit_h5p_default())
            guard dataset >= 0 else { throw KerasFileError(file: name, reason: "cannot create dataset \(path)") }
            defer { H5Dclose(dataset) }
            let status: herr_t
            if stored == .int64 {
                let integers = values.map { Int64($0) }
                status = integers.withUnsafeBytes {
                    H5Dwrite(dataset, rnnkit_h5t_native_int64(), rnnkit_h5s_all(), rnnkit_h5s_all(), rnnkit_h5p_default(), $0.baseAddress)
                }
            } else {
                status = values.withUnsafeBytes {
                    H5Dwrite(dataset, rnnkit_h5t_native_double(), rnnkit_h5s_all(), rnnkit_h5s_all(), rnnkit_h5p_default(), $0.baseAddress)
                }
            }
            guard status >= 0 else { throw KerasFileError(file: name, reason: "cannot write dataset \(path)") }
        }
    }

    /// The whole file as bytes.
    func bytes() throws -> Data {
        try Self.locked {
            var count = 0
            guard let copy = rnnkit_h5_copy_image(handle, &count) else {
                throw KerasFileError(file: name, reason: "HDF5 could not produce the file's bytes")
            }
            defer { free(copy) }
            return Data(bytes: copy, count: count)
        }
    }
}
