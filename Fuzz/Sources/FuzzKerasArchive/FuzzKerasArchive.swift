import Foundation
@testable import RNNKit

/// One input: a `.keras` zip through RNNKit's archive reader, every member unpacked (up to 1 MiB
/// each). Any outcome but a thrown `FileFormatError` or the members is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasArchive(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    guard let archive = try? ZipArchiveReader(bytes, file: "fuzz.keras", kind: .keras) else { return 0 }
    for entry in archive.entries { _ = try? archive.contents(of: entry, limit: 1 << 20) }
    return 0
}
