import Foundation
import XCTest
@testable import RNNKit

/// LSTM, GRU (both reset forms), a stacked LSTM → GRU, go_backwards, masking with Bidirectional and a
/// per-step GRU regression against Keras's float64 fixtures
/// (`keras_<name>.json`, copied from `shared/fixtures`): every layer's output, the loss, every
/// gradient and two Adam steps, in Double and in Float.
final class KerasCellFixtureTests: XCTestCase {
    /// A fixture of the "more architectures" set (see the fixtures' README).
    struct Fixture {
        let name: String
        let root: [String: Any]

        init(_ name: String) throws {
            self.name = name
            let url = try XCTUnwrap(
                Bundle.module.url(forResource: "keras_\(name)", withExtension: "json", subdirectory: "Fixtures"),
                "fixture keras_\(name).json is missing from the test bundle")
            root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        }

        func node(_ path: [Any]) -> Any {
            var node: Any = root
            for key in path {
                if let key = key as? String { node = (node as! [String: Any])[key]! } else { node = (node as! [Any])[key as! Int] }
            }
            return node
        }

        func values(_ path: Any...) -> [Double] { KerasFixture.flatten(node(path)) }

        var weightOrder: [String] { root["weight_order"] as! [String] }
        func shape(_ weight: String) -> [Int] { ((root["weight_shapes"] as! [String: Any])[weight] as! [NSNumber]).map(\.intValue) }

        /// The weights under `path` ("weights", or an Adam step's "weights_after_step").
        func weights<S: BLASScalar>(_ path: Any..., as _: S.Type) -> [String: Tensor<S>] {
            let table = node(path) as! [String: Any]
            return Dictionary(
                uniqueKeysWithValues: weightOrder.map { name in
                    (name, Tensor(shape: shape(name), scalars: KerasFixture.flatten(table[name]!).map { S($0) }))
                })
        }

        /// The input batch, time-major `[28, 8, 28]`, its labels, and (for a per-step regression)
        /// its targets, time-major `[28, 8, F]`.
        func input<S: BLASScalar>(as _: S.Type) -> (x: [S], labels: [Int32], targets: [S]?) {
            func timeMajor(_ batchMajor: [Double], width: Int) -> [S] {
                var result = [S](repeating: 0, count: batchMajor.count)
                for b in 0..<8 {
                    for t in 0..<28 { for i in 0..<width { result[(t * 8 + b) * width + i] = S(batchMajor[(b * 28 + t) * width + i]) } }
                }
                return result
            }
            let targets = (root["input"] as! [String: Any])["targets"].flatMap { $0 is NSNull ? nil : $0 }
                .map { timeMajor(KerasFixture.flatten($0), width: KerasFixture.flatten($0).count / (8 * 28)) }
            return (timeMajor(values("input", "x"), width: 28), values("input", "labels").map { Int32($0) }, targets)
        }

        /// The model the fixture describes, built in Swift.
        func model<S: BLASScalar>(as _: S.Type) throws -> Sequential<S> {
            let layers: [any Layer<S>] =
                switch name {
                case "lstm": [LSTM(units: 8), Dense(units: 10, activation: .softmax)]
                case "gru": [GRU(units: 8), Dense(units: 10, activation: .softmax)]
                case "gru_reset_before": [GRU(units: 6, resetAfter: false), Dense(units: 10, activation: .softmax)]
                case "stacked_lstm_gru": [LSTM(units: 7, returnSequences: true), GRU(units: 5), Dense(units: 10, activation: .softmax)]
                case "go_backwards_relu":
                    [SimpleRNN(units: 6, activation: .relu, goBackwards: true), Dense(units: 10, activation: .softmax)]
                case "bidirectional_masking":
                    [
                        Masking(maskValue: 0), Bidirectional(SimpleRNN(units: 6, returnSequences: true)),
                        LSTM(units: 5), Dense(units: 10, activation: .softmax),
                    ]
                case "many_to_many_mse": [GRU(units: 6, returnSequences: true), Dense(units: 3)]
                default: preconditionFailure("no model for fixture \(name)")
                }
            let model = try Sequential<S>(inputShape: .sequence(steps: 28, features: 28), layers: layers)
            try model.compile(
                optimizer: Adam<S>(learningRate: 0.001),
                loss: name == "many_to_many_mse" ? MeanSquaredError() : CategoricalCrossentropy())
            try model.setWeights(weights("weights", as: S.self))
            return model
        }
    }

    static let names = [
        "lstm", "gru", "gru_reset_before", "stacked_lstm_gru", "go_backwards_relu", "bidirectional_masking",
        "many_to_many_mse",
    ]

    /// Every layer's output for the fixture's input, batch-major as Keras returns it.
    func layerOutputs<S: BLASScalar>(_ model: Sequential<S>, x: [S]) -> [[S]] {
        var outputs: [[S]] = []
        x.withUnsafeBufferPointer { x in
            var activations = x.baseAddress!
            for (index, layer) in model.layers.enumerated() {
                layer.reserve(batchCapacity: 8, needsInputGradient: true, backend: model.backend)
                // Layer by layer, the mask handed on as the model hands it.
                let prefix = Array(model.layers[...index])
                activations =
                    MaskRole.forward(
                        prefix, roles: prefix.map { MaskRole($0) }, input: x.baseAddress!,
                        batchSize: 8, backend: model.backend
                    ).output
                let shape = layer.outputShape, width = shape.features, steps = shape.steps
                var batchMajor = [S](repeating: 0, count: 8 * shape.scalarCount)
                for t in 0..<steps {
                    for b in 0..<8 {
                        for j in 0..<width {
                            batchMajor[(b * steps + t) * width + j] = activations[(t * 8 + b) * width + j]
                        }
                    }
                }
                outputs.append(batchMajor)
            }
        }
        return outputs
    }

    /// Largest relative error over outputs, loss and gradients, and over two Adam steps.
    func check<S: BLASScalar>(_ fixture: Fixture, as _: S.Type, tolerance: Double, adamTolerance: Double) throws -> (Double, Double) {
        let model = try fixture.model(as: S.self)
        let (x, labels, fixtureTargets) = fixture.input(as: S.self)
        let targets = model.loss!.targets == .values ? fixtureTargets : nil
        // One step on the batch, against the labels or (per-step regression) the targets.
        func step(update: Bool) throws -> Metrics {
            try x.withUnsafeBufferPointer { x in
                if let targets {
                    return try targets.withUnsafeBufferPointer {
                        update
                            ? try model.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 8)
                            : try model.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: 8)
                    }
                }
                return try labels.withUnsafeBufferPointer {
                    update
                        ? try model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 8)
                        : try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 8)
                }
            }
        }
        var worst = 0.0
        func compare(_ ours: [S], _ theirs: [Double], _ what: String) {
            let error = relativeError(ours.map(Double.init), theirs)
            worst = max(worst, error)
            XCTAssertLessThan(error, tolerance, "\(fixture.name) \(what) in \(S.self)")
        }
        let layerNames = (fixture.root["layer_outputs"] as! [String: Any]).keys
        for (layer, output) in zip(model.layers, layerOutputs(model, x: x)) {
            XCTAssertTrue(layerNames.contains(layer.name), "fixture \(fixture.name) has no output for \(layer.name)")
            compare(output, fixture.values("layer_outputs", layer.name), "output of \(layer.name)")
        }
        let loss = try step(update: false).loss
        compare([S(loss)], [fixture.values("loss_value")[0]], "loss")
        let gradients = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.gradient.array) })
        for name in fixture.weightOrder { compare(gradients[name]!, fixture.values("gradients", name), "d loss / d \(name)") }

        // Two Adam steps on the same batch. Keras in float64 rounds β to float32 inside its bias
        // corrections, so the trajectories differ by about 1e-8 relative.
        var adamWorst = 0.0
        for index in 0..<2 {
            let metrics = try step(update: true)
            let lossError = abs(metrics.loss - fixture.values("adam", "steps", index, "loss_before_step")[0]) / metrics.loss
            adamWorst = max(adamWorst, lossError)
            let expected: [String: Tensor<Double>] = fixture.weights("adam", "steps", index, "weights_after_step", as: Double.self)
            for name in fixture.weightOrder {
                let error = relativeError(model.weights[name]!.scalars.map(Double.init), expected[name]!.scalars)
                adamWorst = max(adamWorst, error)
                XCTAssertLessThan(error, adamTolerance, "\(fixture.name) \(name) after Adam step \(index + 1) in \(S.self)")
            }
        }
        return (worst, adamWorst)
    }

    func testEveryCellMatchesKerasInDouble() throws {
        for name in Self.names {
            let (error, adam) = try check(Fixture(name), as: Double.self, tolerance: 1e-12, adamTolerance: 1e-7)
            print("Keras fixture \(name) (Double): outputs, loss and gradients \(error); two Adam steps \(adam)")
        }
    }

    func testEveryCellMatchesKerasInFloat() throws {
        for name in Self.names {
            let (error, adam) = try check(Fixture(name), as: Float.self, tolerance: 1e-5, adamTolerance: 1e-5)
            print("Keras fixture \(name) (Float): outputs, loss and gradients \(error); two Adam steps \(adam)")
        }
    }

    /// Keras's parameter counts in the summary.
    func testSummaryCountsMatchKeras() throws {
        let lstm = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [LSTM(units: 8)])
        XCTAssertEqual(lstm.parameterCount, 1_184)
        let gru = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [GRU(units: 8)])
        XCTAssertEqual(gru.parameterCount, 912)
        let gruBefore = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [GRU(units: 6, resetAfter: false)])
        XCTAssertEqual(gruBefore.parameterCount, 3 * (28 * 6 + 6 * 6 + 6))
        let summary = try Fixture("stacked_lstm_gru").model(as: Float.self).summary()
        XCTAssertTrue(summary.contains("│ lstm (LSTM)                     │ (None, 28, 7)          │         1,008 │"), summary)
        XCTAssertTrue(summary.contains("│ gru (GRU)                       │ (None, 5)              │           210 │"), summary)
    }

    /// Keras's initial values: LSTM's forget-gate bias starts at 1, the rest of the bias at 0;
    /// kernels are Glorot-uniform over `[D, G·H]` and recurrent kernels orthogonal `[H, G·H]`.
    func testInitialValuesAreKeras() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 5, features: 6),
            layers: [LSTM(units: 3, returnSequences: true), GRU(units: 4)], seed: 3)
        let bias = model.weights["lstm/bias"]!.scalars
        XCTAssertEqual(bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(model.weights["gru/bias"]!.shape, [2, 12])
        // U [H, G·H] with H < G·H has orthonormal rows: U·Uᵀ = I.
        let u = model.weights["gru/recurrent_kernel"]!
        for i in 0..<4 {
            for j in 0..<4 {
                let dot = (0..<12).reduce(0.0) { $0 + u[i, $1] * u[j, $1] }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
        let limit = (6.0 / Double(6 + 12)).squareRoot() // fan_in D = 6, fan_out 4H = 12
        XCTAssertTrue(model.weights["lstm/kernel"]!.scalars.allSatisfy { abs($0) <= limit })
    }
}
