import Foundation

extension NumPy {
    /// The arrays in the `.npz` file at `url`, by member name without `.npy` (`numpy.savez(f,
    /// x=…, y=…)` gives `x` and `y`; unnamed arrays are `arr_0`, `arr_1`, …).
    ///
    /// The archive is read by RNNKit's hardened zip reader: its structure is checked whole before
    /// anything is unpacked (at most 1,024 members; stored or deflated, not encrypted, not zip64;
    /// no member claiming more than deflate can produce from its bytes), the members together
    /// may unpack to at most `maximumBytes`, each is inflated no further than it declares and its
    /// CRC-32 checked, and each is then read as a `.npy` file (see `read(_:file:)`).
    /// - Parameters:
    ///   - url: the `.npz` file.
    ///   - maximumBytes: the most the members may unpack to together (default
    ///     `largestArchiveContents`, 2 GiB): a small file cannot make RNNKit allocate more.
    /// - Throws: `FileFormatError` naming the file: of format `.npz` for the archive (its zip
    ///   structure, a member that is not `NAME.npy`, its size), of format
    ///   `.npy` for a member that is not a readable array (named `file.npz: member.npy`).
    public static func readArchive(contentsOf url: URL, maximumBytes: Int = largestArchiveContents) throws -> [String: NumPyArray] {
        try readArchive(readRegularFile(url, format: .npz), file: url.path, maximumBytes: maximumBytes)
    }

    /// The arrays in the bytes of an `.npz` file; `file` names it in errors. See `readArchive(contentsOf:maximumBytes:)`.
    public static func readArchive(_ data: Data, file: String, maximumBytes: Int = largestArchiveContents) throws -> [String: NumPyArray] {
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .npz, reason: reason) }
        if data.starts(with: magic) { throw fail("is a .npy file, not an .npz archive (read it with NumPy.read)") }
        guard data.starts(with: [0x50, 0x4B]) else {
            throw fail(data.isEmpty ? "is empty, not an .npz archive" : "is not an .npz archive (a zip file starts with PK)")
        }
        let archive = try ZipArchiveReader(data, file: file, kind: .npz)
        var total: UInt64 = 0
        for entry in archive.entries {
            let shown = ZipArchiveReader.clipped(entry.name, 120)
            guard entry.name.hasSuffix(".npy"), entry.name.count > 4 else {
                throw fail("holds member \(shown), which is not an array (numpy.savez writes only NAME.npy members)")
            }
            total += entry.uncompressedSize
        }
        guard total <= UInt64(max(maximumBytes, 0)) else {
            throw fail(
                "unpacks to \(total) bytes, more than the \(maximumBytes) RNNKit reads from an .npz file (raise maximumBytes to read it)")
        }
        var arrays: [String: NumPyArray] = [:]
        for entry in archive.entries {
            let bytes = try archive.contents(of: entry, limit: entry.uncompressedSize)
            arrays[String(entry.name.dropLast(4))] = try read(bytes, file: "\(file): \(ZipArchiveReader.clipped(entry.name, 120))")
        }
        return arrays
    }
}
