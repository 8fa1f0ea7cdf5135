import Foundation
import XCTest
@testable import RNNKit
@testable import RNNKitKeras

/// Keras's own files: the fixtures' `.keras` and `.weights.h5` files (written by Keras 3.15.1)
/// read into models that match Keras's outputs; RNNKit's own files read back identically; and
/// every kind of bad file refused with a message naming the file and the item.
final class KerasFileTests: XCTestCase {
    /// The fixtures RNNKit can rebuild, each with its model built in Swift for the `.weights.h5` path.
    static let supported = [
        "lstm", "gru", "gru_reset_before", "stacked_lstm_gru", "many_to_many_mse", "go_backwards_relu",
        "bidirectional_masking",
    ]

    static func fixtureURL(_ name: String, _ ext: String) throws -> URL {
        try XCTUnwrap(
            Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures"),
            "fixture \(name).\(ext) is missing from the test bundle")
    }

    static func swiftModel<S: BLASScalar>(_ name: String, as _: S.Type) throws -> Sequential<S> {
        let layers: [any Layer<S>] =
            switch name {
            case "lstm": [LSTM(units: 8), Dense(units: 10, activation: .softmax)]
            case "gru": [GRU(units: 8), Dense(units: 10, activation: .softmax)]
            case "gru_reset_before": [GRU(units: 6, resetAfter: false), Dense(units: 10, activation: .softmax)]
            case "stacked_lstm_gru": [LSTM(units: 7, returnSequences: true), GRU(units: 5), Dense(units: 10, activation: .softmax)]
            case "many_to_many_mse": [GRU(units: 6, returnSequences: true), Dense(units: 3)]
            case "go_backwards_relu": [SimpleRNN(units: 6, activation: .relu, goBackwards: true), Dense(units: 10, activation: .softmax)]
            case "bidirectional_masking":
                [
                    Masking(maskValue: 0), Bidirectional(SimpleRNN(units: 6, returnSequences: true)),
                    LSTM(units: 5), Dense(units: 10, activation: .softmax),
                ]
            default: preconditionFailure("no model for fixture \(name)")
            }
        return try Sequential<S>(inputShape: .sequence(steps: 28, features: 28), layers: layers, seed: 99)
    }

    /// The model's outputs for the fixture's input, batch-major as Keras returns them.
    static func outputs<S: BLASScalar>(_ model: Sequential<S>, fixture: KerasCellFixtureTests.Fixture) -> [Double] {
        let x = fixture.input(as: S.self).x
        var output = [S](repeating: 0, count: 8 * model.outputShape.scalarCount)
        x.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: 8, into: $0.baseAddress!) }
        }
        return output.map(Double.init)
    }

    static func kerasFloat32Outputs(_ name: String) throws -> [Double] {
        let data = try Data(contentsOf: fixtureURL("keras_\(name).float32_outputs", "json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return KerasFixture.flatten(root["outputs"]!)
    }

    static func largestDifference(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "\(a.count) values against \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    func testKerasFilesRebuildModelsThatMatchKerasOutputs() throws {
        for name in Self.supported {
            let fixture = try KerasCellFixtureTests.Fixture(name)
            let expected = try Self.kerasFloat32Outputs(name)
            let loaded = try Keras.loadModel(from: Self.fixtureURL("keras_\(name)", "keras"), as: Float.self)
            XCTAssertEqual(loaded.kerasVersion, "3.15.1")
            XCTAssertEqual(loaded.model.parameters.map(\.name), fixture.weightOrder, name)
            let fromKeras = Self.largestDifference(Self.outputs(loaded.model, fixture: fixture), expected)
            XCTAssertLessThan(fromKeras, 1e-5, "\(name).keras against Keras's float32 outputs")

            let built = try Self.swiftModel(name, as: Float.self)
            try built.loadKerasWeights(from: Self.fixtureURL("keras_\(name)", "weights.h5"))
            let fromWeights = Self.largestDifference(Self.outputs(built, fixture: fixture), expected)
            XCTAssertLessThan(fromWeights, 1e-5, "\(name).weights.h5 against Keras's float32 outputs")

            // The files hold the fixture's weights rounded to float32 (stored as float64): in Double
            // they arrive bit for bit, and the outputs differ from Keras's float64 ones by that rounding.
            let double = try Keras.loadModel(from: Self.fixtureURL("keras_\(name)", "keras"), as: Double.self)
            let rounded = fixture.weights("weights", as: Double.self).mapValues {
                Tensor(shape: $0.shape, scalars: $0.scalars.map { Double(Float($0)) })
            }
            XCTAssertEqual(double.model.weights, rounded, name)
            let last = try XCTUnwrap(double.model.layers.last).name
            let exact = Self.largestDifference(Self.outputs(double.model, fixture: fixture), fixture.values("layer_outputs", last))
            XCTAssertLessThan(exact, 1e-7, "\(name).keras in Double against Keras's float64 outputs")
            print(
                String(
                    format:
                        "Keras file %@: .keras %.2e, .weights.h5 %.2e (Float, against Keras float32); .keras in Double %.2e (against Keras float64)",
                    name, fromKeras, fromWeights, exact))
        }
    }

    /// The compile settings come back: Adam with Keras's constants and the loss, and the first
    /// step from the file equals Keras's first step.
    func testOptimizerFromTheFileTakesKerasSteps() throws {
        for name in ["lstm", "stacked_lstm_gru"] {
            let fixture = try KerasCellFixtureTests.Fixture(name)
            let loaded = try Keras.loadModel(from: Self.fixtureURL("keras_\(name)", "keras"), as: Double.self)
            let adam = try XCTUnwrap(loaded.optimizer as? Adam<Double>)
            XCTAssertEqual(adam.iterations, 0)
            XCTAssertEqual(adam.learningRate, Double(Float(0.001)))
            XCTAssertEqual(adam.epsilon, 1e-7)
            XCTAssertEqual(loaded.loss?.name, "categorical_crossentropy")
            let (x, labels, _) = fixture.input(as: Double.self)
            var worst = 0.0
            for step in 0..<2 {
                try x.withUnsafeBufferPointer { x in
                    try labels.withUnsafeBufferPointer {
                        _ = try loaded.model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 8)
                    }
                }
                let expected: [String: Tensor<Double>] = fixture.weights("adam", "steps", step, "weights_after_step", as: Double.self)
                for weight in fixture.weightOrder {
                    worst = max(worst, relativeError(loaded.model.weights[weight]!.scalars, expected[weight]!.scalars))
                }
            }
            // Keras rounds β to float32 in its bias corrections and reads lr as float32: about 1e-8.
            XCTAssertLessThan(worst, 1e-6, name)
            print(String(format: "Keras file %@: two Adam steps from the file's optimiser, largest relative error %.2e", name, worst))
        }
    }

    /// The notebook's Model A as Keras trained it: 16,880 Adam steps of state come with it.
    func testTrainedModelACarriesItsOptimizerState() throws {
        let loaded = try Keras.loadModel(from: Self.fixtureURL("keras_trained_model_a", "keras"), as: Float.self)
        XCTAssertEqual(loaded.model.parameters.map(\.name), KerasFixture.weightNames)
        let adam = try XCTUnwrap(loaded.optimizer as? Adam<Float>)
        XCTAssertEqual(adam.iterations, 16_880)
        XCTAssertEqual(loaded.notes, [])
        let kernel = try XCTUnwrap(loaded.model.parameters.first)
        let (m, v) = adam.moments(of: kernel)
        XCTAssertTrue(m.contains { $0 != 0 } && v.allSatisfy { $0 >= 0 } && v.contains { $0 > 0 })
    }

    // MARK: Round trips

    /// A model RNNKit trained, written as `.keras` and read back: the same weights, optimiser state,
    /// compile settings and outputs, for each optimiser and in Float and Double.
    func testKerasFilesRoundTrip() throws {
        try roundTrip(Float.self, optimizer: Adam<Float>(learningRate: 0.003, clipping: .norm(0.5)), loss: CategoricalCrossentropy())
        try roundTrip(
            Double.self, optimizer: SGD<Double>(learningRate: 0.1, momentum: 0.9, nesterov: true), loss: SparseCategoricalCrossentropy())
        try roundTrip(
            Float.self, optimizer: RMSprop<Float>(learningRate: 0.002, rho: 0.8, clipping: .value(0.01)), loss: CategoricalCrossentropy())
        try roundTrip(Float.self, optimizer: SGD<Float>(learningRate: 0.05, clipping: .globalNorm(0.1)), loss: CategoricalCrossentropy())
    }

    private func roundTrip<S: BLASScalar>(_: S.Type, optimizer: any StatefulOptimizer<S>, loss: any Loss) throws {
        let model = try Sequential<S>(
            inputShape: .sequence(steps: 5, features: 3),
            layers: [
                SimpleRNN(units: 4, returnSequences: true, activation: .relu), Dropout(rate: 0.1, seed: 4),
                LSTM(units: 3, returnSequences: true, goBackwards: true, dropout: 0.2, recurrentDropout: 0.3, seed: 7),
                Bidirectional(GRU(units: 5, resetAfter: false, returnSequences: true, recurrentDropout: 0.25), mergeMode: .average),
                Bidirectional(LSTM(units: 2, returnSequences: true)), GRU(units: 4), Dense(units: 6, activation: .softmax),
            ], seed: 5)
        try model.compile(optimizer: optimizer, loss: loss)
        let (x, labels) = randomBatch(steps: 5, batch: 7, features: 3, classes: 6, seed: 1, as: S.self)
        for _ in 0..<3 {
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { _ = try model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 7) }
            }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-keras-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("model.keras")
        try Keras.saveModel(model, to: url)
        let loaded = try Keras.loadModel(from: url, as: S.self)
        let what = "\(S.self) \(optimizer.name)"
        XCTAssertEqual((loaded.model.layers[2] as? RecurrentLayer<S>)?.dropout, 0.2)
        XCTAssertEqual((loaded.model.layers[2] as? RecurrentLayer<S>)?.recurrentDropout, 0.3)
        XCTAssertEqual((loaded.model.layers[3] as? Bidirectional<S>)?.backwardLayer.recurrentDropout, 0.25)
        XCTAssertEqual((loaded.model.layers[1] as? Dropout<S>)?.rate, 0.1)
        XCTAssertEqual(loaded.model.weights, model.weights, what)
        let restored = try XCTUnwrap(loaded.optimizer, what)
        XCTAssertEqual(restored.name, optimizer.name)
        XCTAssertEqual(restored.clipping, optimizer.clipping, what)
        XCTAssertEqual(restored.iterations, 3)
        XCTAssertEqual(restored.learningRate, optimizer.learningRate, what)
        XCTAssertEqual(loaded.loss?.name, loss.name)
        let keptSlots = KerasWeightsLayout.slotOrder(of: optimizer)
        for slot in keptSlots {
            for (a, b) in zip(model.parameters, loaded.model.parameters) {
                XCTAssertEqual(
                    optimizer.state.values(slot: slot, for: a), restored.state.values(slot: slot, for: b),
                    "\(what) slot \(slot) of \(a.name)")
            }
        }
        var before = [S](repeating: 0, count: 7 * 6), after = before
        x.withUnsafeBufferPointer { x in
            before.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: 7, into: $0.baseAddress!) }
            after.withUnsafeMutableBufferPointer { loaded.model.predict(x: x.baseAddress!, batchSize: 7, into: $0.baseAddress!) }
        }
        XCTAssertEqual(before, after, what)
        // And the next step is the same step, dropout masks included (they follow from the seed and the step).
        for m in [model, loaded.model] {
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { _ = try m.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 7) }
            }
        }
        XCTAssertEqual(loaded.model.weights, model.weights, "\(what): the step after loading")

        // The weights file alone, into a model built in Swift with the same layers.
        let weightsURL = folder.appendingPathComponent("model.weights.h5")
        try model.saveKerasWeights(to: weightsURL)
        let fresh = try Keras.buildModel(config: Keras.config(of: model), as: S.self, seed: 77)
        XCTAssertNotEqual(fresh.model.weights, model.weights)
        try fresh.model.loadKerasWeights(from: weightsURL, optimizer: fresh.optimizer)
        XCTAssertEqual(fresh.model.weights, model.weights)
        XCTAssertEqual(fresh.optimizer?.iterations, 4)
    }

    /// Bidirectional's weights carry Keras's names (the fixture's `weight_order`) and sit where
    /// Keras keeps them: the fixture's file loads into the same layers built in Swift.
    func testBidirectionalUsesKerasNamesAndLayout() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                Bidirectional(SimpleRNN(units: 6, returnSequences: true)), LSTM(units: 5), Dense(units: 10, activation: .softmax),
            ])
        let order =
            try XCTUnwrap(
                JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtureURL("keras_bidirectional_masking", "json")))
                    as? [String: Any])["weight_order"] as? [String]
        XCTAssertEqual(model.parameters.map(\.name), order)
        XCTAssertEqual(model.outputShape, .vector(features: 10))
        XCTAssertEqual(model.layers[0].outputShape, .sequence(steps: 28, features: 12))
        try model.loadKerasWeights(from: Self.fixtureURL("keras_bidirectional_masking", "weights.h5"))
        let fixture = try KerasCellFixtureTests.Fixture("bidirectional_masking")
        let expected: [String: Tensor<Float>] = fixture.weights("weights", as: Float.self)
        for name in fixture.weightOrder { XCTAssertEqual(model.weights[name], expected[name], name) }
    }

    func testTimeDistributedDenseRoundTripsUnderKerasNames() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 2),
            layers: [
                GRU(units: 3, returnSequences: true), TimeDistributed(Dense(units: 2)),
            ])
        try model.compile(optimizer: Adam(), loss: MeanSquaredError())
        XCTAssertEqual(model.parameters.map(\.name).suffix(2), ["time_distributed/kernel", "time_distributed/bias"])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-td-\(UUID()).keras")
        defer { try? FileManager.default.removeItem(at: url) }
        try Keras.saveModel(model, to: url)
        let loaded = try Keras.loadModel(from: url, as: Float.self)
        XCTAssertTrue(loaded.model.layers.last is TimeDistributed<Float>)
        XCTAssertEqual(loaded.model.weights, model.weights)
        XCTAssertEqual(loaded.loss?.name, "mean_squared_error")
    }

    // MARK: Refusals

    private func message(of body: () throws -> Void) -> String {
        do {
            try body()
            XCTFail("expected an error")
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testUnsupportedLayersAndOptionsAreAllNamed() throws {
        let config = """
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [null, 10, 4], "dtype": "float32", "name": "in"}},
              {"class_name": "Conv1D", "config": {"name": "conv1d", "filters": 3}},
              {"class_name": "LSTM", "config": {"name": "lstm", "units": 4, "recurrent_dropout": 1.5, "return_state": false,
                                                 "kernel_regularizer": {"class_name": "OrthogonalRegularizer", "config": {}},
                                                 "kernel_initializer": {"class_name": "HeNormal", "config": {}}}},
              {"class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "gelu", "dtype": "bfloat16",
                                                  "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.01}}}}]},
             "compile_config": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001, "amsgrad": true}},
                                "loss": "huber"}}
            """
        let text = message { _ = try Keras.buildModel(config: Data(config.utf8), file: "crafted.keras: config.json", as: Float.self) }
        for item in [
            "crafted.keras: config.json: RNNKit cannot rebuild this model",
            "layers[1] (Conv1D \"conv1d\"): layer Conv1D is not supported",
            "layers[2] (LSTM \"lstm\"): option recurrent_dropout = 1.5 is not in [0, 1)",
            "layers[2] (LSTM \"lstm\"): kernel_regularizer OrthogonalRegularizer is not supported (L1, L2, L1L2)",
            "layers[2] (LSTM \"lstm\"): kernel_initializer HeNormal is not supported",
            "layers[3] (Dense \"dense\"): dtype bfloat16 is not supported",
            "layers[3] (Dense \"dense\"): activation \"gelu\" is not supported",
            "layers[3] (Dense \"dense\"): option activity_regularizer = {\"class_name\":\"L2\"",
            "compile_config.optimizer (Adam): option amsgrad = true is not supported (only false)",
            "compile_config.loss: loss \"huber\" is not supported",
        ] {
            XCTAssertTrue(text.contains(item), "missing «\(item)» in:\n\(text)")
        }
        XCTAssertTrue(text.contains("because of 9 items"), text)

        let huge = """
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [null, 10, 4], "name": "in"}},
              {"class_name": "LSTM", "config": {"name": "lstm", "units": 1000000000}}]}}
            """
        let refused = message { _ = try Keras.buildModel(config: Data(huge.utf8), file: "huge", as: Float.self) }
        XCTAssertTrue(
            refused.contains("the model: would have 4000000020000000000 weights, more than the 268435456 RNNKit builds from a file"),
            refused)

        let functional = """
            {"class_name": "Functional", "config": {"name": "f", "layers": [
              {"class_name": "InputLayer", "name": "a", "config": {"batch_shape": [null, 5, 2], "name": "a"}, "inbound_nodes": []},
              {"class_name": "SimpleRNN", "name": "r", "config": {"name": "r", "units": 3, "return_sequences": true},
               "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}], "kwargs": {}}]},
              {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2},
               "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}], "kwargs": {}}]}],
              "input_layers": [["a", 0, 0]], "output_layers": [["d", 0, 0]]}}
            """
        let graph = message { _ = try Keras.buildModel(config: Data(functional.utf8), as: Float.self) }
        XCTAssertTrue(graph.contains("layers[2] \"d\": takes [\"a\"] as input, not only the layer before it"), graph)
        let stack = functional.replacingOccurrences(
            of: "\"keras_history\": [\"a\", 0, 0]}}], \"kwargs\": {}}]}],", with: "\"keras_history\": [\"r\", 0, 0]}}], \"kwargs\": {}}]}],"
        )
        let built = try Keras.buildModel(config: Data(stack.utf8), as: Float.self)
        XCTAssertEqual(
            built.model.parameters.map(\.name),
            ["simple_rnn/kernel", "simple_rnn/recurrent_kernel", "simple_rnn/bias", "dense/kernel", "dense/bias"])
    }

    func testDamagedFilesAreRefusedByName() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-bad-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = try Data(contentsOf: Self.fixtureURL("keras_lstm", "keras"))

        let truncated = folder.appendingPathComponent("truncated.keras")
        try original.prefix(original.count / 2).write(to: truncated)
        let cut = message { _ = try Keras.loadModel(from: truncated, as: Float.self) }
        XCTAssertTrue(cut.hasPrefix(truncated.path + ": "), cut)
        XCTAssertTrue(cut.contains("damaged or truncated"), cut)

        let missing = message { _ = try Keras.loadModel(from: folder.appendingPathComponent("absent.keras"), as: Float.self) }
        XCTAssertTrue(missing.hasSuffix("absent.keras: not found"), missing)

        let weightsAsModel = message { _ = try Keras.loadModel(from: Self.fixtureURL("keras_lstm", "weights.h5"), as: Float.self) }
        XCTAssertTrue(weightsAsModel.contains("is an HDF5 file (a .weights.h5? load it with loadKerasWeights)"), weightsAsModel)

        // A weights file from another architecture: every missing dataset and wrong shape is listed.
        let other = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [LSTM(units: 7), Dense(units: 10)])
        let otherURL = folder.appendingPathComponent("other.weights.h5")
        try other.saveKerasWeights(to: otherURL)
        let stacked = try Self.swiftModel("stacked_lstm_gru", as: Float.self)
        let before = stacked.weights
        let mismatch = message { try stacked.loadKerasWeights(from: otherURL) }
        XCTAssertTrue(mismatch.hasPrefix(otherURL.path + ": the weights do not fit the model:"), mismatch)
        XCTAssertFalse(mismatch.contains("layers/lstm/"), "the LSTM's weights fit and are not listed: \(mismatch)")
        XCTAssertTrue(mismatch.contains("layers/gru/cell/vars/0 (gru/kernel): missing (the model has shape [7, 15])"), mismatch)
        XCTAssertTrue(mismatch.contains("layers/dense/vars/0 (dense/kernel): the model has shape [5, 10], the file has [7, 10]"), mismatch)
        XCTAssertEqual(stacked.weights, before, "a refused file leaves the model unchanged")

        let garbage = folder.appendingPathComponent("garbage.weights.h5")
        try (Array(HDF5File.signature) + [UInt8](repeating: 7, count: 100)).withUnsafeBufferPointer {
            try Data(buffer: $0).write(to: garbage)
        }
        let broken = message { try stacked.loadKerasWeights(from: garbage) }
        XCTAssertEqual(broken, "\(garbage.path): cannot be read as HDF5 (truncated or damaged)")
    }
}
