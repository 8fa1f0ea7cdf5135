import Foundation
import XCTest
@testable import RNNKit
@testable import RNNKitKeras

/// `useBias: false`, the L1/L2 regularisers and AdamW against Keras's float64 fixture
/// `keras_no_bias_regularized_adamw` (LSTM(6, use_bias=False, l2 kernel, l1 recurrent) → Dense(1,
/// l1_l2 kernel, l2 bias), mean squared error, AdamW(weight_decay 0.004)), finite differences of
/// bias-free cells and of a regularised loss, and the penalty counted once whatever the workers.
final class RegularizationTests: XCTestCase {
    typealias Fixture = KerasCellFixtureTests.Fixture
    static let steps = 9, features = 3, batch = 8

    /// The fixture's model built in Swift, with the fixture's weights.
    static func model<S: BLASScalar>(_ fixture: Fixture, as _: S.Type, workers: Int = 1) throws -> Sequential<S> {
        let model = try Sequential<S>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [
                LSTM(units: 6, useBias: false, kernelRegularizer: .l2(0.01), recurrentRegularizer: .l1(0.001)),
                Dense(units: 1, kernelRegularizer: .l1l2(l1: 0.002, l2: 0.03), biasRegularizer: .l2(0.05)),
            ])
        model.workers = workers
        try model.compile(optimizer: AdamW<S>(learningRate: 0.001, weightDecay: 0.004), loss: MeanSquaredError())
        try model.setWeights(fixture.weights("weights", as: S.self))
        return model
    }

    /// The fixture's input time-major `[9, 8, 3]` and targets `[8, 1]`.
    static func input<S: BLASScalar>(_ fixture: Fixture, as _: S.Type) -> (x: [S], targets: [S]) {
        let batchMajor = fixture.values("input", "x")
        var x = [S](repeating: 0, count: batchMajor.count)
        for b in 0..<batch {
            for t in 0..<steps {
                for i in 0..<features { x[(t * batch + b) * features + i] = S(batchMajor[(b * steps + t) * features + i]) }
            }
        }
        return (x, fixture.values("input", "targets").map { S($0) })
    }

    /// Largest relative errors: outputs, loss, penalty and gradients; and two AdamW steps.
    static func check<S: BLASScalar>(
        _ model: Sequential<S>, _ fixture: Fixture, tolerance: Double, adamTolerance: Double,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (Double, Double) {
        let (x, targets) = input(fixture, as: S.self)
        var worst = 0.0
        func compare(_ ours: [S], _ theirs: [Double], _ what: String) {
            let error = relativeError(ours.map(Double.init), theirs)
            worst = max(worst, error)
            XCTAssertLessThan(error, tolerance, "\(what) in \(S.self)", file: file, line: line)
        }
        func step(update: Bool) throws -> Metrics {
            try x.withUnsafeBufferPointer { x in
                try targets.withUnsafeBufferPointer { t in
                    update
                        ? try model.trainStep(x: x.baseAddress!, targets: t.baseAddress!, batchSize: batch)
                        : try model.computeGradients(x: x.baseAddress!, targets: t.baseAddress!, batchSize: batch)
                }
            }
        }
        var predicted = [S](repeating: 0, count: batch)
        x.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: batch, into: &predicted) }
        compare(predicted, fixture.values("layer_outputs", "dense"), "outputs")
        compare([S(model.regularizationPenalty)], fixture.values("regularization_value"), "regularisation penalty")
        compare([S(try step(update: false).loss)], fixture.values("loss_value"), "loss")
        let gradients = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.gradient.array) })
        XCTAssertEqual(Set(gradients.keys), Set(fixture.weightOrder), "a bias-free LSTM has no bias weight", file: file, line: line)
        for name in fixture.weightOrder { compare(gradients[name]!, fixture.values("gradients", name), "d loss / d \(name)") }

        // Keras in float64 rounds β to float32 inside Adam's bias corrections (see the fixtures'
        // README): the step size differs from exact betas' by about 6e-6 relative, so the weights
        // after a step by about 1e-8 absolute (largest differences, not relative).
        var adamWorst = 0.0
        for index in 0..<2 {
            let metrics = try step(update: true)
            let lossError = abs(metrics.loss - fixture.values("optimizer", "steps", index, "loss_before_step")[0])
            XCTAssertLessThan(lossError, adamTolerance, "loss before AdamW step \(index + 1)", file: file, line: line)
            adamWorst = max(adamWorst, lossError)
            let expected: [String: Tensor<Double>] = fixture.weights("optimizer", "steps", index, "weights_after_step", as: Double.self)
            for name in fixture.weightOrder {
                let error = zip(model.weights[name]!.scalars, expected[name]!.scalars).map { abs(Double($0) - $1) }.max()!
                adamWorst = max(adamWorst, error)
                XCTAssertLessThan(error, adamTolerance, "\(name) after AdamW step \(index + 1) in \(S.self)", file: file, line: line)
            }
        }
        // At Keras's weights after its first step, the loss, the penalty and every gradient again
        // match to rounding: the second step's figures without the β-rounding drift.
        try model.setWeights(fixture.weights("optimizer", "steps", 0, "weights_after_step", as: S.self))
        compare(
            [S(model.regularizationPenalty)], fixture.values("optimizer", "steps", 1, "regularization_before_step"), "penalty at step 2")
        compare([S(try step(update: false).loss)], fixture.values("optimizer", "steps", 1, "loss_before_step"), "loss at step 2")
        for parameter in model.parameters {
            compare(
                parameter.gradient.array, fixture.values("optimizer", "steps", 1, "gradients_before_step", parameter.name),
                "d loss / d \(parameter.name) at step 2")
        }
        return (worst, adamWorst)
    }

    func testFixtureMatchesKerasInDouble() throws {
        let fixture = try Fixture("no_bias_regularized_adamw")
        let (error, adam) = try Self.check(Self.model(fixture, as: Double.self), fixture, tolerance: 1e-14, adamTolerance: 3e-8)
        print("Keras fixture no_bias_regularized_adamw (Double): outputs, loss, penalty and gradients \(error); two AdamW steps \(adam)")
    }

    func testFixtureMatchesKerasInFloat() throws {
        let fixture = try Fixture("no_bias_regularized_adamw")
        let (error, adam) = try Self.check(Self.model(fixture, as: Float.self), fixture, tolerance: 1e-5, adamTolerance: 1e-5)
        print("Keras fixture no_bias_regularized_adamw (Float): outputs, loss, penalty and gradients \(error); two AdamW steps \(adam)")
        // Keras's own float32 predictions for the same weights and input.
        let url = try XCTUnwrap(
            Bundle.module.url(
                forResource: "keras_no_bias_regularized_adamw.float32_outputs", withExtension: "json", subdirectory: "Fixtures"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let model = try Self.model(fixture, as: Float.self)
        let (x, _) = Self.input(fixture, as: Float.self)
        var predicted = [Float](repeating: 0, count: Self.batch)
        x.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: Self.batch, into: &predicted) }
        let float32Error = relativeError(predicted.map(Double.init), KerasFixture.flatten(root["predict"]!))
        XCTAssertLessThan(float32Error, 1e-5)
        print("Keras fixture no_bias_regularized_adamw: Float against Keras float32 predictions \(float32Error)")
    }

    /// The penalty and its gradient are added once per step, after the shards are summed: one and
    /// two workers give the same loss and the same weights after two AdamW steps.
    func testOneAndTwoWorkersAgree() throws {
        let fixture = try Fixture("no_bias_regularized_adamw")
        let (x, targets) = Self.input(fixture, as: Double.self)
        var results: [(losses: [Double], weights: [String: Tensor<Double>])] = []
        for workers in [1, 2] {
            let model = try Self.model(fixture, as: Double.self, workers: workers)
            var losses: [Double] = []
            for _ in 0..<2 {
                losses.append(
                    try x.withUnsafeBufferPointer { x in
                        try targets.withUnsafeBufferPointer {
                            try model.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: Self.batch).loss
                        }
                    })
            }
            results.append((losses, model.weights))
        }
        for (one, two) in zip(results[0].losses, results[1].losses) { XCTAssertEqual(one, two, accuracy: 1e-14 * abs(one)) }
        XCTAssertEqual(results[0].losses[0], fixture.values("loss_value")[0], accuracy: 1e-14)
        for (name, tensor) in results[0].weights {
            XCTAssertLessThan(relativeError(results[1].weights[name]!.scalars, tensor.scalars), 1e-14, name)
        }
    }

    /// Finite differences of a model's regularised mean squared error in every weight, with
    /// every regulariser kind on every weight kind (Double).
    func testRegularizedLossGradientMatchesFiniteDifferences() throws {
        for cell in 0..<3 {
            let recurrent: any Layer<Double> =
                switch cell {
                case 0:
                    LSTM(
                        units: 4, kernelRegularizer: .l2(0.03), recurrentRegularizer: .l1(0.02), biasRegularizer: .l1l2(l1: 0.01, l2: 0.05))
                case 1:
                    GRU(units: 4, kernelRegularizer: .l1l2(l1: 0.02, l2: 0.01), recurrentRegularizer: .l2(0.04), biasRegularizer: .l1(0.03))
                default: SimpleRNN(units: 4, useBias: false, kernelRegularizer: .l1(0.05), recurrentRegularizer: .l2(0.02))
                }
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: 5, features: 3),
                layers: [recurrent, Dense(units: 2, kernelRegularizer: .l2(0.1), biasRegularizer: .l1l2(l1: 0.03, l2: 0.02))],
                seed: UInt64(cell))
            try model.compile(optimizer: Adam<Double>(), loss: MeanSquaredError())
            for (k, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: UInt64(40 + k), scale: 0.5)) }
            let x = randomValues(5 * 4 * 3, seed: 9, as: Double.self), targets = randomValues(4 * 2, seed: 10, as: Double.self)
            func loss() throws -> Double {
                try x.withUnsafeBufferPointer { x in
                    try targets.withUnsafeBufferPointer {
                        try model.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 4).loss
                    }
                }
            }
            XCTAssertGreaterThan(model.regularizationPenalty, 0)
            _ = try loss()
            let analytic = model.parameters.map { ($0, $0.gradient.array) }
            for (parameter, gradient) in analytic {
                let numeric = try parameter.centralDifferences(of: loss, step: 1e-5)
                XCTAssertLessThan(relativeError(gradient, numeric), 1e-7, "cell \(cell), d loss / d \(parameter.name)")
            }
        }
    }

    /// AdamW decays before Adam's update: `w1 = Adam(w0 − w0 · wd · lr)` with Adam's moments of g.
    func testAdamWDecaysBeforeTheAdamUpdate() {
        let p = Parameter<Double>(name: "w", shape: [2])
        p.value.assign([0.5, -2])
        p.gradient.assign([0.1, 0.3])
        let adamW = AdamW<Double>(learningRate: 0.01, weightDecay: 0.2)
        adamW.apply(to: [p])
        let q = Parameter<Double>(name: "w", shape: [2])
        q.value.assign([0.5 - 0.5 * 0.2 * 0.01, -2 - -2 * 0.2 * 0.01])
        q.gradient.assign([0.1, 0.3])
        Adam<Double>(learningRate: 0.01).apply(to: [q])
        XCTAssertEqual(p.value.array, q.value.array)
        XCTAssertEqual(adamW.iterations, 1)
        XCTAssertEqual(adamW.moments(of: p).m, [0.1 * (1 - 0.9), 0.3 * (1 - 0.9)])
    }

    /// `evaluate` and a training step over the same batch report the same loss, penalty
    /// included (as Keras's `evaluate` does); with one and with two workers.
    func testEvaluateIncludesThePenalty() throws {
        for workers in [1, 2] {
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: 4, features: 3),
                layers: [GRU(units: 5, kernelRegularizer: .l2(0.05)), Dense(units: 3, activation: .softmax, biasRegularizer: .l1(0.1))],
                seed: 2)
            model.workers = workers
            try model.compile(optimizer: AdamW<Double>(), loss: SparseCategoricalCrossentropy())
            for (k, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: UInt64(60 + k), scale: 0.5)) }
            let batchMajor = randomValues(6 * 4 * 3, seed: 3, as: Double.self), labels = [0, 2, 1, 1, 0, 2]
            let data = try TensorDataset(inputs: Tensor(shape: [6, 4, 3], scalars: batchMajor), labels: labels, classCount: 3)
            var x = [Double](repeating: 0, count: batchMajor.count)
            for b in 0..<6 { for t in 0..<4 { for i in 0..<3 { x[(t * 6 + b) * 3 + i] = batchMajor[(b * 4 + t) * 3 + i] } } }
            let trained = try x.withUnsafeBufferPointer { x in
                try labels.map(Int32.init).withUnsafeBufferPointer {
                    try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 6).loss
                }
            }
            let evaluated = try model.evaluate(data, batchSize: 6).loss
            XCTAssertGreaterThan(model.regularizationPenalty, 0.01)
            XCTAssertEqual(evaluated, trained, accuracy: 1e-14, "workers \(workers)")
        }
    }

    /// Keras's factors are float32: l2(0.01) multiplies by Float(0.01).
    func testFactorsAreKerasFloat32() {
        XCTAssertEqual(Regularizer.l2(0.01).l2, Double(Float(0.01)))
        XCTAssertNotEqual(Regularizer.l2(0.01).l2, 0.01)
        let w: [Double] = [-2, 0, 3]
        let r = Regularizer.l1l2(l1: 0.5, l2: 0.25)
        XCTAssertEqual(w.withUnsafeBufferPointer { r.penalty($0.baseAddress!, count: 3) }, 0.5 * 5 + 0.25 * 13)
        var g: [Double] = [1, 1, 1]
        w.withUnsafeBufferPointer { w in g.withUnsafeMutableBufferPointer { r.addGradient(w.baseAddress!, into: $0.baseAddress!, count: 3) }
        }
        XCTAssertEqual(g, [1 - 0.5 - 1, 1, 1 + 0.5 + 1.5])
    }

    /// Bias-free layers have only their kernels, and compute as with a bias of zeros.
    func testBiasFreeLayersHaveNoBiasWeight() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 4, features: 3),
            layers: [
                SimpleRNN(units: 2, returnSequences: true, useBias: false), GRU(units: 3, returnSequences: true, useBias: false),
                GRU(units: 3, resetAfter: false, returnSequences: true, useBias: false), LSTM(units: 2, useBias: false),
                Dense(units: 2, useBias: false),
            ])
        XCTAssertEqual(
            model.parameters.map(\.name),
            [
                "simple_rnn/kernel", "simple_rnn/recurrent_kernel", "gru/kernel", "gru/recurrent_kernel", "gru_1/kernel",
                "gru_1/recurrent_kernel", "lstm/kernel", "lstm/recurrent_kernel", "dense/kernel",
            ])
        XCTAssertEqual(model.parameterCount, (3 * 2 + 2 * 2) + (2 * 9 + 3 * 9) + (3 * 9 + 3 * 9) + (3 * 8 + 2 * 8) + 2 * 2)
    }

    // MARK: Keras files

    /// Keras's `.keras` file carries the bias-free LSTM, the regularisers and AdamW: the model read
    /// from it, given the fixture's exact weights, matches Keras's float64 figures; its own weights
    /// (float32-rounded in the file) match Keras's outputs; the `.weights.h5` file fills a model
    /// built in Swift.
    func testKerasFilesCarryTheSettings() throws {
        let fixture = try Fixture("no_bias_regularized_adamw")
        let loaded = try Keras.loadModel(from: KerasFileTests.fixtureURL("keras_no_bias_regularized_adamw", "keras"), as: Double.self)
        let lstm = try XCTUnwrap(loaded.model.layers[0] as? LSTM<Double>)
        let dense = try XCTUnwrap(loaded.model.layers[1] as? Dense<Double>)
        XCTAssertFalse(lstm.useBias)
        XCTAssertEqual(lstm.kernelRegularizer, .l2(0.01))
        XCTAssertEqual(lstm.recurrentRegularizer, .l1(0.001))
        XCTAssertNil(lstm.biasRegularizer)
        XCTAssertTrue(dense.useBias)
        XCTAssertEqual(dense.kernelRegularizer, .l1l2(l1: 0.002, l2: 0.03))
        XCTAssertEqual(dense.biasRegularizer, .l2(0.05))
        let adamW = try XCTUnwrap(loaded.optimizer as? AdamW<Double>)
        XCTAssertEqual(adamW.weightDecay, 0.004)
        XCTAssertEqual(loaded.loss?.name, "mean_squared_error")
        XCTAssertEqual(loaded.model.parameters.map(\.name), fixture.weightOrder)

        // Keras's own outputs from the file's float32-rounded weights.
        let (x, _) = Self.input(fixture, as: Double.self)
        var predicted = [Double](repeating: 0, count: Self.batch)
        x.withUnsafeBufferPointer { loaded.model.predict(x: $0.baseAddress!, batchSize: Self.batch, into: &predicted) }
        let fromFile = relativeError(predicted, fixture.values("layer_outputs", "dense"))
        XCTAssertLessThan(fromFile, 1e-6)

        // The .weights.h5 file into the model built in Swift, in Double: the same rounded weights.
        let builtDouble = try Self.model(fixture, as: Double.self)
        try builtDouble.loadKerasWeights(from: KerasFileTests.fixtureURL("keras_no_bias_regularized_adamw", "weights.h5"))
        XCTAssertEqual(builtDouble.weights, loaded.model.weights)

        try loaded.model.setWeights(fixture.weights("weights", as: Double.self))
        let (error, adam) = try Self.check(loaded.model, fixture, tolerance: 1e-14, adamTolerance: 3e-8)
        print(
            "Keras file no_bias_regularized_adamw.keras (Double): outputs of its own weights \(fromFile); with the fixture's weights \(error), AdamW \(adam)"
        )

        let floatModel = try Keras.loadModel(from: KerasFileTests.fixtureURL("keras_no_bias_regularized_adamw", "keras"), as: Float.self)
        let built = try Self.model(fixture, as: Float.self)
        try built.loadKerasWeights(from: KerasFileTests.fixtureURL("keras_no_bias_regularized_adamw", "weights.h5"))
        let url = try XCTUnwrap(
            Bundle.module.url(
                forResource: "keras_no_bias_regularized_adamw.float32_outputs", withExtension: "json", subdirectory: "Fixtures"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let expected = KerasFixture.flatten(root["predict"]!)
        let (xf, _) = Self.input(fixture, as: Float.self)
        for (what, model) in [(".keras", floatModel.model), (".weights.h5", built)] {
            var out = [Float](repeating: 0, count: Self.batch)
            xf.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: Self.batch, into: &out) }
            let error = relativeError(out.map(Double.init), expected)
            XCTAssertLessThan(error, 1e-5, what)
            print("Keras file no_bias_regularized_adamw\(what) (Float) against Keras float32 predictions: \(error)")
        }
    }

    /// A bias-free, regularised model trained with AdamW, saved to `.keras` and read back: the
    /// same settings, weights, optimiser state, and the same next step.
    func testKerasRoundTripKeepsTheSettings() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 5, features: 3),
            layers: [
                GRU(units: 4, resetAfter: false, returnSequences: true, useBias: false, recurrentRegularizer: .l1l2(l1: 0.01, l2: 0.02)),
                Bidirectional(LSTM(units: 3, kernelRegularizer: .l2(0.03), biasRegularizer: .l1(0.02))),
                Dense(units: 2, useBias: false, kernelRegularizer: .l1(0.01)),
            ], seed: 3)
        try model.compile(optimizer: AdamW<Double>(learningRate: 0.01, weightDecay: 0.05), loss: MeanSquaredError())
        let x = randomValues(5 * 6 * 3, seed: 4, as: Double.self), targets = randomValues(6 * 2, seed: 5, as: Double.self)
        func step(_ m: Sequential<Double>) throws {
            try x.withUnsafeBufferPointer { x in
                try targets.withUnsafeBufferPointer { _ = try m.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 6) }
            }
        }
        for _ in 0..<2 { try step(model) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-reg-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("model.keras")
        try Keras.saveModel(model, to: url)
        let loaded = try Keras.loadModel(from: url, as: Double.self)
        XCTAssertEqual(loaded.model.parameters.map(\.name), model.parameters.map(\.name))
        XCTAssertEqual(loaded.model.weights, model.weights)
        let gru = try XCTUnwrap(loaded.model.layers[0] as? GRU<Double>)
        XCTAssertFalse(gru.useBias)
        XCTAssertEqual(gru.recurrentRegularizer, .l1l2(l1: 0.01, l2: 0.02))
        let lstm = try XCTUnwrap((loaded.model.layers[1] as? Bidirectional<Double>)?.backwardLayer)
        XCTAssertEqual(lstm.kernelRegularizer, .l2(0.03))
        XCTAssertEqual(lstm.biasRegularizer, .l1(0.02))
        let dense = try XCTUnwrap(loaded.model.layers[2] as? Dense<Double>)
        XCTAssertFalse(dense.useBias)
        XCTAssertEqual(dense.kernelRegularizer, .l1(0.01))
        let adamW = try XCTUnwrap(loaded.optimizer as? AdamW<Double>)
        XCTAssertEqual(adamW.weightDecay, 0.05)
        XCTAssertEqual(adamW.iterations, 2)
        XCTAssertEqual(loaded.model.regularizationPenalty, model.regularizationPenalty)
        try step(model)
        try step(loaded.model)
        XCTAssertEqual(loaded.model.weights, model.weights, "the step after loading")
    }
}
