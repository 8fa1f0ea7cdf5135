import Foundation
import RNNKit
import RNNKitKeras
@_spi(Fuzzing) import TrainerSupport

/// One input: a `--resume` checkpoint (safetensors with the run's metadata) decoded and checked,
/// and the model its Keras config describes built when the checkpoint holds its weights (at most
/// 100,000). Any outcome but a thrown error or a checkpoint is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    guard let checkpoint = try? Checkpoint.decode(bytes, file: "checkpoint.safetensors") else { return 0 }
    let weights = checkpoint.weights.values.reduce(0) { $0 + $1.scalars.count }
    if let config = checkpoint.kerasConfig, weights <= 100_000 {
        _ = try? Keras.buildModel(config: config, as: Float.self, weightsAvailable: weights)
    }
    return 0
}
