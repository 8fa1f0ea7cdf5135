import Foundation

/// A safetensors file could not be read or does not hold what was asked of it.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

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

    /// Decodes every tensor of dtype `S` from `data`; `file` names the source in errors.
    /// Checks the header length, the JSON, each dtype, shape and offsets, and that the tensors
    /// tile the data exactly.
    public static func decode<S: BLASScalar>(_ data: Data, file: String, as _: S.Type = S.self) throws -> (tensors: [String: Tensor<S>], metadata: [String: String]) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(file: file, reason: reason) }
        guard data.count >= 8 else { throw fail("too short for a safetensors file (\(data.count) bytes)") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: 8..<headerEnd)
        guard let header = (try? JSONSerialization.jsonObject(with: headerBytes)) as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        let dataLength = data.count - headerEnd
        let scalarSize = MemoryLayout<S>.size
        var tensors: [String: Tensor<S>] = [:]
        var metadata: [String: String] = [:]
        var ranges: [(Int, Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let entries = value as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
                metadata = entries
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw fail("tensor \(name) lacks a dtype, shape or data_offsets") }
            guard dtype == S.safetensorsDType else {
                throw fail("tensor \(name) has dtype \(dtype), expected \(S.safetensorsDType)")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name) has a negative extent in \(shape)") }
            let (begin, end) = (offsets[0], offsets[1])
            guard 0 <= begin, begin <= end, end <= dataLength else {
                throw fail("tensor \(name) has offsets [\(begin), \(end)] outside the \(dataLength) data bytes")
            }
            let count = shape.reduce(1, *)
            guard end - begin == count * scalarSize else {
                throw fail("tensor \(name) of shape \(shape) needs \(count * scalarSize) bytes, its offsets span \(end - begin)")
            }
            var scalars = [S](repeating: 0, count: count)
            scalars.withUnsafeMutableBytes { destination in
                _ = data.copyBytes(to: destination, from: (headerEnd + begin)..<(headerEnd + end))
            }
            tensors[name] = Tensor(shape: shape, scalars: scalars)
            ranges.append((begin, end))
        }
        // The tensors must cover the data with no gap or overlap.
        var position = 0
        for (begin, end) in ranges.sorted(by: { $0.0 < $1.0 }) {
            guard begin == position else { throw fail("the tensors' data overlap or leave a gap at byte \(position)") }
            position = end
        }
        guard position == dataLength else { throw fail("\(dataLength - position) bytes after the last tensor belong to none") }
        return (tensors, metadata)
    }
}

extension Sequential {
    /// Writes the weights to `url` as safetensors with Keras's names, atomically.
    public func saveWeights(to url: URL, metadata: [String: String] = [:]) throws {
        try writeAtomically(SafeTensors.encode(weights, metadata: metadata), to: url)
    }

    /// Loads weights saved by `saveWeights` (or any safetensors file with Keras's names and
    /// layouts). Throws `SafeTensorsError` for an unreadable file and `ModelError.weightsMismatch`
    /// listing what differs when the names or shapes do not fit; the model is unchanged then.
    public func loadWeights(from url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw SafeTensorsError(file: url.path, reason: "cannot be read (\(error.localizedDescription))")
        }
        try setWeights(SafeTensors.decode(data, file: url.path, as: Scalar.self).tensors)
    }
}
