import Foundation
import RNNKit
@testable import RNNKitKeras

/// One input: a `config.json` read into a model spec and, when it describes at most 100,000
/// weights, built and compiled (as `--resume` and safetensors do with the weights they hold).
/// The input's last byte picks the `steps:` an input of None steps is built for (none, odd
/// values, the limits). Any outcome but a thrown error or a model is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasConfig(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    let choices: [Int?] = [nil, 0, -1, 1, 3, 1 << 20, (1 << 20) + 1, Int.max]
    let steps = count > 0 ? choices[Int(start[count - 1]) % choices.count] : nil
    guard let spec = try? KerasConfig.parse(bytes, file: "config.json", steps: steps) else { return 0 }
    _ = KerasConfig.weightCount(spec.layers, input: spec.inputShape)
    _ = try? Keras.buildModel(config: bytes, as: Float.self, weightsAvailable: 100_000, steps: steps)
    return 0
}
