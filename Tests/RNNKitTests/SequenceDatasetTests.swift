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
        XCTAssertThrowsError(try ImageDataset(pixels: [0, 0], labels: [1, 10], rows: 1, columns: 1)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: 10, position: 1, classes: 10))
        }
        XCTAssertThrowsError(try ImageDataset(pixels: [0, 0, 0], labels: [1, 2], rows: 1, columns: 1)) {
            XCTAssertEqual("\($0)", "3 pixels do not make 2 images of 1×1")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1]], labels: [1], classCount: 1)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: 1, position: 0, classes: 1))
        }
    }

    // MARK: Target values

    private func valueModel(steps: Int, returnSequences: Bool, workers: Int = 1, outputs: Int = 2) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features),
            layers: returnSequences
                ? [GRU(units: 4, returnSequences: true), TimeDistributed(Dense(units: outputs))]
                : [GRU(units: 4), Dense(units: outputs)],
            seed: 9)
        try model.compile(optimizer: SGD(learningRate: 0.1), loss: MeanSquaredError())
        model.workers = workers
        return model
    }

    /// Samples `[n]` batch-major padded to `steps`, time-major, and their lengths.
    private func padded(_ sequences: [[[Float]]], steps: Int) -> (timeMajor: [Float], lengths: [Int32]) {
        let n = sequences.count
        var timeMajor = [Float](repeating: 0, count: steps * n * features)
        for (b, sequence) in sequences.enumerated() {
            for (t, row) in sequence.enumerated() {
                for i in 0..<features { timeMajor[(t * n + b) * features + i] = row[i] }
            }
        }
        return (timeMajor, sequences.map { Int32($0.count) })
    }

    /// Regression targets in a ragged dataset train as the raw-batch `targets:` and `lengths:` path does.
    func testRegressionTargetsMatchRawBatchTargets() throws {
        let (sequences, _) = raggedSequences(6, seed: 10)
        var generator = RandomGenerator(seed: 11)
        let targets = (0..<6).map { _ in (0..<2).map { _ in Float(generator.nextUnitDouble()) } }
        let data = try RaggedDataset(sequences: sequences, targets: targets)
        XCTAssertEqual(data.targetKind, .values)
        XCTAssertEqual(data.targetShape, .vector(features: 2))
        let (x, lengths) = padded(sequences, steps: data.steps)
        let flat = targets.flatMap { $0 }
        for workers in [1, 2] {
            let raw = try valueModel(steps: data.steps, returnSequences: false, workers: workers)
            let fromData = try valueModel(steps: data.steps, returnSequences: false, workers: workers)
            let rawMetrics = try x.withUnsafeBufferPointer { x in
                try flat.withUnsafeBufferPointer { t in
                    try lengths.withUnsafeBufferPointer { l in
                        try raw.trainStep(x: x.baseAddress!, targets: t.baseAddress!, lengths: l.baseAddress!, batchSize: 6)
                    }
                }
            }
            let dataMetrics = try Array(0..<6).withUnsafeBufferPointer { try fromData.trainStep(data, indices: $0) }
            XCTAssertEqual(dataMetrics.loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
            XCTAssertLessThan(relativeError(fromData.arena.gradients.array, raw.arena.gradients.array), 1e-5, "workers \(workers)")
            XCTAssertTrue(try fromData.evaluate(data).accuracy.isNaN)
        }
        // A class loss refuses target values, and a value loss class labels.
        let classModel = try model(steps: data.steps)
        XCTAssertThrowsError(try classModel.evaluate(data)) {
            XCTAssertEqual("\($0)", "categorical_crossentropy needs class labels; the data gives target values")
        }
    }

    /// One target per step: the padded steps are masked out of the loss, as with raw-batch lengths.
    func testStepTargetsMaskPaddedSteps() throws {
        let (sequences, _) = raggedSequences(7, seed: 12)
        var generator = RandomGenerator(seed: 13)
        let stepTargets = sequences.map { $0.map { _ in (0..<2).map { _ in Float(generator.nextUnitDouble()) } } }
        let data = try RaggedDataset(sequences: sequences, stepTargets: stepTargets)
        XCTAssertEqual(data.targetShape, .sequence(steps: data.steps, features: 2))
        let (x, lengths) = padded(sequences, steps: data.steps)
        var timeMajorTargets = [Float](repeating: 0, count: data.steps * 7 * 2)
        for (b, sequence) in stepTargets.enumerated() {
            for (t, row) in sequence.enumerated() { for i in 0..<2 { timeMajorTargets[(t * 7 + b) * 2 + i] = row[i] } }
        }
        for workers in [1, 2] {
            let raw = try valueModel(steps: data.steps, returnSequences: true, workers: workers)
            let fromData = try valueModel(steps: data.steps, returnSequences: true, workers: workers)
            let rawMetrics = try x.withUnsafeBufferPointer { x in
                try timeMajorTargets.withUnsafeBufferPointer { t in
                    try lengths.withUnsafeBufferPointer { l in
                        try raw.computeGradients(x: x.baseAddress!, targets: t.baseAddress!, lengths: l.baseAddress!, batchSize: 7)
                    }
                }
            }
            let dataMetrics = try Array(0..<7).withUnsafeBufferPointer { try fromData.trainStep(data, indices: $0) }
            XCTAssertEqual(dataMetrics.loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
            XCTAssertLessThan(relativeError(fromData.arena.gradients.array, raw.arena.gradients.array), 1e-5, "workers \(workers)")
            // Evaluated in one batch, the loss is the same mean over the counted steps.
            XCTAssertEqual(try raw.evaluate(data, batchSize: 7).loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
        }
        XCTAssertThrowsError(try RaggedDataset(sequences: sequences, stepTargets: stepTargets.map { Array($0.dropLast()) })) {
            XCTAssertEqual("\($0)", "sequence 0 has 1 steps but 0 step targets")
        }
    }

    /// One class id per step: the dataset gives what raw `[T, batch]` labels with lengths give.
    func testStepLabelsMatchRawBatchLabels() throws {
        let (sequences, _) = raggedSequences(7, seed: 14)
        var generator = RandomGenerator(seed: 15)
        let stepLabels = sequences.map { $0.map { _ in Int(generator.next() % 3) } }
        let data = try RaggedDataset(sequences: sequences, stepLabels: stepLabels, classCount: 3)
        XCTAssertTrue(data.labelsPerStep)
        let (x, lengths) = padded(sequences, steps: data.steps)
        var timeMajorLabels = [Int32](repeating: 0, count: data.steps * 7)
        for (b, sequence) in stepLabels.enumerated() {
            for (t, label) in sequence.enumerated() { timeMajorLabels[t * 7 + b] = Int32(label) }
        }
        func classModel(workers: Int) throws -> Sequential<Float> {
            let model = try Sequential<Float>(
                inputShape: .sequence(steps: data.steps, features: features),
                layers: [GRU(units: 4, returnSequences: true), TimeDistributed(Dense(units: 3, activation: .softmax))], seed: 9)
            try model.compile(optimizer: SGD(learningRate: 0.1), loss: SparseCategoricalCrossentropy())
            model.workers = workers
            return model
        }
        for workers in [1, 2] {
            let raw = try classModel(workers: workers), fromData = try classModel(workers: workers)
            let rawMetrics = try x.withUnsafeBufferPointer { x in
                try timeMajorLabels.withUnsafeBufferPointer { labels in
                    try lengths.withUnsafeBufferPointer { l in
                        try raw.computeGradients(x: x.baseAddress!, labels: labels.baseAddress!, lengths: l.baseAddress!, batchSize: 7)
                    }
                }
            }
            let dataMetrics = try Array(0..<7).withUnsafeBufferPointer { try fromData.trainStep(data, indices: $0) }
            XCTAssertEqual(dataMetrics.loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
            XCTAssertEqual(dataMetrics.accuracy, rawMetrics.accuracy, accuracy: 1e-9, "workers \(workers)")
            XCTAssertLessThan(relativeError(fromData.arena.gradients.array, raw.arena.gradients.array), 1e-5, "workers \(workers)")
            XCTAssertEqual(try raw.evaluate(data, batchSize: 7).loss, rawMetrics.loss, accuracy: 1e-6, "workers \(workers)")
        }
        XCTAssertThrowsError(try model(steps: data.steps).evaluate(data)) {
            XCTAssertEqual(
                "\($0)",
                "the data gives one label per step; the model's output \(FeatureShape.vector(features: 3)) is not a sequence of its \(data.steps) steps"
            )
        }
    }

    /// Token sequences with one class id per step (a language model's next token) under an
    /// Embedding with `maskZero`: the loss `evaluate` and a training step give is the mean of
    /// −ln p(label) over the true steps only, computed here by hand from `predict`'s
    /// probabilities, with one worker or two; the padded steps' labels and outputs count for nothing.
    func testTokenStepLabelsGiveTheMaskedMeanLoss() throws {
        let tokens = [[1, 3, 4, 2], [1, 5], [1, 4, 4, 3, 5], [1]]
        let stepLabels = [[3, 4, 2, 0], [5, 0], [4, 4, 3, 5, 0], [0]]
        let data = try RaggedDataset(tokens: tokens, stepLabels: stepLabels, classCount: 6, steps: 6)
        XCTAssertTrue(data.labelsPerStep)
        XCTAssertEqual(data.lengths, [4, 2, 5, 1])
        XCTAssertEqual(data.sequence(at: 2), [[1], [4], [4], [3], [5]])
        XCTAssertEqual(data.label(at: 1), 5)
        func lm(workers: Int) throws -> Sequential<Double> {
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: 6, features: 1),
                layers: [
                    Embedding(inputDim: 6, outputDim: 3, maskZero: true), LSTM(units: 4, returnSequences: true),
                    TimeDistributed(Dense(units: 6, activation: .softmax)),
                ], seed: 21)
            try model.compile(optimizer: SGD(learningRate: 0.1), loss: SparseCategoricalCrossentropy())
            model.workers = workers
            return model
        }
        let probabilities = try lm(workers: 1).predict(data, batchSize: 4).scalars
        var total = 0.0, counted = 0
        for (b, labels) in stepLabels.enumerated() {
            for (t, label) in labels.enumerated() {
                total -= log(probabilities[(b * 6 + t) * 6 + label])
                counted += 1
            }
        }
        XCTAssertEqual(counted, 12)
        let expected = total / Double(counted)
        for workers in [1, 2] {
            XCTAssertEqual(try lm(workers: workers).evaluate(data, batchSize: 4).loss, expected, accuracy: 1e-12, "workers \(workers)")
            let step = try Array(0..<4).withUnsafeBufferPointer { try lm(workers: workers).trainStep(data, indices: $0) }
            XCTAssertEqual(step.loss, expected, accuracy: 1e-12, "workers \(workers)")
        }
        // Other labels on the padded steps (the dataset pads them with 0s) and another padding token
        // change nothing: those steps are outside the sequences' lengths.
        let longer = try RaggedDataset(
            tokens: tokens.map { $0 + [0, 0, 0, 0, 0].prefix(6 - $0.count) },
            stepLabels: stepLabels.map { $0 + [5, 5, 5, 5, 5].prefix(6 - $0.count) },
            classCount: 6, steps: 6)
        XCTAssertEqual(longer.lengths, [6, 6, 6, 6])
        XCTAssertEqual(try lm(workers: 1).evaluate(longer, batchSize: 4).loss, expected, accuracy: 1e-12, "maskZero masks the 0 tokens")

        XCTAssertThrowsError(try RaggedDataset(tokens: tokens, stepLabels: [[3, 4, 2], [5, 0], [4, 4, 3, 5, 0], [0]], classCount: 6)) {
            XCTAssertEqual("\($0)", "sequence 0 has 4 steps but 3 step labels")
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: tokens, stepLabels: [[3, 4, 2, 6], [5, 0], [4, 4, 3, 5, 0], [0]], classCount: 6)) {
            XCTAssertEqual($0 as? ModelError, .labelOutOfRange(label: 6, position: 3, classes: 6))
        }
        XCTAssertThrowsError(try RaggedDataset(tokens: [[1, -1]], stepLabels: [[1, 1]], classCount: 6)) {
            XCTAssertEqual("\($0)", "token -1 at step 1 of sequence 0 is outside 0...16777216, the ids a Float holds exactly")
        }
    }

    func testOneHotTargetsAreClassIds() throws {
        let data = try RaggedDataset(sequences: [[[1, 2, 3]], [[4, 5, 6], [7, 8, 9]]], oneHot: [[0, 0, 1], [1, 0, 0]])
        XCTAssertEqual(data.labels, [2, 0])
        XCTAssertEqual(data.classCount, 3)
        XCTAssertThrowsError(try RaggedDataset(sequences: [[[1, 2, 3]]], oneHot: [[0.5, 0.5, 0]])) {
            XCTAssertEqual("\($0)", "target row 0 is not one-hot over 3 classes: [0.5, 0.5, 0.0]")
        }
    }

    // MARK: Windowing

    private func windows(_ data: RaggedDataset) -> (windows: [[Float]], targets: [Float]) {
        let targets = Buffer<Float>(count: data.count)
        Array(0..<data.count).withUnsafeBufferPointer { data.gatherTargets($0, into: targets.pointer) }
        return ((0..<data.count).map { data.sequence(at: $0).map { $0[0] } }, targets.array)
    }

    /// Keras's documented examples, worked by hand.
    func testTimeseriesWindowsAsKerasDocumentsThem() throws {
        let series = (0..<99).map { [Float($0)] }
        // Example 1: indices 0...98, sequence_length=10, sampling_rate=2, sequence_stride=3.
        let first = try timeseriesDataset(data: series, targets: series, sequenceLength: 10, sequenceStride: 3, samplingRate: 2)
        let (w, t) = windows(first)
        XCTAssertEqual(w.first, stride(from: 0, through: 18, by: 2).map(Float.init))
        XCTAssertEqual(w[1], stride(from: 3, through: 21, by: 2).map(Float.init))
        XCTAssertEqual(w[2], stride(from: 6, through: 24, by: 2).map(Float.init))
        XCTAssertEqual(w.last, stride(from: 78, through: 96, by: 2).map(Float.init))
        XCTAssertEqual(t, stride(from: 0, through: 78, by: 3).map(Float.init))
        XCTAssertEqual(first.lengths, Array(repeating: 10, count: 27))
        // Example 2: the past 10 steps predict the next one.
        let data = (0..<20).map { [Float($0)] }
        let second = try timeseriesDataset(data: Array(data[..<10]), targets: Array(data[10...]), sequenceLength: 10)
        XCTAssertEqual(windows(second).windows, [(0..<10).map(Float.init)])
        XCTAssertEqual(windows(second).targets, [10])
        // start_index and end_index: the targets are read from start_index too.
        let third = try timeseriesDataset(data: data, targets: data, sequenceLength: 3, startIndex: 5, endIndex: 15)
        XCTAssertEqual(windows(third).windows, (0..<8).map { p in [5 + p, 6 + p, 7 + p].map(Float.init) })
        XCTAssertEqual(windows(third).targets, (5..<13).map(Float.init))
        // Keras's argument checks.
        XCTAssertThrowsError(try timeseriesDataset(data: data, targets: data, sequenceLength: 3, endIndex: 20)) {
            XCTAssertEqual("\($0)", "endIndex must be lower than the length of the data, got 20 for data of length 20")
        }
        XCTAssertThrowsError(try timeseriesDataset(data: data, targets: data, sequenceLength: 3, samplingRate: 0)) {
            XCTAssertEqual("\($0)", "samplingRate must be in 1..<20 (the length of the data), got 0")
        }
        XCTAssertThrowsError(try timeseriesDataset(data: data, targets: data, sequenceLength: 30)) {
            XCTAssertEqual("\($0)", "no window of 30 steps sampled every 1 fits in rows 0..<20 with 20 targets")
        }
    }
}
