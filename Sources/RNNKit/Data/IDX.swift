import Foundation

/// A data file that is missing, unreadable or not what it should be. The description is one
/// line naming the file and what was wrong.
public struct DataFileError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}

/// The IDX format of MNIST: a big-endian header (magic number, then one 32-bit count per
/// dimension) followed by unsigned bytes. Files may be raw or gzipped.
public enum IDX {
    /// Magic number of a rank-3 unsigned-byte file (images).
    public static let imagesMagic: UInt32 = 2051
    /// Magic number of a rank-1 unsigned-byte file (labels).
    public static let labelsMagic: UInt32 = 2049

    /// The file's bytes, decompressed when they are gzip.
    static func contents(of url: URL) throws -> Data {
        let raw: Data
        do { raw = try Data(contentsOf: url) } catch {
            throw DataFileError(file: url.path, reason: FileManager.default.fileExists(atPath: url.path)
                                ? "cannot be read" : "does not exist")
        }
        guard Gzip.isCompressed(raw) else {
            if url.pathExtension == "gz" { throw DataFileError(file: url.path, reason: "is named .gz but is not gzip data") }
            return raw
        }
        do { return try Gzip.decompress(raw) } catch let error as GzipError {
            throw DataFileError(file: url.path, reason: error.reason)
        }
    }

    private static func bigEndianUInt32(_ data: Data, at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(data[data.startIndex + offset + $1]) }
    }

    /// Checks the magic number first, so a file of the wrong kind is named as such.
    private static func checkMagic(_ data: Data, expected: UInt32, kind: String, file url: URL) throws {
        guard data.count >= 4 else {
            throw DataFileError(file: url.path, reason: "is \(data.count) bytes, too short for an IDX header")
        }
        let magic = bigEndianUInt32(data, at: 0)
        guard magic == expected else {
            let other = magic == imagesMagic ? "; this is an images file" : magic == labelsMagic ? "; this is a labels file" : ""
            throw DataFileError(file: url.path, reason: "has magic number \(magic), expected \(expected) (IDX unsigned-byte \(kind))\(other)")
        }
    }

    /// Reads an images file: `count` images of `rows × columns` bytes.
    /// - Throws: `DataFileError` for a wrong magic number, zero sizes, or a byte count that does
    ///   not match the header.
    public static func readImages(_ url: URL) throws -> (pixels: [UInt8], count: Int, rows: Int, columns: Int) {
        let data = try contents(of: url)
        func fail(_ reason: String) -> DataFileError { DataFileError(file: url.path, reason: reason) }
        try checkMagic(data, expected: imagesMagic, kind: "images", file: url)
        guard data.count >= 16 else { throw fail("is \(data.count) bytes, too short for an IDX images header (16 bytes)") }
        let count = Int(bigEndianUInt32(data, at: 4)), rows = Int(bigEndianUInt32(data, at: 8)), columns = Int(bigEndianUInt32(data, at: 12))
        guard count > 0, rows > 0, columns > 0 else { throw fail("declares \(count) images of \(rows)×\(columns); all must be positive") }
        let expected = 16 + count * rows * columns
        guard data.count == expected else {
            throw fail("holds \(data.count) bytes, but its header (\(count) images of \(rows)×\(columns)) needs \(expected)")
        }
        return (Array(data.dropFirst(16)), count, rows, columns)
    }

    /// Reads a labels file; every label must be below `classCount`.
    public static func readLabels(_ url: URL, classCount: Int = 10) throws -> [UInt8] {
        let data = try contents(of: url)
        func fail(_ reason: String) -> DataFileError { DataFileError(file: url.path, reason: reason) }
        try checkMagic(data, expected: labelsMagic, kind: "labels", file: url)
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
