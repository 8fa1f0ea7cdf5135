import Foundation
import RNNKit
@testable import RNNKitKeras

/// The model of the shared fixture `keras_lstm` (LSTM(8) → Dense(10) on MNIST's rows, Adam), whose
/// `.weights.h5` seeds the corpus; built once.
nonisolated(unsafe) let model: Sequential<Float> = {
    let model = try! Sequential<Float>(
        inputShape: .sequence(steps: 28, features: 28),
        layers: [LSTM(units: 8), Dense(units: 10, activation: .softmax)], seed: 0)
    try! model.compile(optimizer: Adam<Float>(), loss: CategoricalCrossentropy())
    return model
}()

/// One input: an HDF5 weights file held in memory, audited and read into the model with its
/// optimiser state. Any outcome but a thrown `FileFormatError` or loaded weights is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHDF5Weights(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    guard let file = try? HDF5File(reading: bytes, name: "fuzz.weights.h5") else { return 0 }
    _ = try? KerasWeightsLayout.read(file, into: model, optimizer: model.optimizer as? any StatefulOptimizer<Float>)
    return 0
}
