import Foundation
import XCTest
@testable import RNNKit
import RNNKitKeras

/// `Embedding` against Keras's float64 fixtures `keras_embedding_mask_zero` (Embedding(20, 6,
/// mask_zero) → LSTM(5) → Dense(3, softmax), sparse cross-entropy, Adam) and
/// `keras_embedding_char_lm` (Embedding(30, 4, mask_zero) → GRU(6, return_sequences) → Dense(30,
/// softmax) per step, masked per-step loss, Adam); finite differences; refused ids; workers.
final class EmbeddingTests: XCTestCase {
    typealias Fixture = KerasCellFixtureTests.Fixture

    /// One of the two fixtures' models in Swift, with the fixture's weights.
    struct Case {
        let name: String, steps: Int, batch: Int, perStep: Bool

        func model<S: BLASScalar>(_ fixture: Fixture, as _: S.Type, workers: Int = 1) throws -> Sequential<S> {
            let layers: [any Layer<S>] =
                perStep
                ? [
                    Embedding(inputDim: 30, outputDim: 4, maskZero: true), GRU(units: 6, returnSequences: true),
                    Dense(units: 30, activation: .softmax),
                ]
                : [Embedding(inputDim: 20, outputDim: 6, maskZero: true), LSTM(units: 5), Dense(units: 3, activation: .softmax)]
            let model = try Sequential<S>(inputShape: .sequence(steps: steps, features: 1), layers: layers)
            model.workers = workers
            try model.compile(optimizer: Adam<S>(learningRate: 0.001), loss: SparseCategoricalCrossentropy())
            try model.setWeights(fixture.weights("weights", as: S.self))
            return model
        }

        /// The ids time-major `[T, B, 1]` and the labels (`[B]`, or time-major `[T, B]` per step).
        func input<S: BLASScalar>(_ fixture: Fixture, as _: S.Type) -> (x: [S], labels: [Int32]) {
            let ids = fixture.values("input", "x"), targets = fixture.values("input", "targets")
            var x = [S](repeating: 0, count: ids.count), labels = [Int32](repeating: 0, count: targets.count)
            for b in 0..<batch {
                for t in 0..<steps {
                    x[t * batch + b] = S(ids[b * steps + t])
                    if perStep { labels[t * batch + b] = Int32(targets[b * steps + t]) }
                }
                if !perStep { labels[b] = Int32(targets[b]) }
            }
            return (x, labels)
        }
    }

    static let maskZero = Case(name: "embedding_mask_zero", steps: 12, batch: 8, perStep: false)
    static let charLM = Case(name: "embedding_char_lm", steps: 10, batch: 6, perStep: true)

    /// Largest relative error of outputs, loss and gradients (at the fixture's weights and at
    /// Keras's weights after its first step), and largest absolute error after two Adam steps.
    static func check<S: BLASScalar>(
        _ c: Case, as _: S.Type, tolerance: Double, adamTolerance: Double, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (Double, Double) {
        let fixture = try Fixture(c.name)
        let model = try c.model(fixture, as: S.self)
        let (x, labels) = c.input(fixture, as: S.self)
        var worst = 0.0
        func compare(_ ours: [S], _ theirs: [Double], _ what: String) {
            let error = relativeError(ours.map(Double.init), theirs)
            worst = max(worst, error)
            XCTAssertLessThan(error, tolerance, "\(c.name): \(what) in \(S.self)", file: file, line: line)
        }
        func step(update: Bool) throws -> Metrics {
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { l in
                    update
                        ? try model.trainStep(x: x.baseAddress!, labels: l.baseAddress!, batchSize: c.batch)
                        : try model.computeGradients(x: x.baseAddress!, labels: l.baseAddress!, batchSize: c.batch)
                }
            }
        }
        var predicted = [S](repeating: 0, count: c.batch * model.outputShape.scalarCount)
        x.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: c.batch, into: &predicted) }
        compare(predicted, fixture.values("layer_outputs", "dense"), "outputs")
        compare([S(try step(update: false).loss)], fixture.values("loss_value"), "loss")
        XCTAssertEqual(model.parameters.map(\.name), fixture.weightOrder, file: file, line: line)
        for parameter in model.parameters {
            compare(parameter.gradient.array, fixture.values("gradients", parameter.name), "d loss / d \(parameter.name)")
        }
        // Keras in float64 rounds β to float32 in Adam's bias corrections (the fixtures' README):
        // weights after a step differ by about 1e-8 absolute.
        var adamWorst = 0.0
        for index in 0..<2 {
            let metrics = try step(update: true)
            let lossError = abs(metrics.loss - fixture.values("optimizer", "steps", index, "loss_before_step")[0])
            adamWorst = max(adamWorst, lossError)
            XCTAssertLessThan(lossError, adamTolerance, "\(c.name): loss before Adam step \(index + 1)", file: file, line: line)
            let expected: [String: Tensor<Double>] = fixture.weights("optimizer", "steps", index, "weights_after_step", as: Double.self)
            for name in fixture.weightOrder {
                let error = zip(model.weights[name]!.scalars, expected[name]!.scalars).map { abs(Double($0) - $1) }.max()!
                adamWorst = max(adamWorst, error)
                XCTAssertLessThan(
                    error, adamTolerance, "\(c.name): \(name) after Adam step \(index + 1) in \(S.self)", file: file, line: line)
            }
        }
        try model.setWeights(fixture.weights("optimizer", "steps", 0, "weights_after_step", as: S.self))
        compare([S(try step(update: false).loss)], fixture.values("optimizer", "steps", 1, "loss_before_step"), "loss at step 2")
        for parameter in model.parameters {
            compare(
                parameter.gradient.array, fixture.values("optimizer", "steps", 1, "gradients_before_step", parameter.name),
                "d loss / d \(parameter.name) at step 2")
        }
        return (worst, adamWorst)
    }

    func testMaskZeroFixtureMatchesKerasInDouble() throws {
        let (error, adam) = try Self.check(Self.maskZero, as: Double.self, tolerance: 1e-14, adamTolerance: 3e-8)
        print("Keras fixture embedding_mask_zero (Double): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    func testMaskZeroFixtureMatchesKerasInFloat() throws {
        let (error, adam) = try Self.check(Self.maskZero, as: Float.self, tolerance: 5e-6, adamTolerance: 1e-6)
        print("Keras fixture embedding_mask_zero (Float): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    func testCharLMFixtureMatchesKerasInDouble() throws {
        let (error, adam) = try Self.check(Self.charLM, as: Double.self, tolerance: 1e-14, adamTolerance: 3e-8)
        print("Keras fixture embedding_char_lm (Double): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    func testCharLMFixtureMatchesKerasInFloat() throws {
        let (error, adam) = try Self.check(Self.charLM, as: Float.self, tolerance: 5e-6, adamTolerance: 1e-6)
        print("Keras fixture embedding_char_lm (Float): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    /// Keras's own float32 predictions for the fixtures' weights and inputs.
    func testFloatMatchesKerasFloat32Predictions() throws {
        for c in [Self.maskZero, Self.charLM] {
            let fixture = try Fixture(c.name)
            let url = try XCTUnwrap(
                Bundle.module.url(forResource: "keras_\(c.name).float32_outputs", withExtension: "json", subdirectory: "Fixtures"))
            let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let model = try c.model(fixture, as: Float.self)
            let (x, _) = c.input(fixture, as: Float.self)
            var predicted = [Float](repeating: 0, count: c.batch * model.outputShape.scalarCount)
            x.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: c.batch, into: &predicted) }
            XCTAssertLessThan(relativeError(predicted.map(Double.init), KerasFixture.flatten(root["predict"]!)), 1e-5, c.name)
        }
    }

    /// The fixture's token rows, trailing padding dropped, as a `RaggedDataset(tokens:)`: evaluate
    /// gives Keras's loss (the dataset path's id check passes, and its mask is mask_zero's).
    func testRaggedTokensEvaluateToKerasLoss() throws {
        let c = Self.maskZero
        let fixture = try Fixture(c.name)
        let ids = fixture.values("input", "x").map { Int($0) }
        var tokens: [[Int]] = []
        for b in 0..<c.batch {
            var row = Array(ids[(b * c.steps)..<((b + 1) * c.steps)])
            while row.last == 0 { row.removeLast() }
            tokens.append(row)
        }
        let labels = fixture.values("input", "targets").map { Int($0) }
        let data = try RaggedDataset(tokens: tokens, labels: labels, classCount: 3, steps: c.steps)
        for workers in [1, 2] {
            let model = try c.model(fixture, as: Double.self, workers: workers)
            let metrics = try model.evaluate(data, batchSize: c.batch)
            XCTAssertEqual(metrics.loss, fixture.values("loss_value")[0], accuracy: 1e-14, "\(workers) workers")
        }
    }

    /// Keras's `.keras` and `.weights.h5` files of both fixtures: the model read from the `.keras`
    /// file (in Double) holds the fixture's weights as Keras wrote them (float32) and gives Keras's
    /// outputs to their rounding; the weights file loads into the model built
    /// in Swift; and RNNKit's own `.keras` file of it reads back to the same layers and weights.
    func testKerasFilesLoadAndRoundTrip() throws {
        for c in [Self.maskZero, Self.charLM] {
            let fixture = try Fixture(c.name)
            let kerasURL = try XCTUnwrap(
                Bundle.module.url(forResource: "keras_\(c.name)", withExtension: "keras", subdirectory: "Fixtures"))
            let loaded = try Keras.loadModel(from: kerasURL, as: Double.self)
            XCTAssertEqual(loaded.model.inputShape, .sequence(steps: c.steps, features: 1), c.name)
            XCTAssertTrue(loaded.model.layers[0] is Embedding<Double>, c.name)
            XCTAssertEqual(loaded.model.parameters.map(\.name), fixture.weightOrder, c.name)
            let (x, _) = c.input(fixture, as: Double.self)
            var predicted = [Double](repeating: 0, count: c.batch * loaded.model.outputShape.scalarCount)
            loaded.model.predict(x: x, batchSize: c.batch, into: &predicted)
            // Keras writes the files' weights in float32 (the fixtures' README): they are the JSON's
            // rounded to Float, so the outputs agree to float32's rounding of the weights.
            let expected: [String: Tensor<Float>] = fixture.weights("weights", as: Float.self)
            for (name, tensor) in loaded.model.weights { XCTAssertEqual(tensor.scalars, expected[name]!.scalars.map(Double.init), name) }
            XCTAssertLessThan(relativeError(predicted, fixture.values("layer_outputs", "dense")), 1e-7, c.name)

            let built = try c.model(fixture, as: Double.self)
            for p in built.parameters { p.value.assign([Double](repeating: 0, count: p.count)) }
            let weightsURL = try XCTUnwrap(
                Bundle.module.url(forResource: "keras_\(c.name)", withExtension: "weights.h5", subdirectory: "Fixtures"))
            try built.loadKerasWeights(from: weightsURL)
            for (name, tensor) in loaded.model.weights { XCTAssertEqual(built.weights[name]!.scalars, tensor.scalars, name) }

            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-embedding-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let url = folder.appendingPathComponent("model.keras")
            try Keras.saveModel(loaded.model, to: url)
            let again = try Keras.loadModel(from: url, as: Double.self)
            let embedding = try XCTUnwrap(again.model.layers[0] as? Embedding<Double>)
            XCTAssertEqual(embedding.maskZero, true)
            XCTAssertEqual(again.model.inputShape, loaded.model.inputShape)
            for (name, tensor) in loaded.model.weights { XCTAssertEqual(again.model.weights[name]!.scalars, tensor.scalars, name) }
        }
    }

    /// Finite differences of the masked per-step loss in every weight, the embedding's included (Double).
    func testGradientMatchesFiniteDifferences() throws {
        for maskZero in [false, true] {
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: 5, features: 1),
                layers: [
                    Embedding(inputDim: 7, outputDim: 3, maskZero: maskZero), LSTM(units: 4, returnSequences: true),
                    Dense(units: 3, activation: .softmax),
                ])
            try model.compile(optimizer: Adam<Double>(), loss: SparseCategoricalCrossentropy())
            for (k, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: UInt64(40 + k), scale: 0.5)) }
            // Sample-major ids [4, 5] with padding zeros, written time-major; id 6 unused.
            let ids: [[Double]] = [[1, 2, 3, 2, 1], [0, 0, 4, 5, 1], [3, 3, 0, 0, 0], [5, 4, 3, 2, 1]]
            var x = [Double](repeating: 0, count: 20), labels = [Int32](repeating: 0, count: 20)
            for b in 0..<4 {
                for t in 0..<5 {
                    x[t * 4 + b] = ids[b][t]
                    labels[t * 4 + b] = Int32((b + t) % 3)
                }
            }
            func loss() throws -> Double {
                try x.withUnsafeBufferPointer { x in
                    try labels.withUnsafeBufferPointer {
                        try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 4).loss
                    }
                }
            }
            _ = try loss()
            let analytic = model.parameters.map { ($0, $0.gradient.array) }
            for (parameter, gradient) in analytic {
                let numeric = try parameter.centralDifferences(of: loss, step: 1e-5)
                XCTAssertLessThan(relativeError(gradient, numeric), 1e-7, "maskZero \(maskZero): d loss / d \(parameter.name)")
            }
            // Rows the batch did not use get no gradient: id 6, and id 0 when it is masked.
            let embedding = analytic[0].1
            XCTAssertEqual(Array(embedding[18..<21]), [0, 0, 0])
            if maskZero { XCTAssertEqual(Array(embedding[0..<3]), [0, 0, 0]) }
        }
    }

    /// An id that is not a whole number in 0..<inputDim is refused, naming it and its place.
    func testOutOfRangeAndFractionalIDsAreRefused() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 3, features: 1),
            layers: [Embedding(inputDim: 5, outputDim: 2, maskZero: true), GRU(units: 2), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: Adam<Double>(), loss: SparseCategoricalCrossentropy())
        let labels: [Int32] = [0, 1]
        for (bad, expected) in [
            (5.0, "embedding: id 5.0 at sample 1, step 2 is not a whole number in 0..<5"),
            (-1.0, "embedding: id -1.0 at sample 1, step 2 is not a whole number in 0..<5"),
            (2.5, "embedding: id 2.5 at sample 1, step 2 is not a whole number in 0..<5"),
            (.nan, "embedding: id nan at sample 1, step 2 is not a whole number in 0..<5"),
        ] {
            // Time-major [3, 2]: sample 1, step 2 is position 5.
            let x: [Double] = [1, 2, 3, 4, 0, bad]
            XCTAssertThrowsError(try model.trainStep(x: x, labels: labels, batchSize: 2)) { error in
                XCTAssertEqual((error as? ModelError)?.description, expected)
            }
        }
        let before = model.weights
        let data = try RaggedDataset(tokens: [[1, 2], [3, 7, 1]], labels: [0, 1], classCount: 2, steps: 3)
        XCTAssertThrowsError(try model.evaluate(data)) { error in
            XCTAssertEqual(error as? ModelError, .idOutOfRange(layer: "embedding", id: 7, sample: 1, step: 1, inputDim: 5))
            XCTAssertEqual((error as? ModelError)?.description, "embedding: id 7.0 at sample 1, step 1 is not a whole number in 0..<5")
        }
        XCTAssertThrowsError(try [1].withUnsafeBufferPointer { try model.trainStep(data, indices: $0) }) { error in
            XCTAssertEqual((error as? ModelError)?.description, "embedding: id 7.0 at sample 1, step 1 is not a whole number in 0..<5")
        }
        for (name, tensor) in model.weights { XCTAssertEqual(tensor.scalars, before[name]!.scalars, name) }
    }

    /// mask_zero on one and two workers: the same losses and weights after two Adam steps.
    func testOneAndTwoWorkersAgree() throws {
        for c in [Self.maskZero, Self.charLM] {
            let fixture = try Fixture(c.name)
            let (x, labels) = c.input(fixture, as: Double.self)
            var results: [(losses: [Double], weights: [String: Tensor<Double>])] = []
            for workers in [1, 2] {
                let model = try c.model(fixture, as: Double.self, workers: workers)
                var losses: [Double] = []
                for _ in 0..<2 { losses.append(try model.trainStep(x: x, labels: labels, batchSize: c.batch).loss) }
                results.append((losses, model.weights))
            }
            for (one, two) in zip(results[0].losses, results[1].losses) { XCTAssertEqual(one, two, accuracy: 1e-14 * abs(one), c.name) }
            for (name, tensor) in results[0].weights {
                XCTAssertLessThan(relativeError(results[1].weights[name]!.scalars, tensor.scalars), 1e-14, "\(c.name) \(name)")
            }
        }
    }

    /// A sequence of zeros only is masked whole: its LSTM state stays zero, so its output is the
    /// Dense layer's of a zero state, and no gradient reaches the embedding.
    func testAllZeroSequence() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 4, features: 1),
            layers: [Embedding(inputDim: 6, outputDim: 3, maskZero: true), LSTM(units: 2), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: Adam<Double>(), loss: SparseCategoricalCrossentropy())
        let x = [Double](repeating: 0, count: 4), labels: [Int32] = [1]
        var output = [Double](repeating: 0, count: 2)
        model.predict(x: x, batchSize: 1, into: &output)
        let dense = model.weights["dense/bias"]!.scalars
        let expected = dense.map { exp($0) / dense.map(exp).reduce(0, +) }
        XCTAssertEqual(output[0], expected[0], accuracy: 1e-15)
        XCTAssertEqual(output[1], expected[1], accuracy: 1e-15)
        let metrics = try model.computeGradients(x: x, labels: labels, batchSize: 1)
        XCTAssertTrue(metrics.loss.isFinite)
        XCTAssertTrue(model.parameters[0].gradient.array.allSatisfy { $0 == 0 })
    }
}
