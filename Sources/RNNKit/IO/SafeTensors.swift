import Foundation

/// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON
/// header `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then
/// the tensors' raw little-endian bytes (offsets relative to the end of the header).
public enum SafeTensors {
    /// Encodes `tensors` (written in name order) with string `metadata`.
    public static func encode<S: BLASScalar>(_ tensors: [String: Tensor<S>], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for name in tensors.keys.sorted() {
            let tensor = tensors[name]!
            let begin = body.count
            tensor.scalars.withUnsafeBytes { body.append(contentsOf: $0) } // x86-64 and arm64 are little-endian
            header[name] = ["dtype": S.safetensorsDType, "shape": tensor.shape, "data_offsets": [begin, body.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(body)
        return file
    }

    /// What a file that is not safetensors looks like, to name it in the error.
    static func otherFormat(_ data: Data) -> String? {
        let start = [UInt8](data.prefix(8))
        if start == [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A] { return "an HDF5 file (Keras's .weights.h5?), not safetensors" }
        if start.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "a zip archive (a .keras file?), not safetensors" }
        if start.starts(with: [0x1F, 0x8B]) { return "gzip data, not safetensors" }
        return nil
    }

    /// The keys of the top-level JSON object in `json`, in order and with repeats (a JSON
    /// decoder keeps only one of two equal keys, which would hide a duplicate tensor name).
    static func topLevelKeys(_ json: Data) -> [String] {
        var keys: [String] = []
        var depth = 0, index = json.startIndex, expectingKey = false
        while index < json.endIndex {
            let byte = json[index]
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectingKey = depth == 1 && byte == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectingKey = depth == 1
            case UInt8(ascii: "\""):
                // A string: find its end, skipping escaped characters.
                var end = json.index(after: index)
                while end < json.endIndex, json[end] != UInt8(ascii: "\"") {
                    end =
                        json[end] == UInt8(ascii: "\\")
                        ? json.index(end, offsetBy: 2, limitedBy: json.endIndex) ?? json.endIndex : json.index(after: end)
                }
                if expectingKey, end <= json.endIndex {
                    let raw = json[json.index(after: index)..<min(end, json.endIndex)]
                    keys.append(
                        (try? JSONSerialization.jsonObject(with: Data("\"".utf8) + raw + Data("\"".utf8), options: .fragmentsAllowed)
                            as? String)
                            ?? String(decoding: raw, as: UTF8.self))
                    expectingKey = false
                }
                index = end
            default:
                break
            }
            if index < json.endIndex { index = json.index(after: index) }
        }
        return keys
    }

    /// The metadata key under which RNNKit's files carry the model's Keras config, so that the
    /// architecture travels with the weights.
    public static let kerasConfigKey = "keras_config"

    /// Bytes per element of the floating-point dtypes the reader converts from.
    static let elementSizes = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2]

    /// Decodes every tensor in `data`, converting F32, F64, F16 and BF16 to `S`; `file` names the
    /// source in errors.
    ///
    /// Everything is checked before any tensor is materialised: the header length, the JSON,
    /// duplicate names, each dtype, shape (with overflow-checked sizes) and offsets, and that the
    /// tensors tile the data exactly with no gap, overlap or alias; so a small crafted file
    /// cannot make the reader allocate more than the file's own size. Tensors of a dtype that is
    /// not floating point are all named in one error.
    /// The longest header read: names, shapes and metadata (a Keras config, a run's history) of a
    /// model RNNKit trains take well under a megabyte.
    public static let largestHeader = 4 << 20
    /// The most tensors a file may list (a model has a few per layer, a checkpoint a few more).
    public static let largestTensorCount = 10_000

    /// The JSON objects and arrays in `json`, outside its strings (a history or a Keras config in
    /// the metadata is a string, whatever it holds).
    static func containerCount(_ json: Data) -> Int {
        json.withUnsafeBytes { bytes in
            var count = 0, inString = false, escaped = false
            for byte in bytes {
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else if byte == UInt8(ascii: "\"") {
                    inString = true
                } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                    count += 1
                }
            }
            return count
        }
    }

    /// The tensors (converted to `S`) and string metadata of a safetensors file's bytes; `file`
    /// names it in errors. Offsets, shapes and dtypes are checked before any tensor is built.
    /// - Throws: `FileFormatError` of format `.safetensors`, nothing else.
    public static func decode<S: BLASScalar>(_ data: Data, file: String, as _: S.Type = S.self) throws -> (
        tensors: [String: Tensor<S>], metadata: [String: String]
    ) {
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .safetensors, reason: reason) }
        if let other = otherFormat(data) { throw fail("is \(other)") }
        guard data.count >= 8 else { throw fail("too short for a safetensors file (\(data.count) bytes)") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        guard headerLength <= UInt64(largestHeader) else {
            throw fail(
                "header of \(headerLength) bytes is longer than the \(largestHeader) RNNKit reads (its tensors' names and shapes, and metadata, take far less)"
            )
        }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + headerEnd))
        // Counted before parsing: JSON of many small objects costs Foundation far more memory than its bytes.
        let containers = containerCount(headerBytes)
        guard containers <= 4 * largestTensorCount + 16 else {
            throw fail("the header holds \(containers) JSON objects and arrays, more than \(largestTensorCount) tensors need")
        }
        guard let header = (try? JSONSerialization.jsonObject(with: headerBytes)) as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        guard header.count <= largestTensorCount + 1 else {
            throw fail("the header lists \(header.count) entries, more than the \(largestTensorCount) tensors RNNKit reads")
        }
        var seen = Set<String>()
        for key in topLevelKeys(headerBytes) where !seen.insert(key).inserted {
            throw fail("duplicate name \(key) in the header")
        }
        let dataLength = data.count - headerEnd
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        var unsupported: [String] = []
        for (name, value) in header.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                guard let fields = value as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
                metadata = fields
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw fail("tensor \(name) lacks a dtype, shape or data_offsets") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name) has a negative extent in \(shape)") }
            var count = 1
            for extent in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: extent)
                guard !overflow else { throw fail("tensor \(name) has shape \(shape), whose element count overflows") }
                count = product
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard 0 <= begin, begin <= end, end <= dataLength else {
                throw fail("tensor \(name) has offsets [\(begin), \(end)] outside the \(dataLength) data bytes")
            }
            if let size = elementSizes[dtype] {
                let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow else { throw fail("tensor \(name) of shape \(shape) has a byte size that overflows") }
                guard end - begin == bytes else {
                    throw fail("tensor \(name) of shape \(shape) needs \(bytes) bytes as \(dtype), its offsets span \(end - begin)")
                }
            } else {
                unsupported.append("\(name) (\(dtype))")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        // The tensors must cover the data with no gap, overlap or shared range.
        var position = 0
        for entry in entries.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard entry.begin == position else {
                throw fail(
                    entry.begin < position
                        ? "tensor \(entry.name)'s data overlap another tensor's at byte \(entry.begin)"
                        : "the tensors' data leave a gap at byte \(position)")
            }
            position = entry.end
        }
        guard position == dataLength else { throw fail("\(dataLength - position) bytes after the last tensor belong to none") }
        guard unsupported.isEmpty else {
            throw fail(
                "tensors of a dtype that is not floating point (F32, F64, F16, BF16 are read): " + unsupported.joined(separator: ", "))
        }
        var tensors: [String: Tensor<S>] = [:]
        for entry in entries {
            let bytes = data.subdata(in: (data.startIndex + headerEnd + entry.begin)..<(data.startIndex + headerEnd + entry.end))
            tensors[entry.name] = Tensor(shape: entry.shape, scalars: convert(bytes, from: entry.dtype, to: S.self))
        }
        return (tensors, metadata)
    }

    /// Little-endian `bytes` of `dtype` as `S` values.
    static func convert<S: BLASScalar>(_ bytes: Data, from dtype: String, to _: S.Type) -> [S] {
        bytes.withUnsafeBytes { raw -> [S] in
            switch dtype {
            case "F32": return (0..<raw.count / 4).map { S(Double(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self))) }
            case "F64": return (0..<raw.count / 8).map { S(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
            case "BF16":
                // bfloat16 is the upper half of a float32.
                return (0..<raw.count / 2).map {
                    S(Double(Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16)))
                }
            case "F16":
                return (0..<raw.count / 2).map { S(halfToDouble(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            default:
                preconditionFailure("dtype \(dtype) was not checked")
            }
        }
    }

    /// IEEE half precision (1 sign, 5 exponent, 10 fraction bits) to Double, subnormals and
    /// infinities included.
    static func halfToDouble(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F), fraction = Double(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}

extension Sequential {
    /// Writes the weights to `url` as safetensors with Keras's names, atomically.
    public func saveWeights(to url: URL, metadata: [String: String] = [:]) throws {
        try writeAtomically(SafeTensors.encode(weights, metadata: metadata), to: url)
    }

    /// Loads weights saved by `saveWeights` (or any safetensors file with Keras's names and
    /// layouts), converting F64, F16 and BF16 tensors to the model's scalar type.
    ///
    /// Keras 3's full variable paths (`sequential/simple_rnn/simple_rnn_cell/kernel`) are accepted
    /// for RNNKit's names (`simple_rnn/kernel`). Tensors that are an optimiser's state
    /// (`optimizer/…`) are skipped, with a note. Throws `FileFormatError` for an unreadable file
    /// and `ModelError.weightsMismatch` listing every difference when the names or shapes do not
    /// fit; the model is unchanged then.
    /// - Returns: notes on what was skipped.
    @discardableResult
    public func loadWeights(from url: URL) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FileFormatError(file: url.path, format: .safetensors, reason: "cannot be read (\(error.localizedDescription))")
        }
        let tensors = try SafeTensors.decode(data, file: url.path, as: Scalar.self).tensors
        let known = Set(parameters.map(\.name))
        var weights: [String: Tensor<Scalar>] = [:]
        var skipped: [String] = []
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            if !known.contains(name), Self.isOptimizerState(name) {
                skipped.append(name)
                continue
            }
            let weight = known.contains(name) ? name : (Self.kerasAlias(name, modelName: self.name, known: known) ?? name)
            if let index = tensor.scalars.firstIndex(where: { !$0.isFinite }) {
                throw FileFormatError(
                    file: url.path, format: .safetensors,
                    reason: "tensor \(name) holds \(tensor.scalars[index]) at element \(index); weights must be finite")
            }
            guard weights[weight] == nil else {
                throw FileFormatError(
                    file: url.path, format: .safetensors, reason: "tensors \(name) and another both name the weight \(weight)")
            }
            weights[weight] = tensor
        }
        try setWeights(weights)
        return skipped.isEmpty
            ? []
            : [
                "\(url.path): skipped \(skipped.count) tensor\(skipped.count == 1 ? "" : "s") that \(skipped.count == 1 ? "is" : "are") not weights (an optimiser's state): "
                    + skipped.joined(separator: ", ")
            ]
    }

    /// Whether a tensor name is an optimiser's rather than a weight (`optimizer/slot0`, Keras's `adam/m_0`).
    static func isOptimizerState(_ name: String) -> Bool {
        let first = name.split(separator: "/").first.map(String.init) ?? name
        return ["optimizer", "adam", "sgd", "rmsprop"].contains(first.lowercased())
            || ["iteration", "iterations", "learning_rate"].contains(name)
    }

    /// RNNKit's name for Keras 3's variable path of the same weight: without the model's name and
    /// without the cell (`sequential/lstm/lstm_cell/kernel` → `lstm/kernel`).
    static func kerasAlias(_ path: String, modelName: String, known: Set<String>) -> String? {
        var parts = path.split(separator: "/").map(String.init).filter { !$0.hasSuffix("_cell") }
        if known.contains(parts.joined(separator: "/")) { return parts.joined(separator: "/") }
        guard parts.count >= 3 else { return nil }
        parts.removeFirst()
        let candidate = parts.joined(separator: "/")
        return known.contains(candidate) ? candidate : nil
    }
}
