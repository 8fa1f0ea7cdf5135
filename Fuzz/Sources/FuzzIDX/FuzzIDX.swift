import Foundation
import RNNKit

/// One input: the IDX images and labels parsers on the bytes as they are (raw or gzip). Any
/// outcome but a thrown `FileFormatError` or a result is a bug: a trap, an overflow, a read out of
/// bounds (AddressSanitizer), or memory past libFuzzer's `-rss_limit_mb`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    _ = try? IDX.parseImages(bytes, file: "fuzz")
    _ = try? IDX.parseLabels(bytes, file: "fuzz")
    return 0
}
