import Foundation
import XCTest
@testable import RNNKit

/// Each `ModelError` case is thrown where the data or the call is wrong in its way, with the
/// figures that say how, and its message reads as a sentence naming them.
final class ModelErrorTests: XCTestCase {
    /// SimpleRNN(4) → Dense(3, softmax) over 5 steps of 2 features, compiled unless asked not to.
    private func model(compiled: Bool = true, loss: any Loss = SparseCategoricalCrossentropy()) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 2),
            layers: [SimpleRNN(units: 4), Dense(units: 3, activation: .softmax)])
        if compiled { try model.compile(optimizer: SGD(), loss: loss) }
        return model
    }

    /// Runs one raw training step of `batch` samples with `labels` (and `lengths`).
    private func step(_ model: Sequential<Float>, labels: [Int32], lengths: [Int32]? = nil) throws {
        let x = [Float](repeating: 0.5, count: 5 * labels.count * 2)
        try x.withUnsafeBufferPointer { x in
            try labels.withUnsafeBufferPointer { labels in
                if let lengths {
                    try lengths.withUnsafeBufferPointer {
                        _ = try model.trainStep(
                            x: x.baseAddress!, labels: labels.baseAddress!, lengths: $0.baseAddress!, batchSize: labels.count)
                    }
                } else {
                    _ = try model.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: labels.count)
                }
            }
        }
    }

    private func dataset(count: Int = 4, steps: Int = 5, classes: Int = 3) throws -> TensorDataset<Float> {
        try TensorDataset(
            inputs: Tensor(shape: [count, steps, 2], scalars: [Float](repeating: 0.25, count: count * steps * 2)),
            labels: (0..<count).map { $0 % classes }, classCount: classes)
    }

    private func assertThrows(
        _ expected: ModelError, _ message: String, file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> Void
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? ModelError, expected, file: file, line: line)
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    /// An orthogonal initialiser needs a matrix: on a vector bias (LSTM's, Dense's) the layer
    /// refuses to build, naming it; on GRU's `[2, 3·units]` reset-after bias it draws one. (A
    /// crafted Keras config found the trap this replaced.)
    func testAnOrthogonalBiasNeedsAMatrix() throws {
        let shape = FeatureShape.sequence(steps: 3, features: 2)
        for layer in [LSTM<Float>(units: 3, biasInitializer: .orthogonal()), Dense<Float>(units: 3, biasInitializer: .orthogonal())]
            as [any Layer<Float>]
        {
            XCTAssertThrowsError(try Sequential<Float>(inputShape: shape, layers: [layer])) { error in
                XCTAssertTrue("\(error)".contains("bias initializer orthogonal(gain: 1.0) needs a matrix"), "\(error)")
            }
        }
        XCTAssertNoThrow(try Sequential<Float>(inputShape: shape, layers: [GRU(units: 3, biasInitializer: .orthogonal())]))
    }

    func testUncompiledModelsSayToCompile() throws {
        let model = try model(compiled: false)
        assertThrows(.notCompiled(action: "training"), "compile the model before training it") {
            try step(model, labels: [0, 1])
        }
        assertThrows(.notCompiled(action: "fitting"), "compile the model before fitting it") {
            try model.fit(dataset())
        }
        assertThrows(.notCompiled(action: "evaluating or fitting"), "compile the model before evaluating or fitting it") {
            _ = try model.evaluate(dataset())
        }
    }

    func testALabelOutsideTheClassesIsLabelOutOfRange() throws {
        let model = try model()
        assertThrows(
            .labelOutOfRange(label: 3, position: 1, classes: 3),
            "label 3 at position 1 is outside 0..<3, the classes the model predicts"
        ) {
            try step(model, labels: [2, 3])
        }
        assertThrows(
            .labelOutOfRange(label: -1, position: 0, classes: 3),
            "label -1 at position 0 is outside 0..<3, the classes the model predicts"
        ) {
            try step(model, labels: [-1, 0])
        }
    }

    /// A dataset whose labels are not checked by its initialiser: the kernels skip the rows and
    /// the model refuses the batch, unchanged.
    func testADatasetsLabelsOutsideTheClassesAreLabelsOutOfRange() throws {
        struct StrayLabels: SequenceDataset {
            var count: Int { 3 }
            var sampleShape: FeatureShape { .sequence(steps: 5, features: 2) }
            var classCount: Int { 3 }
            func label(at index: Int) -> Int { index == 0 ? 0 : 7 }
            func gather<S: BLASScalar>(
                _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
            ) {
                x.update(repeating: S(0.5), count: 5 * indices.count * 2)
                for (b, index) in indices.enumerated() { labels[b] = Int32(label(at: index)) }
            }
        }
        let model = try model(), before = model.weights
        assertThrows(.labelsOutOfRange(count: 2, classes: 3), "the data gave 2 labels outside 0..<3, the classes the model predicts") {
            _ = try [0, 1, 2].withUnsafeBufferPointer { try model.trainStep(StrayLabels(), indices: $0) }
        }
        XCTAssertEqual(model.weights, before)
        XCTAssertEqual(
            "\(ModelError.labelsOutOfRange(count: 1, classes: 3))", "the data gave 1 label outside 0..<3, the classes the model predicts")
    }

    func testALengthOutsideTheStepsIsLengthOutOfRange() throws {
        let model = try model()
        assertThrows(
            .lengthOutOfRange(length: 6, position: 1, steps: 5),
            "length 6 at position 1 is outside 1...5, the steps the model reads"
        ) {
            try step(model, labels: [0, 1], lengths: [5, 6])
        }
        assertThrows(
            .lengthOutOfRange(length: 0, position: 0, steps: 5),
            "length 0 at position 0 is outside 1...5, the steps the model reads"
        ) {
            try step(model, labels: [0, 1], lengths: [0, 3])
        }
    }

    func testIndicesAndRangesOutsideTheDatasetAreOutOfRange() throws {
        let model = try model(), data = try dataset()
        assertThrows(.indexOutOfRange(index: 4, position: 2, count: 4), "sample index 4 at position 2 is outside the dataset's 0..<4") {
            _ = try [0, 1, 4].withUnsafeBufferPointer { try model.trainStep(data, indices: $0) }
        }
        assertThrows(.rangeOutOfRange(2..<6, count: 4), "samples 2..<6 are outside the dataset's 0..<4") {
            _ = try model.evaluate(data, range: 2..<6)
        }
    }

    func testDataOfAnotherShapeOrClassCountIsAMismatch() throws {
        let model = try model()
        assertThrows(
            .sampleShapeMismatch(data: .sequence(steps: 6, features: 2), model: .sequence(steps: 5, features: 2)),
            "the data's samples are (None, 6, 2), the model takes (None, 5, 2)"
        ) {
            _ = try model.evaluate(dataset(steps: 6))
        }
        assertThrows(.classCountMismatch(data: 4, model: .vector(features: 3)), "the data has 4 classes, the model predicts (None, 3)") {
            _ = try model.evaluate(dataset(classes: 4))
        }
    }

    func testALossThatCannotServeTheHeadOrTheTargetsSaysWhatItNeeds() throws {
        let model = try model(compiled: false)
        assertThrows(
            .lossDoesNotFitHead(
                loss: "binary_crossentropy",
                needs: "outputs in [0, 1]: end the model with Dense(…, activation: .sigmoid), not softmax"),
            "binary_crossentropy needs outputs in [0, 1]: end the model with Dense(…, activation: .sigmoid), not softmax"
        ) {
            try model.compile(optimizer: SGD(), loss: BinaryCrossentropy())
        }
        let values = try Sequential<Float>(inputShape: .sequence(steps: 5, features: 2), layers: [SimpleRNN(units: 3)])
        try values.compile(optimizer: SGD(), loss: MeanSquaredError())
        assertThrows(
            .targetsMismatch(loss: "mean_squared_error", needs: .values, fromDataset: false),
            "mean_squared_error needs target values, not class labels"
        ) {
            try step(values, labels: [0, 1])
        }
        assertThrows(
            .targetsMismatch(loss: "mean_squared_error", needs: .values, fromDataset: true),
            "mean_squared_error needs target values; this dataset gives class labels (RaggedDataset(targets:) gives values)"
        ) {
            _ = try values.evaluate(dataset())
        }
        let x = [Float](repeating: 0, count: 10), targets = [Float](repeating: 0, count: 6)
        let classes = try self.model()
        assertThrows(
            .targetsMismatch(loss: "sparse_categorical_crossentropy", needs: .classIndices, fromDataset: false),
            "sparse_categorical_crossentropy needs class labels, not target values"
        ) {
            _ = try classes.trainStep(x: x, targets: targets, batchSize: 1)
        }
    }

    func testOptimizerStateOfTheWrongShapeIsAMismatch() throws {
        let model = try model()
        let adam = Adam<Float>()
        let count = model.parameterCount
        assertThrows(
            .optimizerStateMismatch(optimizer: "adam", slotLengths: [3], iterations: 1, neededSlots: 2, neededLength: count),
            "adam state has 1 slots of [3] values; the model needs 2 of \(count)"
        ) {
            try adam.restore(iterations: 1, slots: [[0, 0, 0]], for: model.arena)
        }
        let fits = [[Float]](repeating: [Float](repeating: 0, count: count), count: 2)
        assertThrows(
            .optimizerStateMismatch(optimizer: "adam", slotLengths: [count, count], iterations: -1, neededSlots: 2, neededLength: count),
            "adam state has 2 slots of [\(count), \(count)] values; the model needs 2 of \(count), and an update count ≥ 0, not -1"
        ) {
            try adam.restore(iterations: -1, slots: fits, for: model.arena)
        }
        XCTAssertNoThrow(try adam.restore(iterations: 3, slots: fits, for: model.arena))
    }

    func testSettingsThatCannotWorkStayInvalidConfiguration() throws {
        assertThrows(.invalidConfiguration("a Sequential model needs at least one layer"), "a Sequential model needs at least one layer") {
            _ = try Sequential<Float>(inputShape: .vector(features: 3), layers: [])
        }
        assertThrows(.invalidConfiguration("validation split must be in [0, 1), got 1.0"), "validation split must be in [0, 1), got 1.0") {
            _ = try ValidationSplit(count: 10, fraction: 1)
        }
        let model = try model()
        assertThrows(.invalidConfiguration("batch size must be positive, got 0"), "batch size must be positive, got 0") {
            _ = try model.evaluate(dataset(), batchSize: 0)
        }
    }
}
