import Foundation
import RNNKit

/// One input: NumPy's `.npy` reader, its `.npz` reader (up to 64 MiB unpacked) and the numeric
/// CSV reader, each array read back as floats and integers. Any outcome but a thrown
/// `FileFormatError` or the values is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNumPy(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    if let array = try? NumPy.read(bytes, file: "fuzz.npy") {
        _ = array.floats(as: Float.self)
        _ = try? array.integers()
        _ = NumPy.encode(array)
    }
    if let arrays = try? NumPy.readArchive(bytes, file: "fuzz.npz", maximumBytes: 64 << 20) {
        for array in arrays.values { _ = array.floats(as: Double.self) }
    }
    _ = try? CSV.readNumbers(bytes, file: "fuzz.csv")
    _ = try? CSV.readNumbers(bytes, file: "fuzz.csv", skipNonNumericColumns: true)
    return 0
}
