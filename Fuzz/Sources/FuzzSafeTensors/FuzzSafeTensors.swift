import Foundation
import RNNKit

/// One input: the safetensors reader, in Float and in Double.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    _ = try? SafeTensors.decode(bytes, file: "fuzz", as: Float.self)
    _ = try? SafeTensors.decode(bytes, file: "fuzz", as: Double.self)
    return 0
}
