import Foundation

/// The IDX format of MNIST: a big-endian header (magic number, then one 32-bit count per
/// dimension) followed by unsigned bytes. Files may be raw or gzipped.
public enum IDX {
    /// Magic number of a rank-3 unsigned-byte file (images).
    public static let imagesMagic: UInt32 = 2051
    /// Magic number of a rank-1 unsigned-byte file (labels).
    public static let labelsMagic: UInt32 = 2049

    /// The file's bytes, read whole; missing or unreadable files are named as such.
    static func bytes(of url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw FileFormatError(
                file: url.path, format: .idx,
                reason: FileManager.default.fileExists(atPath: url.path)
                    ? "cannot be read" : "does not exist")
        }
    }

    /// The size in bytes an IDX file with `dimensions` (of one byte each) must have after its
    /// header, or nil when the product overflows.
    static func payloadSize(_ dimensions: [Int]) -> Int? {
        var size = 1
        for extent in dimensions {
            let (product, overflow) = size.multipliedReportingOverflow(by: extent)
            guard !overflow else { return nil }
            size = product
        }
        return size
    }

    /// Raw IDX bytes from `data`, inflated when they are gzip. The inflation stops, with an
    /// error, as soon as the output exceeds what the IDX header (read from the first inflated
    /// bytes) announces, and a header announcing more than the compressed file could hold is
    /// refused before inflating further.
    static func uncompressed(_ data: Data, file: String, gzipNamed: Bool) throws -> Data {
        guard Gzip.isCompressed(data) else {
            if gzipNamed { throw FileFormatError(file: file, format: .idx, reason: "is named .gz but is not gzip data") }
            return data
        }
        let ceiling = data.count.multipliedReportingOverflow(by: Gzip.maximumRatio)
        do {
            return try Gzip.decompress(data) { prefix in
                guard let expected = try announcedSize(prefix, file: file) else { return nil }
                guard ceiling.overflow || expected <= ceiling.partialValue else {
                    throw FileFormatError(
                        file: file, format: .idx,
                        reason: "announces \(expected) bytes, more than its \(data.count) compressed bytes can hold")
                }
                return expected
            }
        } catch let error as FileFormatError where error.file == nil {
            // Gzip's own errors, from bytes it knows no name for.
            throw FileFormatError(file: file, format: error.format, reason: error.reason)
        }
    }

    /// The whole size an IDX file's header announces (header included), once enough of it is
    /// known; nil before that or for a magic number that is not one of ours (the parser names it).
    static func announcedSize(_ prefix: Data, file: String) throws -> Int? {
        guard prefix.count >= 4 else { return nil }
        let magic = bigEndianUInt32(prefix, at: 0)
        let rank = magic == imagesMagic ? 3 : magic == labelsMagic ? 1 : 0
        guard rank > 0, prefix.count >= 4 + 4 * rank else { return nil }
        let dimensions = (0..<rank).map { Int(bigEndianUInt32(prefix, at: 4 + 4 * $0)) }
        guard let payload = payloadSize(dimensions), case (let total, false) = payload.addingReportingOverflow(4 + 4 * rank) else {
            throw FileFormatError(file: file, format: .idx, reason: "declares dimensions \(dimensions) whose size overflows")
        }
        return total
    }

    private static func bigEndianUInt32(_ data: Data, at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(data[data.startIndex + offset + $1]) }
    }

    /// Checks the magic number first, so a file of the wrong kind is named as such.
    private static func checkMagic(_ data: Data, expected: UInt32, kind: String, file: String) throws {
        guard data.count >= 4 else {
            throw FileFormatError(file: file, format: .idx, reason: "is \(data.count) bytes, too short for an IDX header")
        }
        let magic = bigEndianUInt32(data, at: 0)
        guard magic == expected else {
            let other = magic == imagesMagic ? "; this is an images file" : magic == labelsMagic ? "; this is a labels file" : ""
            throw FileFormatError(
                file: file, format: .idx, reason: "has magic number \(magic), expected \(expected) (IDX unsigned-byte \(kind))\(other)")
        }
    }

    /// Reads an images file: `count` images of `rows × columns` bytes.
    /// - Throws: `FileFormatError` for a missing file, a wrong magic number, zero sizes, sizes that
    ///   overflow, damaged gzip, or a byte count that does not match the header.
    public static func readImages(_ url: URL) throws -> (pixels: [UInt8], count: Int, rows: Int, columns: Int) {
        try parseImages(bytes(of: url), file: url.path, gzipNamed: url.pathExtension == "gz")
    }

    /// `readImages` on bytes in memory (raw or gzip); `file` names them in errors.
    public static func parseImages(_ bytes: Data, file: String, gzipNamed: Bool = false) throws -> (
        pixels: [UInt8], count: Int, rows: Int, columns: Int
    ) {
        let data = try uncompressed(bytes, file: file, gzipNamed: gzipNamed)
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .idx, reason: reason) }
        try checkMagic(data, expected: imagesMagic, kind: "images", file: file)
        guard data.count >= 16 else { throw fail("is \(data.count) bytes, too short for an IDX images header (16 bytes)") }
        let count = Int(bigEndianUInt32(data, at: 4)), rows = Int(bigEndianUInt32(data, at: 8)),
            columns = Int(bigEndianUInt32(data, at: 12))
        guard count > 0, rows > 0, columns > 0 else { throw fail("declares \(count) images of \(rows)×\(columns); all must be positive") }
        guard let payload = payloadSize([count, rows, columns]), case (let expected, false) = payload.addingReportingOverflow(16) else {
            throw fail("declares \(count) images of \(rows)×\(columns), a size that overflows")
        }
        guard data.count == expected else {
            throw fail("holds \(data.count) bytes, but its header (\(count) images of \(rows)×\(columns)) needs \(expected)")
        }
        return (Array(data.dropFirst(16)), count, rows, columns)
    }

    /// Reads a labels file; every label must be below `classCount`.
    public static func readLabels(_ url: URL, classCount: Int = 10) throws -> [UInt8] {
        try parseLabels(bytes(of: url), file: url.path, classCount: classCount, gzipNamed: url.pathExtension == "gz")
    }

    /// `readLabels` on bytes in memory (raw or gzip); `file` names them in errors.
    public static func parseLabels(_ bytes: Data, file: String, classCount: Int = 10, gzipNamed: Bool = false) throws -> [UInt8] {
        let data = try uncompressed(bytes, file: file, gzipNamed: gzipNamed)
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .idx, reason: reason) }
        try checkMagic(data, expected: labelsMagic, kind: "labels", file: file)
        guard data.count >= 8 else { throw fail("is \(data.count) bytes, too short for an IDX labels header (8 bytes)") }
        let count = Int(bigEndianUInt32(data, at: 4))
        guard count > 0 else { throw fail("declares no labels") }
        guard data.count == 8 + count else {
            throw fail("holds \(data.count) bytes, but its header (\(count) labels) needs \(8 + count)")
        }
        let labels = Array(data.dropFirst(8))
        if let index = labels.firstIndex(where: { Int($0) >= classCount }) {
            throw fail("label \(index) is \(labels[index]), expected 0–\(classCount - 1)")
        }
        return labels
    }
}
