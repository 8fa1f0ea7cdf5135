import Foundation
import RNNKit
@testable import RNNKitKeras

/// One input: a `config.json` read into a model spec and, when it describes at most 100,000
/// weights, built and compiled (as `--resume` and safetensors do with the weights they hold).
/// Any outcome but a thrown error or a model is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasConfig(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    guard let spec = try? KerasConfig.parse(bytes, file: "config.json") else { return 0 }
    _ = KerasConfig.weightCount(spec.layers, input: spec.inputShape)
    _ = try? Keras.buildModel(config: bytes, as: Float.self, weightsAvailable: 100_000)
    return 0
}
