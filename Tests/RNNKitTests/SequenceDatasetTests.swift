import XCTest
@testable import RNNKit

/// Datasets that carry per-sample lengths, ragged datasets, `fit(validationData:)` and the
/// dataset checks that throw.
final class SequenceDatasetTests: XCTestCase {
    private let steps = 5, features = 3, classes = 3

    private func model(steps: Int? = nil, workers: Int = 1) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps ?? self.steps, features: features),
            layers: [SimpleRNN(units: 4, returnSequences: true), GRU(units: 4), Dense(units: classes, activation: .softmax)],
            seed: 21)
        try model.compile(optimizer: SGD(learningRate: 0.1))
        model.workers = workers
        return model
    }

    /// `n` samples batch-major, the same time-major, labels and lengths.
    private func samples(_ n: Int, seed: UInt64) -> (batchMajor: [Float], timeMajor: [Float], labels: [Int], lengths: [Int]) {
        var generator = RandomGenerator(seed: seed)
        let x = (0..<(n * steps * features)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) }
        var timeMajor = [Float](repeating: 0, count: x.count)
        for b in 0..<n {
            for t in 0..<steps {
                for i in 0..<features { timeMajor[(t * n + b) * features + i] = x[(b * steps + t) * features + i] }
            }
        }
        let labels = (0..<n).map { _ in Int(generator.next() % UInt64(classes)) }
        let lengths = (0..<n).map { b in 1 + (b * 3) % steps }
        return (x, timeMajor, labels, lengths)
    }

    /// Lengths in a dataset give the loss, gradients, updated weights, evaluation and
    /// predictions of the raw-batch `lengths:` path, with one worker or two.
    func testDatasetLengthsMatchRawBatchLengths() throws {
        let n = 7
        let (x, timeMajor, labels, lengths) = samples(n, seed: 3)
        let data = try TensorDataset(
            inputs: Tensor(shape: [n, steps, features], scalars: x), labels: labels, classCount: classes, lengths: lengths)
        let labels32 = labels.map(Int32.init), lengths32 = lengths.map(Int32.init)
        for workers in [1, 2] {
            let raw = try model(workers: workers), fromData = try model(workers: workers)
            let rawMetrics = try timeMajor.withUnsafeBufferPointer { x in
                try labels32.withUnsafeBufferPointer { labels in
                    try lengths32.withUnsafeBufferPointer { lengths in
                        try raw.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, lengths: lengths.baseAddress!, batchSize: n)
                    }
                }
            }
            let indices = Array(0..<n)
            let dataMetrics = try indices.withUnsafeBufferPointer { try fromData.trainStep(data, indices: $0) }
            XCTAssertEqual(dataMetrics.loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
            XCTAssertEqual(dataMetrics.accuracy, rawMetrics.accuracy, "workers \(workers)")
            XCTAssertLessThan(relativeError(fromData.arena.gradients.array, raw.arena.gradients.array), 1e-5, "workers \(workers)")
            XCTAssertLessThan(relativeError(fromData.arena.values.array, raw.arena.values.array), 1e-6, "workers \(workers)")

            let output = Buffer<Float>(count: n * classes)
            timeMajor.withUnsafeBufferPointer { x in
                lengths32.withUnsafeBufferPointer { lengths in
                    raw.predict(x: x.baseAddress!, lengths: lengths.baseAddress!, batchSize: n, into: output.pointer)
                }
            }
            let predicted = try fromData.predict(data, batchSize: 4)
            XCTAssertLessThan(relativeError(predicted.scalars, output.array), 1e-5, "workers \(workers)")

            let rawLoss = try timeMajor.withUnsafeBufferPointer { x in
                try labels32.withUnsafeBufferPointer { labels in
                    try lengths32.withUnsafeBufferPointer { lengths in
                        try raw.computeGradients(
                            x: x.baseAddress!, labels: labels.baseAddress!, lengths: lengths.baseAddress!, batchSize: n)
                    }
                }
            }
            XCTAssertEqual(try fromData.evaluate(data, batchSize: 3).loss, rawLoss.loss, accuracy: 1e-5, "workers \(workers)")
        }
        // The lengths matter: without them the padded steps count.
        let unmasked = try TensorDataset(inputs: Tensor(shape: [n, steps, features], scalars: x), labels: labels, classCount: classes)
        let model = try model()
        XCTAssertNotEqual(try model.evaluate(unmasked).loss, try model.evaluate(data).loss)
    }

    func testDatasetLengthOutsideStepsThrows() throws {
        let (x, _, labels, _) = samples(2, seed: 4)
        let inputs = Tensor<Float>(shape: [2, steps, features], scalars: x)
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: labels, classCount: classes, lengths: [3, 6])) {
            XCTAssertEqual($0 as? ModelError, .lengthOutOfRange(length: 6, position: 1, steps: steps))
        }
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: labels, classCount: classes, lengths: [0, 2])) {
            XCTAssertEqual($0 as? ModelError, .lengthOutOfRange(length: 0, position: 0, steps: steps))
        }
        // A custom dataset's lengths are checked by the model, before any kernel runs.
        struct Bad: SequenceDataset {
            let inner: TensorDataset<Float>
            var count: Int { inner.count }
            var sampleShape: FeatureShape { inner.sampleShape }
            var classCount: Int { inner.classCount }
            func label(at index: Int) -> Int { inner.label(at: index) }
            func length(at index: Int) -> Int? { index == 1 ? 9 : nil }
            func gather<S: BLASScalar>(
                _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
            ) {
                inner.gather(indices, into: x, labels: labels)
            }
        }
        let bad = Bad(inner: try TensorDataset(inputs: inputs, labels: labels, classCount: classes))
        let model = try model()
        XCTAssertThrowsError(try model.evaluate(bad)) {
            XCTAssertEqual($0 as? ModelError, .lengthOutOfRange(length: 9, position: 1, steps: steps))
        }
        XCTAssertThrowsError(try model.predict(bad)) {
            XCTAssertEqual($0 as? ModelError, .lengthOutOfRange(length: 9, position: 1, steps: steps))
        }
        XCTAssertThrowsError(try [1, 0].withUnsafeBufferPointer { try model.trainStep(bad, indices: $0) }) {
            XCTAssertEqual($0 as? ModelError, .lengthOutOfRange(length: 9, position: 0, steps: steps))
        }
    }

    private func raggedSequences(_ n: Int, seed: UInt64) -> (sequences: [[[Float]]], labels: [Int]) {
        var generator = RandomGenerator(seed: seed)
        let sequences = (0..<n).map { b in
            (0..<(1 + (b * 7) % steps)).map { _ in (0..<features).map { _ in Float(generator.nextUnitDouble() * 2 - 1) } }
        }
        return (sequences, (0..<n).map { _ in Int(generator.next() % UInt64(classes)) })
    }

    func testRaggedDatasetKeepsLengthsAndPadsInternally() throws {
        let (sequences, labels) = raggedSequences(9, seed: 5)
        let data = try RaggedDataset(sequences: sequences, labels: labels, classCount: classes)
        XCTAssertEqual(data.steps, sequences.map(\.count).max())
        XCTAssertEqual(data.sampleShape, .sequence(steps: data.steps, features: features))
        XCTAssertEqual(data.lengths, sequences.map(\.count))
        for index in 0..<data.count {
            XCTAssertEqual(data.length(at: index), sequences[index].count)
            XCTAssertEqual(data.sequence(at: index), sequences[index])
        }
        // Padding to more steps changes nothing the model computes: it is masked.
        let longer = try RaggedDataset(sequences: sequences, labels: labels, classCount: classes, steps: data.steps + 4)
        let short = try model(steps: data.steps), long = try model(steps: data.steps + 4)
        XCTAssertEqual(short.arena.values.array, long.arena.values.array)
        XCTAssertLessThan(relativeError(try long.predict(longer).scalars, try short.predict(data).scalars), 1e-6)
        XCTAssertEqual(try long.evaluate(longer).loss, try short.evaluate(data).loss, accuracy: 1e-6)

        let tokens = try RaggedDataset(tokens: [[3, 1, 4], [1], [5, 9]], labels: [0, 2, 1], classCount: 3)
        XCTAssertEqual(tokens.sampleShape, .sequence(steps: 3, features: 1))
        XCTAssertEqual(tokens.lengths, [3, 1, 2])
        XCTAssertEqual(tokens.sequence(at: 2), [[5], [9]])
    }

    func testRaggedDatasetTrainsAlikeWithOneAndTwoWorkers() throws {
        let (sequences, labels) = raggedSequences(37, seed: 6)
        let data = try RaggedDataset(sequences: sequences, labels: labels, classCount: classes)
        let options = FitOptions(epochs: 2, batchSize: 8, validationSplit: 0.2, seed: 2)
        let one = try model(steps: data.steps, workers: 1), two = try model(steps: data.steps, workers: 2)
        let historyOne = try one.fit(data, options: options), historyTwo = try two.fit(data, options: options)
        for (a, b) in zip(historyOne.loss + historyOne.valLoss, historyTwo.loss + historyTwo.valLoss) {
            XCTAssertEqual(a, b, accuracy: 1e-5)
        }
        XCTAssertEqual(historyOne.valLoss.count, 2)
        XCTAssertLessThan(relativeError(two.arena.values.array, one.arena.values.array), 1e-5)
        XCTAssertLessThan(relativeError(try two.predict(data).scalars, try one.predict(data).scalars), 1e-5)
    }

    func testValidationDataGivesValidationKeys() throws {
        let (sequences, labels) = raggedSequences(20, seed: 7)
        let training = try RaggedDataset(sequences: sequences, labels: labels, classCount: classes, steps: steps)
        let (other, otherLabels) = raggedSequences(9, seed: 8)
        let validation = try RaggedDataset(sequences: other, labels: otherLabels, classCount: classes, steps: steps)
        var options = FitOptions(epochs: 2, batchSize: 8, validationSplit: 0.5, seed: 1)
        options.validationData = validation
        let model = try model()
        let history = try model.fit(training, options: options)
        XCTAssertEqual(history.valLoss.count, 2)
        XCTAssertEqual(history.valCategoricalAccuracy.count, 2)
        let json = try JSONSerialization.jsonObject(with: history.jsonData()) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["loss", "categorical_accuracy", "val_loss", "val_categorical_accuracy"])
        // The last epoch's figures are the validation data's, after training.
        let metrics = try model.evaluate(validation, batchSize: 8)
        XCTAssertEqual(history.valLoss.last!, metrics.loss, accuracy: 1e-9)
        XCTAssertEqual(history.valCategoricalAccuracy.last!, metrics.accuracy, accuracy: 1e-9)
        // validationData overrides validationSplit, as Keras's: every sample trained.
        var seen = 0
        try model.fit(training, options: options) { if case .epochEnded(_, _, let metrics, _, _) = $0 { seen = metrics.samples } }
        XCTAssertEqual(seen, 20)

        // Validation data that does not fit the model is refused before the first epoch.
        options.validationData = try RaggedDataset(tokens: [[1, 2]], labels: [0], classCount: classes)
        XCTAssertThrowsError(try model.fit(training, options: options)) {
            XCTAssertEqual(
                $0 as? ModelError,
                .sampleShapeMismatch(data: .sequence(steps: 2, features: 1), model: .sequence(steps: steps, features: features)))
        }
    }

    func testDatasetChecksThrowWithClearMessages() throws {
        let inputs = Tensor<Float>(shape: [3, 2, 1], repeating: 0)
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: [1, 2, 3], classCount: 3)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: 3, position: 2, classes: 3))
            XCTAssertEqual("\($0)", "label 3 at position 2 is outside 0..<3, the classes the model predicts")
        }
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: [0, -1, 0], classCount: 3)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: -1, position: 1, classes: 3))
        }
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: [0, 1], classCount: 3)) {
            XCTAssertEqual("\($0)", "3 samples but 2 labels")
        }
        XCTAssertThrowsError(try TensorDataset(inputs: Tensor<Float>(shape: [3], repeating: 0), labels: [0, 1, 2], classCount: 3)) {
            XCTAssertEqual("\($0)", "inputs must be [N, steps, features] or [N, features], got shape [3]")
        }
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: [0, 0, 0], classCount: 0)) {
            XCTAssertEqual("\($0)", "class count must be at least 1, got 0")
        }
        XCTAssertThrowsError(try TensorDataset(inputs: inputs, labels: [0, 0, 0], classCount: 1, lengths: [1, 2])) {
            XCTAssertEqual("\($0)", "3 samples but 2 lengths")
        }
        XCTAssertThrowsError(try RaggedDataset(sequences: [[[1]], [[1, 2]]], labels: [0, 0], classCount: 1)) {
            XCTAssertEqual("\($0)", "step 0 of sequence 1 has 2 features; the first step of sequence 0 has 1")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1], []], labels: [0, 0], classCount: 1)) {
            XCTAssertEqual("\($0)", "sequence 1 is empty; every sequence needs at least one step")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1, 2, 3]], labels: [0], classCount: 1, steps: 2)) {
            XCTAssertEqual("\($0)", "sequence 0 has 3 steps, more than the 2 the dataset pads to")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1, -2]], labels: [0], classCount: 1)) {
            XCTAssertEqual("\($0)", "token -2 at step 1 of sequence 0 is outside 0...16777216, the ids a Float holds exactly")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1]], labels: [1], classCount: 1)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: 1, position: 0, classes: 1))
        }
    }
}
