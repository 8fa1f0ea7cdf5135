import Foundation
import XCTest
@testable import RNNKit

/// Losses over masked sequence outputs: Masking(0) → recurrent layers returning sequences → a
/// per-step Dense, so the mask reaches the loss, which is then Keras's mean over the steps the
/// mask keeps. Against Keras's float64 figures (`keras_masked_sequence_losses.json`, made by
/// `Tests/Python/make_masked_loss_fixture.py`), finite differences, workers, lengths, and the
/// batch whose every step is masked.
final class MaskedLossTests: XCTestCase {
    struct Fixture {
        let root: [String: Any]
        let batch: Int, steps: Int, features: Int

        init() throws {
            let url = try XCTUnwrap(
                Bundle.module.url(
                    forResource: "keras_masked_sequence_losses", withExtension: "json",
                    subdirectory: "Fixtures"),
                "fixture keras_masked_sequence_losses.json is missing from the test bundle")
            root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let shape = root["shape"] as! [String: Int]
            (batch, steps, features) = (shape["batch"]!, shape["steps"]!, shape["features"]!)
        }

        var cases: [[String: Any]] { root["cases"] as! [[String: Any]] }

        /// A batch-major `[B, T, width]` array of the fixture, time-major (`[T, B, width]`).
        func timeMajor<S: BLASScalar>(_ node: Any, width: Int, as _: S.Type) -> [S] {
            let values = KerasFixture.flatten(node)
            var result = [S](repeating: 0, count: values.count)
            for b in 0..<batch {
                for t in 0..<steps {
                    for i in 0..<width {
                        result[(t * batch + b) * width + i] = S(values[(b * steps + t) * width + i])
                    }
                }
            }
            return result
        }

        func weights<S: BLASScalar>(_ table: Any, of testCase: [String: Any], as _: S.Type) -> [String: Tensor<S>] {
            let table = table as! [String: Any], order = testCase["weight_order"] as! [String]
            return Dictionary(
                uniqueKeysWithValues: order.map { name in
                    (name, Tensor(shape: Self.shape(of: table[name]!), scalars: KerasFixture.flatten(table[name]!).map { S($0) }))
                })
        }

        static func shape(of node: Any) -> [Int] {
            guard let array = node as? [Any] else { return [] }
            return [array.count] + shape(of: array[0])
        }
    }

    static func layers<S: BLASScalar>(_ name: String, as _: S.Type) -> (layers: [any Layer<S>], loss: any Loss) {
        switch name {
        case "lstm_sparse_categorical":
            (
                [Masking(maskValue: 0), LSTM(units: 5, returnSequences: true), Dense(units: 4, activation: .softmax)],
                SparseCategoricalCrossentropy()
            )
        case "gru_binary":
            ([Masking(maskValue: 0), GRU(units: 4, returnSequences: true), Dense(units: 3, activation: .sigmoid)], BinaryCrossentropy())
        case "bidirectional_simple_rnn_mse":
            ([Masking(maskValue: 0), Bidirectional(SimpleRNN(units: 3, returnSequences: true)), Dense(units: 2)], MeanSquaredError())
        default: preconditionFailure("no model for fixture case \(name)")
        }
    }

    /// One step's figures and gradients on a raw batch, labels or targets as the loss takes.
    static func step<S: BLASScalar>(
        _ model: Sequential<S>, x: [S], labels: [Int32]?, targets: [S]?, lengths: [Int32]? = nil,
        batch: Int, update: Bool = false
    ) throws -> Metrics {
        try x.withUnsafeBufferPointer { x in
            try (lengths ?? []).withUnsafeBufferPointer { lengthsBuffer in
                let lengths = lengths == nil ? nil : lengthsBuffer.baseAddress
                if let labels {
                    return try labels.withUnsafeBufferPointer {
                        update
                            ? try model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, lengths: lengths, batchSize: batch)
                            : try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, lengths: lengths, batchSize: batch)
                    }
                }
                return try targets!.withUnsafeBufferPointer {
                    update
                        ? try model.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, lengths: lengths, batchSize: batch)
                        : try model.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, lengths: lengths, batchSize: batch)
                }
            }
        }
    }

    /// Largest relative errors over outputs, loss and gradients, and over two Adam steps.
    func check<S: BLASScalar>(as _: S.Type, tolerance: Double, adamTolerance: Double) throws -> (Double, Double) {
        let fixture = try Fixture()
        let (batch, steps, features) = (fixture.batch, fixture.steps, fixture.features)
        let x: [S] = fixture.timeMajor(fixture.root["x"]!, width: features, as: S.self)
        var worst = 0.0, adamWorst = 0.0
        for testCase in fixture.cases {
            let name = testCase["name"] as! String
            let (layers, loss) = Self.layers(name, as: S.self)
            let model = try Sequential<S>(inputShape: .sequence(steps: steps, features: features), layers: layers)
            try model.compile(optimizer: Adam<S>(learningRate: 0.001), loss: loss)
            try model.setWeights(fixture.weights(testCase["weights"]!, of: testCase, as: S.self))
            let width = model.outputShape.features
            let labels: [Int32]? = testCase["labels"].map { fixture.timeMajor($0, width: 1, as: Double.self).map { Int32($0) } }
            let targets: [S]? = testCase["targets"].map { fixture.timeMajor($0, width: width, as: S.self) }
            func compare(_ ours: [Double], _ theirs: [Double], _ what: String) {
                let error = relativeError(ours, theirs)
                worst = max(worst, error)
                XCTAssertLessThan(error, tolerance, "\(name) \(what) in \(S.self)")
            }

            var output = [S](repeating: 0, count: batch * steps * width)
            x.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: batch, into: $0.baseAddress!) }
            }
            compare(output.map(Double.init), KerasFixture.flatten(testCase["output"]!), "output")

            let metrics = try Self.step(model, x: x, labels: labels, targets: targets, batch: batch)
            compare([metrics.loss], [testCase["loss_value"] as! Double], "loss")
            if let accuracy = testCase["accuracy"] as? Double {
                // Keras keeps its metrics in float32.
                XCTAssertEqual(metrics.accuracy, accuracy, accuracy: 1e-6, "\(name) accuracy over the kept steps")
            } else {
                XCTAssertTrue(metrics.accuracy.isNaN, "\(name): mean squared error has no accuracy")
            }
            let gradients = testCase["gradients"] as! [String: Any]
            for parameter in model.parameters {
                compare(
                    parameter.gradient.array.map(Double.init), KerasFixture.flatten(gradients[parameter.name]!),
                    "d loss / d \(parameter.name)")
            }

            for (index, adamStep) in ((testCase["adam"] as! [String: Any])["steps"] as! [[String: Any]]).enumerated() {
                let metrics = try Self.step(model, x: x, labels: labels, targets: targets, batch: batch, update: true)
                let expectedLoss = adamStep["loss_before_step"] as! Double
                adamWorst = max(adamWorst, abs(metrics.loss - expectedLoss) / expectedLoss)
                let expected: [String: Tensor<Double>] = fixture.weights(adamStep["weights_after_step"]!, of: testCase, as: Double.self)
                for parameter in model.parameters {
                    let error = relativeError(parameter.value.array.map(Double.init), expected[parameter.name]!.scalars)
                    adamWorst = max(adamWorst, error)
                    XCTAssertLessThan(error, adamTolerance, "\(name) \(parameter.name) after Adam step \(index + 1) in \(S.self)")
                }
            }
        }
        return (worst, adamWorst)
    }

    func testMaskedLossesMatchKerasInDouble() throws {
        // Keras in float64 rounds β to float32 in Adam's bias corrections: its steps differ from
        // exact ones by about 1e-5 of a step, 1e-7 of these small weights after two steps.
        let (error, adam) = try check(as: Double.self, tolerance: 1e-12, adamTolerance: 3e-7)
        print("Keras masked sequence losses (Double): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    func testMaskedLossesMatchKerasInFloat() throws {
        let (error, adam) = try check(as: Float.self, tolerance: 1e-5, adamTolerance: 1e-5)
        print("Keras masked sequence losses (Float): outputs, loss and gradients \(error); two Adam steps \(adam)")
    }

    /// A random batch with zero rows at the given (step, sample) places, and labels and targets.
    static func maskedBatch(steps: Int, batch: Int, features: Int, width: Int, masked: [(Int, Int)], seed: UInt64)
        -> (x: [Double], labels: [Int32], targets: [Double])
    {
        var x: [Double] = randomValues(steps * batch * features, seed: seed)
        for (t, b) in masked { for i in 0..<features { x[(t * batch + b) * features + i] = 0 } }
        var generator = RandomGenerator(seed: seed &+ 5)
        let labels = (0..<(steps * batch)).map { _ in Int32(generator.next() % UInt64(width)) }
        let targets = (0..<(steps * batch * width)).map { _ in generator.nextUnitDouble() }
        return (x, labels, targets)
    }

    /// Finite differences of every masked loss, through models whose masks reach the output at
    /// the start, middle and end of sequences.
    func testMaskedLossGradientsByFiniteDifferences() throws {
        let (steps, batch, features, h) = (5, 3, 3, 1e-6)
        let masked = [(0, 0), (2, 0), (2, 1), (4, 1), (1, 2), (3, 2), (4, 2)]
        let configurations: [([any Layer<Double>], any Loss)] = [
            ([Masking(), LSTM(units: 3, returnSequences: true), Dense(units: 3, activation: .softmax)], SparseCategoricalCrossentropy()),
            ([Masking(), GRU(units: 3, returnSequences: true), Dense(units: 3, activation: .tanh)], CategoricalCrossentropy()),
            (
                [Masking(), SimpleRNN(units: 3, returnSequences: true, goBackwards: true), Dense(units: 2, activation: .sigmoid)],
                BinaryCrossentropy()
            ),
            (
                [Masking(), Bidirectional(GRU(units: 2, resetAfter: false, returnSequences: true)), TimeDistributed(Dense(units: 2))],
                MeanSquaredError()
            ),
        ]
        var worst = 0.0
        for (k, (layers, loss)) in configurations.enumerated() {
            let model = try Sequential<Double>(inputShape: .sequence(steps: steps, features: features), layers: layers, seed: UInt64(k))
            try model.compile(optimizer: SGD<Double>(), loss: loss)
            for (j, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: 40 + UInt64(k * 10 + j), scale: 0.6)) }
            let width = model.outputShape.features
            let (x, labels, targets) = Self.maskedBatch(
                steps: steps, batch: batch, features: features, width: width, masked: masked, seed: UInt64(k))
            let byLabels = loss.targets == .classIndices
            func meanLoss() throws -> Double {
                try Self.step(model, x: x, labels: byLabels ? labels : nil, targets: byLabels ? nil : targets, batch: batch).loss
            }
            _ = try meanLoss()
            let analytic = model.parameters.map(\.gradient.array)
            for (parameter, gradient) in zip(model.parameters, analytic) {
                let error = relativeError(gradient, try parameter.centralDifferences(of: meanLoss, step: h))
                worst = max(worst, error)
                XCTAssertLessThan(error, 1e-6, "\(model.loss!.name): d loss / d \(parameter.name)")
            }
        }
        print("Masked losses, finite differences (Double): largest relative error \(worst)")
    }

    /// The masked mean is over the whole batch, not per shard: two workers give one worker's
    /// loss, accuracy and gradients; per-sample lengths give what a Masking layer gives on the
    /// same padding; the engine agrees with the reference.
    func testWorkersLengthsAndReferenceAgree() throws {
        let (steps, batch, features) = (6, 5, 3)
        let lengths: [Int32] = [6, 2, 4, 1, 5]
        let padded = (0..<batch).flatMap { b in (Int(lengths[b])..<steps).map { ($0, b) } }
        let (x, labels, _) = Self.maskedBatch(steps: steps, batch: batch, features: features, width: 3, masked: padded, seed: 3)
        func model(masking: Bool, workers: Int, backend: any Backend = BLASBackend()) throws -> Sequential<Double> {
            let layers: [any Layer<Double>] =
                (masking ? [Masking()] : []) + [
                    GRU(units: 4, returnSequences: true),
                    LSTM(units: 3, returnSequences: true),
                    Dense(units: 3, activation: .softmax),
                ]
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: steps, features: features), layers: layers, seed: 9, backend: backend)
            try model.compile(optimizer: SGD<Double>(), loss: SparseCategoricalCrossentropy())
            model.workers = workers
            return model
        }
        let one = try model(masking: true, workers: 1)
        let reference = try Self.step(one, x: x, labels: labels, targets: nil, batch: batch)
        let referenceGradients = one.parameters.map(\.gradient.array)
        // Rows counted: Σ lengths = 18 of 30.
        var correct = 0
        let probabilities = [Double](unsafeUninitializedCapacity: steps * batch * 3) { buffer, count in
            x.withUnsafeBufferPointer { one.predict(x: $0.baseAddress!, batchSize: batch, into: buffer.baseAddress!) }
            count = steps * batch * 3
        }
        for b in 0..<batch {
            for t in 0..<Int(lengths[b]) {
                let row = Array(probabilities[((b * steps + t) * 3)..<((b * steps + t) * 3 + 3)])
                if row.firstIndex(of: row.max()!)! == Int(labels[t * batch + b]) { correct += 1 }
            }
        }
        XCTAssertEqual(reference.accuracy, Double(correct) / 18, accuracy: 1e-15, "accuracy over the 18 kept steps")

        let variants: [(String, Sequential<Double>, [Int32]?)] = [
            ("2 workers", try model(masking: true, workers: 2), nil),
            ("lengths, 1 worker", try model(masking: false, workers: 1), lengths),
            ("lengths, 2 workers", try model(masking: false, workers: 2), lengths),
            ("naive reference", try model(masking: true, workers: 1, backend: NaiveBackend()), nil),
        ]
        for (what, variant, lengths) in variants {
            let metrics = try Self.step(variant, x: x, labels: labels, targets: nil, lengths: lengths, batch: batch)
            XCTAssertEqual(metrics.loss, reference.loss, accuracy: 1e-12 * reference.loss, what)
            XCTAssertEqual(metrics.accuracy, reference.accuracy, what)
            for (parameter, expected) in zip(variant.parameters, referenceGradients) {
                XCTAssertLessThan(relativeError(parameter.gradient.array, expected), 1e-11, "\(what): d loss / d \(parameter.name)")
            }
        }
    }

    /// A batch whose every step is masked has loss 0 and zero gradients, as Keras's
    /// `divide_no_nan`; training on it leaves the weights finite.
    func testABatchWithEveryStepMaskedHasZeroLoss() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 3, features: 2),
            layers: [Masking(), SimpleRNN(units: 3, returnSequences: true), Dense(units: 2)])
        try model.compile(optimizer: Adam(), loss: MeanSquaredError())
        let x = [Float](repeating: 0, count: 3 * 2 * 2), targets = [Float](repeating: 1, count: 3 * 2 * 2)
        let metrics = try Self.step(model, x: x, labels: nil, targets: targets, batch: 2, update: true)
        XCTAssertEqual(metrics.loss, 0)
        XCTAssertEqual(metrics.samples, 2)
        for parameter in model.parameters {
            XCTAssertEqual(parameter.gradient.array, [Float](repeating: 0, count: parameter.count), parameter.name)
            XCTAssertTrue(parameter.value.array.allSatisfy(\.isFinite), parameter.name)
        }
    }
}
