import CGzip
import Foundation

/// gzip decompression through zlib.
public enum Gzip {
    /// Whether `data` starts with the gzip magic bytes.
    public static func isCompressed(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// Deflate cannot compress better than about 1032 to 1: a gzip file of n bytes inflates to
    /// at most this many times n, whatever its header claims.
    public static let maximumRatio = 1032

    /// Decompresses a whole gzip file (one or more members). zlib checks each member's CRC-32 and
    /// length; a stream that ends early, fails its check, or is followed by bytes that are not
    /// another member is an error.
    ///
    /// - Parameters:
    ///   - data: the compressed bytes.
    ///   - limit: asked with the output so far after every chunk (up to 1 MiB); when it
    ///     returns a size and the output exceeds it, inflation stops with an error. This is how a
    ///     reader that knows from the first bytes how long the data should be refuses a small file
    ///     that inflates to gigabytes without inflating it all.
    /// - Throws: `FileFormatError` of format `.gzip` and no file (the caller knows the name), or
    ///   whatever `limit` throws.
    public static func decompress(_ data: Data, limit: (Data) throws -> Int? = { _ in nil }) throws -> Data {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer rather than zlib's.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw FileFormatError(file: nil, format: .gzip, reason: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunkSize = 1 << 20
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        try data.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            guard let base = input.bindMemory(to: UInt8.self).baseAddress else {
                throw FileFormatError(file: nil, format: .gzip, reason: "the file is empty")
            }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(input.count)
            while true {
                let status: Int32 = chunk.withUnsafeMutableBufferPointer { chunk in
                    stream.next_out = chunk.baseAddress
                    stream.avail_out = uInt(chunkSize)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output.append(contentsOf: chunk[0..<(chunkSize - Int(stream.avail_out))])
                if let limit = try limit(output), output.count > limit {
                    throw FileFormatError(
                        file: nil, format: .gzip, reason: "inflates to more than the \(limit) bytes its contents announce")
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    guard stream.avail_in > 0 else { return }
                    // Another member may follow (gzip allows concatenation); anything else is damage.
                    guard stream.avail_in >= 2, stream.next_in[0] == 0x1F, stream.next_in[1] == 0x8B else {
                        throw FileFormatError(
                            file: nil, format: .gzip, reason: "\(stream.avail_in) bytes of trailing data after the gzip stream")
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw FileFormatError(file: nil, format: .gzip, reason: "the gzip stream is truncated (it ends before its end marker)")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw FileFormatError(file: nil, format: .gzip, reason: "the gzip stream is corrupt (\(message))")
                }
            }
        }
        return output
    }
}
