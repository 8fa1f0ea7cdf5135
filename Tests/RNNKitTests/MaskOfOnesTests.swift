import XCTest
@testable import RNNKit

/// A mask that masks nothing changes nothing: a model behind `Masking` whose value no step takes
/// trains to the same bits as the model without it, for every cell, on one worker and on two.
final class MaskOfOnesTests: XCTestCase {
    let steps = 6, features = 5, classes = 3, samples = 48

    /// Every cell kind, small (the small kernels' fused paths) and over 64 units (the packed paths).
    var cells: [(String, () -> any Layer<Float>)] {
        [
            ("SimpleRNN(tanh) 10", { SimpleRNN<Float>(units: 10) }),
            ("SimpleRNN(relu) 9", { SimpleRNN<Float>(units: 9, activation: .relu) }),
            ("SimpleRNN(tanh) 80", { SimpleRNN<Float>(units: 80) }),
            ("LSTM 12", { LSTM<Float>(units: 12) }),
            ("LSTM 80", { LSTM<Float>(units: 80) }),
            ("GRU 12", { GRU<Float>(units: 12) }),
            ("GRU 80", { GRU<Float>(units: 80) }),
            ("GRU reset-before 12", { GRU<Float>(units: 12, resetAfter: false) }),
            ("LSTM hard sigmoid 7", { LSTM<Float>(units: 7, recurrentActivation: .hardSigmoid) }),
        ]
    }

    func trainedWeights(_ recurrent: any Layer<Float>, masked: Bool, workers: Int, data: TensorDataset<Float>) throws -> [String: [UInt32]]
    {
        let layers: [any Layer<Float>] =
            (masked ? [Masking<Float>(maskValue: -7)] : []) + [recurrent, Dense<Float>(units: classes, activation: .softmax)]
        let model = try Sequential<Float>(inputShape: .sequence(steps: steps, features: features), layers: layers, seed: 4)
        try model.compile(optimizer: Adam(learningRate: 0.01))
        model.workers = workers
        _ = try model.fit(data, options: FitOptions(epochs: 2, batchSize: 16, validationSplit: 0, seed: 9))
        return model.weights.mapValues { $0.scalars.map(\.bitPattern) }
    }

    func testMaskOfOnesGivesTheSameBitsAsNoMask() throws {
        var generator = RandomGenerator(seed: 21)
        let x = (0..<(samples * steps * features)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) }
        let labels = (0..<samples).map { _ in Int(generator.next() % UInt64(classes)) }
        let data = try TensorDataset(inputs: Tensor(shape: [samples, steps, features], scalars: x), labels: labels, classCount: classes)
        for (name, cell) in cells {
            for workers in [1, 2] {
                let plain = try trainedWeights(cell(), masked: false, workers: workers, data: data)
                let masked = try trainedWeights(cell(), masked: true, workers: workers, data: data)
                XCTAssertEqual(Set(plain.keys), Set(masked.keys), name)
                for (weight, bits) in plain {
                    XCTAssertEqual(masked[weight], bits, "\(name), \(workers) worker(s): \(weight) differs with a mask of ones")
                }
            }
        }
    }
}
