import XCTest
@testable import RNNKit

/// The loss seam: what each loss accepts at `compile`, refusals of bad targets before any kernel
/// runs, values against hand-computed ones, and prediction without a loss.
final class LossTests: XCTestCase {
    func model(_ layers: [any Layer<Double>], input: FeatureShape = .sequence(steps: 3, features: 2)) throws -> Sequential<Double> {
        try Sequential<Double>(inputShape: input, layers: layers, seed: 1)
    }

    func testCompileChecksTheHead() throws {
        // Cross-entropy needs class scores; binary cross-entropy needs outputs in [0, 1].
        XCTAssertThrowsError(try model([GRU(units: 3), Dense(units: 1, activation: .softmax)]).compile(optimizer: Adam()))
        XCTAssertThrowsError(
            try model([GRU(units: 3), Dense(units: 2, activation: .softmax)])
                .compile(optimizer: Adam(), loss: BinaryCrossentropy())
        ) { error in
            XCTAssertEqual(
                "\(error)", "binary_crossentropy needs outputs in [0, 1]: end the model with Dense(…, activation: .sigmoid), not softmax")
        }
        XCTAssertNoThrow(
            try model([GRU(units: 3), Dense(units: 2, activation: .sigmoid)]).compile(optimizer: Adam(), loss: BinaryCrossentropy()))
        XCTAssertNoThrow(try model([LSTM(units: 3, returnSequences: true)]).compile(optimizer: Adam(), loss: MeanSquaredError()))
    }

    func testLabelsOutsideTheClassesAreRefusedBeforeAnyKernelRuns() throws {
        let m = try model([LSTM(units: 3), Dense(units: 4, activation: .softmax)])
        try m.compile(optimizer: Adam())
        let x = [Double](repeating: 0.5, count: 3 * 2 * 2)
        let before = m.weights
        for bad: [Int32] in [[0, 4], [-1, 0]] {
            XCTAssertThrowsError(
                try x.withUnsafeBufferPointer { x in
                    try bad.withUnsafeBufferPointer { try m.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 2) }
                }
            ) { error in
                XCTAssertTrue("\(error)".contains("outside 0..<4"), "\(error)")
            }
        }
        XCTAssertEqual(m.weights, before, "a refused batch changes nothing")
        // Value losses refuse labels, class losses refuse values.
        let regression = try model([GRU(units: 3), Dense(units: 2)])
        try regression.compile(optimizer: Adam(), loss: MeanSquaredError())
        XCTAssertThrowsError(
            try x.withUnsafeBufferPointer { x in
                try [Int32(0), 1].withUnsafeBufferPointer {
                    try regression.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 2)
                }
            })
        XCTAssertThrowsError(
            try x.withUnsafeBufferPointer { x in
                try [0.0, 1, 0, 1].withUnsafeBufferPointer { try m.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 2) }
            })
    }

    /// Hand-computed values: MSE and binary cross-entropy of a linear model with known weights.
    func testLossValuesByHand() throws {
        let m = try model([Dense(units: 2)], input: .vector(features: 1))
        try m.setWeights(["dense/kernel": Tensor(shape: [1, 2], scalars: [1, -1]), "dense/bias": Tensor(shape: [2], scalars: [0, 0])])
        try m.compile(optimizer: SGD(), loss: MeanSquaredError())
        let x: [Double] = [1, 2], targets: [Double] = [0, 0, 1, 1] // outputs (1, −1), (2, −2)
        let mse = try x.withUnsafeBufferPointer { x in
            try targets.withUnsafeBufferPointer { try m.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 2) }
        }
        // Sample 1: (1 + 1)/2 = 1; sample 2: (1 + 9)/2 = 5; mean 3.
        XCTAssertEqual(mse.loss, 3, accuracy: 1e-15)
        XCTAssertTrue(mse.accuracy.isNaN, "mean squared error has no accuracy")

        let b = try model([Dense(units: 1, activation: .sigmoid)], input: .vector(features: 1))
        try b.setWeights(["dense/kernel": Tensor(shape: [1, 1], scalars: [1]), "dense/bias": Tensor(shape: [1], scalars: [0])])
        try b.compile(optimizer: SGD(), loss: BinaryCrossentropy())
        let bce = try x.withUnsafeBufferPointer { x in
            try [1.0, 0].withUnsafeBufferPointer { try b.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 2) }
        }
        // −log σ(1) and −log(1 − σ(2)) = log(1 + e^−1), log(1 + e^2).
        XCTAssertEqual(bce.loss, (Foundation.log(1 + Foundation.exp(-1.0)) + Foundation.log(1 + Foundation.exp(2.0))) / 2, accuracy: 1e-15)
        XCTAssertEqual(bce.accuracy, 0.5)
    }

    /// `predict` needs no compile and no Dense head; sequence outputs come back batch-major.
    func testPredictWithoutCompileOrDenseHead() throws {
        let m = try model([GRU(units: 3, returnSequences: true)])
        let x: [Double] = randomValues(3 * 2 * 2, seed: 4)
        var output = [Double](repeating: 0, count: 2 * 3 * 3)
        x.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { m.predict(x: x.baseAddress!, batchSize: 2, into: $0.baseAddress!) }
        }
        let gru = m.layers[0] as! RecurrentLayer<Double>
        XCTAssertEqual(output, gru.lastStateSequence().scalars)
        let data = try TensorDataset(inputs: Tensor(shape: [2, 3, 2], scalars: x), labels: [0, 1], classCount: 2)
        XCTAssertEqual(try m.predict(data).shape, [2, 3, 3])
        XCTAssertThrowsError(try m.evaluate(data)) { XCTAssertTrue("\($0)".contains("compile"), "\($0)") }
    }

    /// A user's dataset that yields a label outside the classes: the batch is refused with a
    /// message, the kernels never index with it (valgrind found such writes before), the weights
    /// stay as they were; with one and with two workers.
    func testDatasetLabelsOutsideTheClassesAreRefused() throws {
        struct BadLabels: SequenceDataset {
            var count: Int { 4 }
            var sampleShape: FeatureShape { .sequence(steps: 3, features: 2) }
            var classCount: Int { 4 }
            func label(at index: Int) -> Int { index == 2 ? 4 : index }
            func gather<S: BLASScalar>(
                _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
            ) {
                for (b, index) in indices.enumerated() {
                    labels[b] = Int32(label(at: index))
                    for t in 0..<3 { for i in 0..<2 { x[(t * indices.count + b) * 2 + i] = S(index + t + i) / 10 } }
                }
            }
        }
        for workers in [1, 2] {
            let m = try model([LSTM(units: 3), Dense(units: 4, activation: .softmax)])
            try m.compile(optimizer: Adam())
            m.workers = workers
            let before = m.weights
            XCTAssertThrowsError(try m.fit(BadLabels(), options: FitOptions(epochs: 1, batchSize: 4))) { error in
                XCTAssertEqual("\(error)", "the data gave 1 label outside 0..<4, the classes the model predicts")
            }
            XCTAssertEqual(m.weights, before)
            XCTAssertThrowsError(try m.evaluate(BadLabels()))
        }
    }

    /// Sample indices from the caller are checked before any sample is gathered.
    func testSampleIndicesOutsideTheDatasetAreRefused() throws {
        let m = try model([GRU(units: 3), Dense(units: 4, activation: .softmax)])
        try m.compile(optimizer: Adam())
        let data = try TensorDataset(inputs: Tensor(shape: [4, 3, 2], repeating: 0.5), labels: [0, 1, 2, 3], classCount: 4)
        for bad in [[0, 4], [-1], []] {
            XCTAssertThrowsError(try bad.withUnsafeBufferPointer { try m.trainStep(data, indices: $0) }, "\(bad)")
        }
    }
}
