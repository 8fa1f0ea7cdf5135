import CGzip
import Foundation

/// A zip archive read defensively: a `.keras` or `.npz` file comes from anywhere, so its
/// structure is checked as a whole before any member is unpacked, and a member is never unpacked
/// past the size it declares. Not API: RNNKit's `.npz` reader and RNNKitKeras's `.keras` reader
/// share it (`package` access).
///
/// Checked when the archive is opened: the end-of-central-directory record, the central directory
/// and every local header lie inside the file, in that order; no two members share bytes; names
/// are unique; each member is stored or deflated, not encrypted, and claims no more than deflate
/// can produce from its bytes; the entry count is capped (by `Kind`). Zip64 archives are refused. Checked when a member is read: its size against the caller's limit,
/// inflation stopped at the declared size, and its CRC-32.
package struct ZipArchiveReader {
    /// What kind of file the archive is: the format its errors carry, how they name such a file,
    /// and how many members it may hold.
    package struct Kind: Sendable {
        package let format: FileFormatError.Format
        /// The file's kind in a sentence: `a .keras file`.
        package let name: String
        package let maximumEntries: Int

        /// A `.keras` file has three members; Keras may add a few (assets, a model card).
        package static let keras = Kind(format: .kerasArchive, name: "a .keras file", maximumEntries: 64)
        /// NumPy's `savez` writes one member an array; a data set has a handful.
        package static let npz = Kind(format: .npz, name: "an .npz file", maximumEntries: 1_024)
    }

    package struct Entry {
        package let name: String
        package let method: UInt16
        package let crc: UInt32
        package let compressedSize: UInt64
        package let uncompressedSize: UInt64
        package let headerOffset: UInt64
        /// Where the member's stored bytes start and end in the archive.
        package let dataStart: UInt64
        package var dataEnd: UInt64 { dataStart + compressedSize }
    }

    enum Limits {
        static let nameLength = 1_024
    }

    package let file: String
    package let kind: Kind
    private let data: Data
    /// The members in the order of the central directory.
    package let entries: [Entry]

    /// Reads the structure of the archive in `data`, a `kind` file; `file` names it in errors.
    /// - Throws: `FileFormatError` of `kind`'s format saying what is wrong with the structure.
    package init(_ data: Data, file: String, kind: Kind) throws {
        self.file = file
        self.kind = kind
        self.data = data
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: kind.format, reason: reason) }
        let count = UInt64(data.count)
        guard count >= 22 else { throw fail("is a damaged or truncated zip archive (shorter than its end record)") }

        // The end record: its signature, then a comment that runs exactly to the end of the file.
        var end: UInt64?
        var position = count - 22
        let lowest = count > 22 + 65_535 ? count - 22 - 65_535 : 0
        while true {
            if Self.u32(data, position) == 0x0605_4B50, UInt64(Self.u16(data, position + 20)) == count - position - 22 {
                end = position
                break
            }
            if position == lowest { break }
            position -= 1
        }
        guard let end else { throw fail("is a damaged or truncated zip archive (it has no end-of-central-directory record)") }
        let disk = Self.u16(data, end + 4), directoryDisk = Self.u16(data, end + 6)
        let onDisk = Self.u16(data, end + 8), total = Self.u16(data, end + 10)
        let directorySize = UInt64(Self.u32(data, end + 12)), directoryOffset = UInt64(Self.u32(data, end + 16))
        if total == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw fail("is a zip64 archive (for over 4 GiB or 65,535 members), which RNNKit does not read as \(kind.name)")
        }
        guard disk == 0, directoryDisk == 0, onDisk == total else { throw fail("is a multi-part zip archive") }
        guard Int(total) <= kind.maximumEntries else {
            throw fail("has \(total) members; at most \(kind.maximumEntries) are read from \(kind.name)")
        }
        guard directoryOffset <= end, directorySize <= end - directoryOffset else {
            throw fail("is a damaged zip archive (its central directory lies outside the file)")
        }

        // The central directory.
        var entries: [Entry] = []
        var names: Set<String> = []
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<Int(total) {
            guard directoryEnd - cursor >= 46, Self.u32(data, cursor) == 0x0201_4B50 else {
                throw fail("is a damaged zip archive (central directory entry \(index) is missing or cut short)")
            }
            let flags = Self.u16(data, cursor + 8), method = Self.u16(data, cursor + 10)
            let crc = Self.u32(data, cursor + 16)
            let compressed = UInt64(Self.u32(data, cursor + 20)), uncompressed = UInt64(Self.u32(data, cursor + 24))
            let nameLength = UInt64(Self.u16(data, cursor + 28)), extraLength = UInt64(Self.u16(data, cursor + 30))
            let commentLength = UInt64(Self.u16(data, cursor + 32))
            let headerOffset = UInt64(Self.u32(data, cursor + 42))
            let entryLength = 46 + nameLength + extraLength + commentLength
            guard entryLength <= directoryEnd - cursor else {
                throw fail("is a damaged zip archive (central directory entry \(index) runs past the directory)")
            }
            guard nameLength <= UInt64(Limits.nameLength) else { throw fail("has a member whose name is \(nameLength) bytes long") }
            let name = String(decoding: Self.bytes(data, cursor + 46, nameLength), as: UTF8.self)
            let place = "member \(Self.clipped(name, 120))"
            if compressed == 0xFFFF_FFFF || uncompressed == 0xFFFF_FFFF || headerOffset == 0xFFFF_FFFF {
                throw fail("\(place) uses zip64 sizes (for over 4 GiB), which RNNKit does not read as \(kind.name)")
            }
            guard flags & 0x41 == 0 else { throw fail("\(place) is encrypted") }
            guard method == 0 || method == 8 else {
                throw fail("\(place) is compressed with method \(method); RNNKit reads stored and deflated members")
            }
            guard names.insert(name).inserted else { throw fail("holds two members named \(Self.clipped(name, 120))") }
            if method == 0, compressed != uncompressed {
                throw fail("\(place) is stored uncompressed but declares \(compressed) bytes stored and \(uncompressed) unpacked")
            }
            if uncompressed / UInt64(Gzip.maximumRatio) > compressed {
                throw fail("\(place) declares \(uncompressed) bytes, more than its \(compressed) compressed bytes can hold")
            }
            // Its local header, and the bytes it stores, before the central directory.
            guard headerOffset <= directoryOffset, directoryOffset - headerOffset >= 30,
                Self.u32(data, headerOffset) == 0x0403_4B50
            else { throw fail("is a damaged zip archive (\(place)'s local header is not where the directory says)") }
            let localNameLength = UInt64(Self.u16(data, headerOffset + 26)), localExtra = UInt64(Self.u16(data, headerOffset + 28))
            let dataStart = headerOffset + 30 + localNameLength + localExtra
            guard dataStart <= directoryOffset, compressed <= directoryOffset - dataStart else {
                throw fail("is a damaged zip archive (\(place)'s bytes run into the central directory or past the file)")
            }
            guard localNameLength == nameLength,
                Self.bytes(data, headerOffset + 30, nameLength).elementsEqual(Self.bytes(data, cursor + 46, nameLength))
            else {
                throw fail("is a damaged zip archive (\(place)'s local header names another member)")
            }
            entries.append(
                Entry(
                    name: name, method: method, crc: crc, compressedSize: compressed, uncompressedSize: uncompressed,
                    headerOffset: headerOffset, dataStart: dataStart))
            cursor += entryLength
        }
        // No two members share bytes: each ends before the next one's header starts.
        let ordered = entries.sorted { $0.headerOffset < $1.headerOffset }
        for (first, second) in zip(ordered, ordered.dropFirst()) where first.dataEnd > second.headerOffset {
            throw fail(
                "is a damaged or crafted zip archive (members \(Self.clipped(first.name, 60)) and \(Self.clipped(second.name, 60)) share bytes)"
            )
        }
        self.entries = entries
    }

    /// The member called `name`, or nil when the archive has none.
    package func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// Unpacks `entry`: refused when it declares more than `limit` bytes; inflation stops at the
    /// declared size, and the result's length and CRC-32 must match the directory's.
    package func contents(of entry: Entry, limit: UInt64) throws -> Data {
        func fail(_ reason: String) -> FileFormatError {
            FileFormatError(file: file, format: kind.format, reason: "member \(Self.clipped(entry.name, 120)) \(reason)")
        }
        guard entry.uncompressedSize <= limit else {
            throw fail("declares \(entry.uncompressedSize) bytes, more than the \(limit) RNNKit reads for it")
        }
        let stored = data.subdata(in: data.startIndex + Int(entry.dataStart)..<data.startIndex + Int(entry.dataEnd))
        var output: Data
        if entry.method == 0 {
            output = stored
        } else {
            output = Data(count: Int(entry.uncompressedSize))
            var stream = z_stream()
            // −15: a raw deflate stream, as zip members hold, with no zlib header.
            guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw fail("cannot be unpacked (zlib could not start)")
            }
            defer { inflateEnd(&stream) }
            let status: Int32 = stored.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { out in
                    stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: UInt8.self).baseAddress)
                    stream.avail_in = uInt(input.count)
                    stream.next_out = out.bindMemory(to: UInt8.self).baseAddress
                    stream.avail_out = uInt(out.count)
                    let status = inflate(&stream, Z_FINISH)
                    guard status != Z_STREAM_END, stream.avail_out == 0 else { return status }
                    // The declared size is filled: one more byte tells a stream that ends here from one that goes on.
                    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { spare in
                        stream.next_out = spare.baseAddress
                        stream.avail_out = 1
                        let next = inflate(&stream, Z_FINISH)
                        return stream.avail_out == 0 ? Int32(Z_MEM_ERROR) : next
                    }
                }
            }
            switch status {
            case Z_STREAM_END where UInt64(stream.total_out) == entry.uncompressedSize: break
            case Z_STREAM_END: throw fail("unpacks to \(stream.total_out) bytes, not the \(entry.uncompressedSize) it declares")
            case Z_MEM_ERROR: throw fail("unpacks to more than the \(entry.uncompressedSize) bytes it declares")
            case Z_BUF_ERROR: throw fail("is cut short: its compressed stream ends before its end marker")
            default: throw fail("cannot be unpacked: its compressed stream is corrupt")
            }
        }
        let checksum = output.withUnsafeBytes { bytes in
            UInt32(crc32(0, bytes.bindMemory(to: UInt8.self).baseAddress, uInt(bytes.count)))
        }
        guard checksum == entry.crc else {
            throw fail(
                String(
                    format: "fails its CRC-32 check (the directory says %08x, its bytes give %08x): the file is damaged", entry.crc,
                    checksum))
        }
        return output
    }

    /// `text` cut to `limit` characters, for a member's name in a message.
    static func clipped(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    // MARK: Little-endian fields, read only inside the file (callers check the bounds first;
    // reads past the end give zeros, which no signature matches).

    private static func u16(_ data: Data, _ offset: UInt64) -> UInt16 {
        guard offset <= UInt64(data.count), UInt64(data.count) - offset >= 2 else { return 0 }
        let i = data.startIndex + Int(offset)
        return UInt16(data[i]) | UInt16(data[i + 1]) << 8
    }

    private static func u32(_ data: Data, _ offset: UInt64) -> UInt32 {
        guard offset <= UInt64(data.count), UInt64(data.count) - offset >= 4 else { return 0 }
        let i = data.startIndex + Int(offset)
        return UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
    }

    private static func bytes(_ data: Data, _ offset: UInt64, _ count: UInt64) -> Data.SubSequence {
        guard offset <= UInt64(data.count), UInt64(data.count) - offset >= count else { return data[data.endIndex...] }
        let i = data.startIndex + Int(offset)
        return data[i..<i + Int(count)]
    }
}
