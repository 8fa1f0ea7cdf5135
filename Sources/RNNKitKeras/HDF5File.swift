import CHDF5
import CHDF5Probe
import Foundation
import RNNKit

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
    nonisolated(unsafe) private static var silenced = false // guarded by `lock`
    nonisolated(unsafe) private static var memoryFiles = 0 // guarded by `lock`

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

    /// Where the HDF5 signature is in `bytes`: at the start, or after a user block of 512, 1024,
    /// 2048, … bytes (where HDF5 itself looks), or nil when it is nowhere HDF5 would find it.
    static func signatureOffset(in bytes: Data) -> Int? {
        var offset = 0
        while offset + 8 <= bytes.count {
            let start = bytes.startIndex + offset
            if bytes[start..<start + 8].elementsEqual(signature) { return offset }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    /// How much of a file's structure the reader walks before it refuses the file: a Keras
    /// weights file has a few groups per layer and a few datasets per group.
    enum Limits {
        static let depth = 16
        static let links = 20_000
        static let membersPerGroup = 10_000
        static let nameLength = 1_024
    }

    /// The paths of every dataset reachable from the root through hard links (a dataset linked
    /// from several groups is listed under each); filled by the audit when the file is opened.
    private(set) var datasetPaths: [String] = []

    /// The file's size in bytes, against which stored sizes are checked.
    private let byteCount: UInt64

    /// Opens `bytes` read-only and inspects every object in it before any data is read.
    ///
    /// - Throws: `FileFormatError` when they are not an HDF5 file, or when the file uses anything a
    ///   weights file never needs and that could make reading it touch other files or take
    ///   unbounded memory: external, soft or user-defined links, external raw storage, virtual
    ///   datasets, filters other than deflate and shuffle, data that the file's bytes cannot hold.
    init(reading bytes: Data, name: String) throws {
        self.name = name
        self.byteCount = UInt64(bytes.count)
        guard Self.signatureOffset(in: bytes) != nil else {
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: bytes.isEmpty ? "is empty, not an HDF5 file" : "is not an HDF5 file (no HDF5 signature at its start)")
        }
        try Self.probe(bytes, name: name)
        // HDF5 copies the image (H5Pset_file_image), so the bytes need not outlive the call.
        let opened = bytes.withUnsafeBytes { raw in Self.locked { rnnkit_h5_open_image(raw.baseAddress, raw.count) } }
        guard opened >= 0 else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot be read as HDF5 (truncated or damaged)")
        }
        handle = opened
        try audit()
    }

    /// Creates an empty file in memory.
    init(creatingNamed name: String) throws {
        self.name = name
        self.byteCount = 0
        let created: hid_t = Self.locked {
            Self.memoryFiles += 1
            return rnnkit_h5_create_in_memory("rnnkit-memory-\(getpid())-\(Self.memoryFiles).h5")
        }
        guard created >= 0 else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "HDF5 could not create a file in memory")
        }
        handle = created
    }

    deinit {
        Self.locked { _ = H5Fclose(handle) }
    }

    /// How long libhdf5 may take to walk a file in the probe: 2 s, and 1 s more per 100 MB.
    static func probeMilliseconds(_ bytes: Int) -> UInt32 { UInt32(clamping: 2_000 + bytes / 100_000) }

    /// Has libhdf5 walk `bytes` in a child process first (`rnnkit_h5_probe`): libhdf5 1.10 itself
    /// crashes on some damaged files (it copies into a buffer whose allocation failed, which
    /// fuzzing found) and may loop or exhaust memory on others. What it does there ends the
    /// child; the same calls in this process then meet a file libhdf5 has walked once already.
    static func probe(_ bytes: Data, name: String) throws {
        var detail: Int32 = 0
        var reason = [CChar](repeating: 0, count: 1024)
        let result = bytes.withUnsafeBytes { raw in
            locked { rnnkit_h5_probe(raw.baseAddress, raw.count, probeMilliseconds(raw.count), 1 << 30, &detail, &reason, reason.count) }
        }
        switch result {
        case RNNKIT_H5_PROBE_FINISHED:
            return
        case RNNKIT_H5_PROBE_REFUSED:
            let what = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw FileFormatError(
                file: name, format: .hdf5Weights, reason: "is refused before any weight is read: \(KerasMessages.clipped(what, 300))")
        case RNNKIT_H5_PROBE_CRASHED:
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "is damaged or crafted: libhdf5 crashed (signal \(detail)) reading it in a separate process")
        case RNNKIT_H5_PROBE_TIMED_OUT:
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason:
                    "is damaged or crafted: libhdf5 did not finish reading it within \(probeMilliseconds(bytes.count) / 1000) s (in a separate process)"
            )
        case RNNKIT_H5_PROBE_OUT_OF_MEMORY:
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "is damaged or crafted: libhdf5 needed more than 1 GiB reading it (in a separate process)")
        case RNNKIT_H5_PROBE_FAILED:
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "is damaged or crafted: the separate process reading it with libhdf5 ended early (exit status \(detail))")
        default:
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "cannot be read safely: no process could be started to read it first (\(String(cString: strerror(detail))))")
        }
    }

    // MARK: The audit

    /// Walks every link from the root (each group once, however many links lead to it, so a group
    /// that contains itself ends the walk instead of looping), refusing by name whatever a weights
    /// file never needs, before any dataset's data is read.
    private func audit() throws {
        var problems: [String] = []
        var datasets: [String] = []
        try Self.locked {
            var visited: Set<UInt64> = []
            var pending: [(path: String, depth: Int)] = [("", 0)]
            var linkCount = 0
            while let (path, depth) = pending.popLast() {
                let group = rnnkit_h5_open_group(handle, path.isEmpty ? "/" : path)
                guard group >= 0 else {
                    throw FileFormatError(file: name, format: .hdf5Weights, reason: "group /\(path) cannot be opened (damaged?)")
                }
                defer { H5Gclose(group) }
                for (member, type) in try links(of: group, at: "/\(path)") {
                    linkCount += 1
                    guard linkCount <= Limits.links else {
                        throw FileFormatError(
                            file: name, format: .hdf5Weights, reason: "has more than \(Limits.links) links, more than a weights file needs")
                    }
                    let child = path.isEmpty ? member : "\(path)/\(member)"
                    switch type {
                    case 0: break
                    case 1: problems.append("/\(child) is a soft link (a weights file has only hard links)"); continue
                    case 64: problems.append("/\(child) is an external link (to another file)"); continue
                    default: problems.append("/\(child) is a user-defined link"); continue
                    }
                    var address: UInt64 = 0
                    switch rnnkit_h5_object_by_name(group, member, &address) {
                    case 0:
                        guard visited.insert(address).inserted else { continue }
                        guard depth < Limits.depth else {
                            throw FileFormatError(
                                file: name, format: .hdf5Weights, reason: "groups nest deeper than \(Limits.depth) levels at /\(child)")
                        }
                        pending.append((child, depth + 1))
                    case 1:
                        datasets.append(child)
                        problems += try datasetProblems(at: child)
                    case -1:
                        throw FileFormatError(file: name, format: .hdf5Weights, reason: "object /\(child) cannot be read (damaged?)")
                    default:
                        continue // a named datatype: no data of its own
                    }
                }
            }
        }
        guard problems.isEmpty else {
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "is refused before any weight is read; it uses what a weights file never needs:\n"
                    + KerasMessages.list(problems))
        }
        datasetPaths = datasets
    }

    /// The names and types of the links of `group` (at `place`, for errors), listed in one pass.
    private func links(of group: hid_t, at place: String) throws -> [(name: String, type: Int32)] {
        var list = rnnkit_h5_link_list()
        defer { rnnkit_h5_free_links(&list) }
        let status = rnnkit_h5_list_links(group, Limits.membersPerGroup, &list)
        if list.truncated != 0 {
            throw FileFormatError(
                file: name, format: .hdf5Weights,
                reason: "group \(place) has more than \(Limits.membersPerGroup) members, more than a weights file needs")
        }
        if list.long_name != 0 {
            throw FileFormatError(
                file: name, format: .hdf5Weights, reason: "a link in \(place) has a name longer than \(RNNKIT_H5_LONGEST_NAME) bytes")
        }
        guard status == 0 else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "group \(place) cannot be listed (damaged?)")
        }
        return (0..<list.count).map { (String(cString: rnnkit_h5_link_name(&list, $0)), rnnkit_h5_link_kind(&list, $0)) }
    }

    /// What the dataset at `path` does that a weights file never needs; called under the lock.
    private func datasetProblems(at path: String) throws -> [String] {
        let facts = try describe(path)
        let place = "dataset /\(path)"
        var problems: [String] = []
        switch facts.layout {
        case 0, 1, 2: break
        case 3: problems.append("\(place) is a virtual dataset (its data would come from other files)")
        default: problems.append("\(place) has a storage layout RNNKit does not read")
        }
        if facts.external_files > 0 {
            let file = withUnsafeBytes(of: facts.external_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            problems.append("\(place) keeps its data in the external file \"\(file.prefix(120))\"")
        }
        let filters = withUnsafeBytes(of: facts.filters) { Array($0.bindMemory(to: Int32.self).prefix(Int(min(facts.filter_count, 8)))) }
        if facts.filter_count > 8 || filters.contains(where: { $0 != 1 && $0 != 2 }) {
            problems.append(
                "\(place) uses HDF5 filter \(filters.filter { $0 != 1 && $0 != 2 }.map(String.init).joined(separator: ", ")) (only deflate and shuffle are read)"
            )
        }
        guard problems.isEmpty else { return problems }
        guard let shape = facts.shape, let count = Self.elementCount(shape) else {
            return ["\(place) has no simple shape, or one too large to count"]
        }
        guard (1...16).contains(facts.type_size) else { return ["\(place) has elements of \(facts.type_size) bytes"] }
        let (raw, overflow) = UInt64(count).multipliedReportingOverflow(by: facts.type_size)
        guard !overflow else { return ["\(place) of shape \(shape) is too large to count"] }
        if facts.layout == 2 {
            let chunk = withUnsafeBytes(of: facts.chunk) { Array($0.bindMemory(to: UInt64.self).prefix(Int(max(facts.chunk_rank, 0)))) }
            guard chunk.count == shape.count, zip(chunk, shape).allSatisfy({ $0 >= 1 && $0 <= UInt64(max($1, 1)) }) else {
                return ["\(place) of shape \(shape) declares chunks of \(chunk), larger than the dataset"]
            }
            let chunkBytes = chunk.reduce(facts.type_size) { $0.multipliedReportingOverflow(by: $1).partialValue }
            if facts.filter_count > 0, chunkBytes > UInt64(RNNKIT_H5_LARGEST_CHUNK) {
                return [
                    "\(place) declares compressed chunks of \(chunkBytes) bytes, more than the \(RNNKIT_H5_LARGEST_CHUNK) RNNKit decodes"
                ]
            }
        }
        guard raw > 0 else { return [] }
        let stored = facts.storage_size
        if stored == 0 { return ["\(place) of shape \(shape) holds no data (its values were never written)"] }
        if stored > byteCount { return ["\(place) claims \(stored) bytes of storage, more than the file's \(byteCount)"] }
        switch facts.layout {
        case 0 where stored != raw:
            problems.append("\(place) of shape \(shape) stores \(stored) bytes in its header, not the \(raw) its shape needs")
        case 1 where stored != raw:
            problems.append("\(place) of shape \(shape) stores \(stored) bytes, not the \(raw) its shape needs")
        case 1 where facts.offset > byteCount || byteCount - facts.offset < stored:
            problems.append("\(place) stores its data past the end of the file")
        case 2 where filters.contains(1):
            if raw / UInt64(Gzip.maximumRatio) > stored {
                problems.append("\(place) of shape \(shape) needs \(raw) bytes, more than its \(stored) compressed bytes can hold")
            }
        case 2 where stored < raw:
            problems.append(
                "\(place) of shape \(shape) stores \(stored) bytes, fewer than the \(raw) its shape needs (chunks never written)")
        default: break
        }
        return problems
    }

    /// HDF5's description of the dataset at `path`; called under the lock.
    private func describe(_ path: String) throws -> rnnkit_h5_dataset_facts {
        let dataset = rnnkit_h5_open_dataset(handle, path)
        guard dataset >= 0 else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset /\(path) cannot be opened (damaged?)")
        }
        defer { H5Dclose(dataset) }
        var facts = rnnkit_h5_dataset_facts()
        guard rnnkit_h5_describe_dataset(dataset, &facts) == 0 else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset /\(path) cannot be described (damaged?)")
        }
        return facts
    }

    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, extent >= 0 else { return nil }
            count = product
        }
        return count
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
            let group = rnnkit_h5_open_group(handle, path)
            guard group >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "has no group \(path)") }
            defer { H5Gclose(group) }
            return try links(of: group, at: path).map(\.name).sorted()
        }
    }

    /// A dataset's shape and what it is stored as, read without its data.
    struct DatasetInfo {
        var shape: [Int]
        /// `float32`, `float64`, `int64`, … as numpy names them; `other` for anything else.
        var storedType: String
        var isNumeric: Bool { storedType != "other" }
    }

    /// The shape and type of the dataset at `path`, without reading its data.
    /// - Throws: `FileFormatError` naming the path when it is missing or has no simple shape.
    func info(at path: String) throws -> DatasetInfo {
        let facts = try Self.locked { try describe(path) }
        guard let shape = facts.shape else {
            throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset \(path) has no simple shape")
        }
        let stored =
            switch facts.type_class {
            case 0: (facts.type_signed != 0 ? "int" : "uint") + "\(facts.type_size.multipliedReportingOverflow(by: 8).partialValue)"
            case 1: "float\(facts.type_size.multipliedReportingOverflow(by: 8).partialValue)"
            default: "other"
            }
        return DatasetInfo(shape: shape, storedType: stored)
    }

    /// The values of the numeric dataset at `path`, converted to Double, once its shape has been
    /// checked to be `expected`: nothing is read or allocated for a dataset of another shape.
    /// - Throws: `FileFormatError` naming the path when it is missing, of another shape, not
    ///   numeric, or unreadable.
    func values(at path: String, expectedShape expected: [Int]) throws -> [Double] {
        try Self.locked {
            let facts = try describe(path)
            guard let shape = facts.shape, shape == expected else {
                throw FileFormatError(
                    file: name, format: .hdf5Weights,
                    reason: "dataset \(path) has shape \(facts.shape.map { "\($0)" } ?? "(none)"), not \(expected)")
            }
            guard facts.type_class == 0 || facts.type_class == 1 else {
                throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset \(path) is not numeric")
            }
            guard let count = Self.elementCount(shape), count <= 1 << 28 else {
                throw FileFormatError(
                    file: name, format: .hdf5Weights, reason: "dataset \(path) of shape \(shape) is too large for a weight")
            }
            guard count > 0 else { return [] }
            let dataset = rnnkit_h5_open_dataset(handle, path)
            guard dataset >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "has no dataset \(path)") }
            defer { H5Dclose(dataset) }
            var values = [Double](repeating: 0, count: count)
            let status: Int32
            if facts.layout == 2, facts.filter_count > 0 {
                // Filtered chunks are inflated here, each to its declared size and no further.
                status = values.withUnsafeMutableBufferPointer { rnnkit_h5_read_filtered(dataset, $0.baseAddress, $0.count) }
                switch status {
                case -2:
                    throw FileFormatError(
                        file: name, format: .hdf5Weights, reason: "dataset \(path) has a chunk that stores more bytes than its size allows")
                case -3:
                    throw FileFormatError(
                        file: name, format: .hdf5Weights, reason: "dataset \(path) has a chunk that does not inflate to its declared size")
                case -4:
                    throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset \(path) uses a filter RNNKit does not read")
                case -6:
                    throw FileFormatError(
                        file: name, format: .hdf5Weights, reason: "dataset \(path) has compressed chunks larger than RNNKit decodes")
                case -7:
                    throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset \(path) has chunks that were never written")
                default: break
                }
            } else {
                status = values.withUnsafeMutableBytes {
                    H5Dread(dataset, rnnkit_h5t_native_double(), rnnkit_h5s_all(), rnnkit_h5s_all(), rnnkit_h5p_default(), $0.baseAddress)
                }
            }
            guard status >= 0 else {
                throw FileFormatError(file: name, format: .hdf5Weights, reason: "dataset \(path) cannot be read (damaged?)")
            }
            return values
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
                guard group >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot create group \(prefix)") }
                H5Gclose(group)
            }
        }
    }

    /// Sets a string attribute on the group at `path`.
    func setAttribute(_ attribute: String, to value: String, on path: String) throws {
        try Self.locked {
            let group = H5Gopen2(handle, path, rnnkit_h5p_default())
            guard group >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "has no group \(path)") }
            defer { H5Gclose(group) }
            guard rnnkit_h5_write_string_attribute(group, attribute, value) == 0 else {
                throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot write attribute \(attribute) of \(path)")
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
            guard space >= 0 else {
                throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot describe shape \(shape) for \(path)")
            }
            defer { H5Sclose(space) }
            let fileType =
                switch stored {
                case .float32: rnnkit_h5t_ieee_f32le()
                case .float64: rnnkit_h5t_ieee_f64le()
                case .int64: rnnkit_h5t_std_i64le()
                }
            let dataset = H5Dcreate2(handle, path, fileType, space, rnnkit_h5p_default(), rnnkit_h5p_default(), rnnkit_h5p_default())
            guard dataset >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot create dataset \(path)") }
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
            guard status >= 0 else { throw FileFormatError(file: name, format: .hdf5Weights, reason: "cannot write dataset \(path)") }
        }
    }

    /// The whole file as bytes.
    func bytes() throws -> Data {
        try Self.locked {
            var count = 0
            guard let copy = rnnkit_h5_copy_image(handle, &count) else {
                throw FileFormatError(file: name, format: .hdf5Weights, reason: "HDF5 could not produce the file's bytes")
            }
            defer { free(copy) }
            return Data(bytes: copy, count: count)
        }
    }
}

extension rnnkit_h5_dataset_facts {
    /// The dataset's extents, or nil when it has no simple shape.
    var shape: [Int]? {
        guard rank >= 0 else { return nil }
        let extents = withUnsafeBytes(of: self.extents) { Array($0.bindMemory(to: UInt64.self).prefix(Int(rank))) }
        guard extents.allSatisfy({ $0 <= UInt64(Int.max) }) else { return nil }
        return extents.map { Int($0) }
    }
}
