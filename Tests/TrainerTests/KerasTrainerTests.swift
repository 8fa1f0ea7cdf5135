import ArgumentParser
import Foundation
import XCTest
@testable import RNNKit
import RNNKitKeras
import RNNKitONNX
@testable import TrainerSupport

/// `train-blas` with Keras's files: the notebook's Model A as Keras trained it is evaluated,
/// trained further and written back; flags override its training settings; RNNKit's own files
/// need no architecture flags; and what cannot work is refused by name.
final class KerasTrainerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("RNNKitTests/Fixtures")
    static var trainedModelA: String { fixtures.appendingPathComponent("keras_trained_model_a.keras").path }

    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-keras-trainer-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func run(_ arguments: [String], output: String) throws -> [String: Any] {
        let mnist = try TrainerCommandTests.requireMNIST()
        try TrainBlas.parse(["--data", mnist.path, "--output", folder.appendingPathComponent(output).path] + arguments).run()
        let data = try Data(contentsOf: folder.appendingPathComponent(output).appendingPathComponent("metrics.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Keras evaluates its trained Model A at test loss 0.754191, accuracy 0.7501 (the fixtures' README).
    func testKerasTrainedModelAEvaluatesTrainsAndGoesBack() throws {
        let evaluated = try run(["--load", Self.trainedModelA, "--epochs", "0"], output: "evaluate")
        XCTAssertEqual(evaluated["test_categorical_accuracy"] as? Double, 0.7501)
        XCTAssertEqual(try XCTUnwrap(evaluated["test_loss"] as? Double), 0.754191, accuracy: 5e-6)
        XCTAssertEqual(evaluated["model"] as? String, "SimpleRNN(10)")

        // Continue Keras's run: its Adam state comes along, and the result goes out as .keras.
        let continued = try run(
            ["--load", Self.trainedModelA, "--epochs", "1", "--limit", "3200", "--save", path("continued.keras")],
            output: "continue")
        let saved = try Keras.loadModel(from: folder.appendingPathComponent("continued.keras"), as: Float.self)
        XCTAssertEqual(saved.optimizer?.iterations, 16_880 + 90)
        XCTAssertEqual(saved.optimizer?.name, "adam")
        let again = try run(["--load", path("continued.keras"), "--epochs", "0"], output: "again")
        XCTAssertEqual(again["test_categorical_accuracy"] as? Double, continued["test_categorical_accuracy"] as? Double)
        XCTAssertEqual(again["test_loss"] as? Double, continued["test_loss"] as? Double)

        // Flags given override the file's training settings: a fresh SGD at rate 1.
        _ = try run(
            [
                "--load", Self.trainedModelA, "--epochs", "1", "--limit", "320", "--optimizer", "sgd", "--learning-rate", "1",
                "--save", path("sgd.keras"),
            ], output: "sgd")
        let sgd = try Keras.loadModel(from: folder.appendingPathComponent("sgd.keras"), as: Float.self)
        XCTAssertEqual(sgd.optimizer?.name, "sgd")
        XCTAssertEqual(sgd.optimizer?.learningRate, 1)
        XCTAssertEqual(sgd.optimizer?.iterations, 9)

        // Keras's weights file into the flags' model (the default is Model A), and back.
        _ = try run(["--load", path("continued.keras"), "--epochs", "0", "--save", path("weights.weights.h5")], output: "h5")
        let fromWeights = try run(["--load", path("weights.weights.h5"), "--epochs", "0"], output: "from-h5")
        XCTAssertEqual(fromWeights["test_categorical_accuracy"] as? Double, continued["test_categorical_accuracy"] as? Double)
    }

    /// `--save model.onnx` writes what `ONNXExport` writes (ONNXExportTests runs such files in
    /// onnxruntime); a model ONNX cannot express (Masking over MNIST's rows, blank at both ends)
    /// is refused before any training, naming the layer.
    func testSaveONNX() throws {
        _ = try run(["--load", Self.trainedModelA, "--epochs", "0", "--save", path("model.onnx")], output: "onnx")
        let model = try Keras.loadModel(from: URL(fileURLWithPath: Self.trainedModelA), as: Float.self).model
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("model.onnx")), try ONNXExport.serialize(model))
        XCTAssertThrowsError(try run(["--mask-value", "0", "--epochs", "1", "--save", path("masked.onnx")], output: "masked")) { error in
            XCTAssertTrue(
                TrainBlas.message(for: error).contains("--save \(self.path("masked.onnx")): ONNX export: the mask of masking"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("masked.onnx")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("masked/metrics.json")))
    }

    /// RNNKit's safetensors carry the Keras config: `--load` rebuilds a GRU(12) with no flags.
    func testRNNKitSafetensorsNeedNoArchitectureFlags() throws {
        let first = try run(
            ["--cell", "gru", "--units", "12", "--epochs", "1", "--limit", "640", "--save", path("gru.safetensors")],
            output: "gru")
        let again = try run(["--load", path("gru.safetensors"), "--epochs", "0"], output: "gru-again")
        XCTAssertEqual(again["model"] as? String, "GRU(12)")
        XCTAssertEqual(again["test_categorical_accuracy"] as? Double, first["test_categorical_accuracy"] as? Double)
    }

    /// A run from a `.keras` file resumes from its checkpoint to the same weights as an
    /// uninterrupted run: the checkpoint keeps the architecture.
    func testARunFromAKerasFileResumesExactly() throws {
        let common = ["--epochs", "2", "--limit", "640", "--workers", "1"]
        _ = try run(
            ["--load", Self.trainedModelA, "--checkpoint-every", "1", "--epochs", "1", "--limit", "640", "--workers", "1"],
            output: "first")
        _ = try run(["--resume", path("first")] + common, output: "resumed")
        _ = try run(["--load", Self.trainedModelA] + common, output: "whole")
        let resumed = try Data(contentsOf: folder.appendingPathComponent("resumed/weights.safetensors"))
        let whole = try Data(contentsOf: folder.appendingPathComponent("whole/weights.safetensors"))
        XCTAssertEqual(
            try SafeTensors.decode(resumed, file: "r", as: Float.self).tensors,
            try SafeTensors.decode(whole, file: "w", as: Float.self).tensors)
    }

    /// `--bidirectional`, `--go-backwards`, `--clipnorm`, `--dropout`, `--recurrent-dropout` and
    /// `--mask-value` build and train that model, and the `.keras` file it saves says so.
    func testSequenceFeatureFlags() throws {
        let metrics = try run(
            [
                "--cell", "gru", "--units", "8", "--bidirectional", "ave", "--go-backwards", "--clipnorm", "1", "--dropout", "0.25",
                "--recurrent-dropout", "0.2", "--mask-value", "0",
                "--epochs", "1", "--limit", "640", "--save", path("bi.keras"),
            ], output: "bi")
        XCTAssertEqual(metrics["model"] as? String, "Bidirectional(GRU(8))")
        let loaded = try Keras.loadModel(from: folder.appendingPathComponent("bi.keras"), as: Float.self)
        XCTAssertEqual((loaded.model.layers.first as? Masking<Float>)?.maskValue, 0)
        let layer = try XCTUnwrap(loaded.model.layers.dropFirst().first as? Bidirectional<Float>)
        XCTAssertEqual(layer.mergeMode, .average)
        XCTAssertTrue(layer.forwardLayer.goBackwards)
        XCTAssertFalse(layer.backwardLayer.goBackwards)
        XCTAssertEqual(loaded.optimizer?.clipping, .norm(1))
        XCTAssertEqual(layer.forwardLayer.dropout, 0.25)
        XCTAssertEqual(layer.backwardLayer.recurrentDropout, 0.2)
        XCTAssertEqual(loaded.optimizer?.iterations, 18)

        for (arguments, expected) in [
            (["--clipnorm", "1", "--clipvalue", "1"], "give one of --clipnorm, --clipvalue, as Keras allows one"),
            (["--global-clipnorm", "0"], "--global-clipnorm must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 0.0"),
            (["--bidirectional", "stack"], "--bidirectional"),
            (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
            (["--recurrent-dropout", "1.5"], "--recurrent-dropout must be in [0, 1), got 1.5"),
        ] {
            XCTAssertThrowsError(try TrainBlas.parse(arguments)) { error in
                XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
                XCTAssertTrue(TrainBlas.message(for: error).contains(expected), TrainBlas.message(for: error))
            }
        }
    }

    /// Dropout's masks follow from the seed and the step, so a run with dropout resumes exactly too.
    func testARunWithDropoutResumesExactly() throws {
        let common = ["--units", "8", "--dropout", "0.3", "--limit", "640", "--workers", "2"]
        _ = try run(common + ["--epochs", "1", "--checkpoint-every", "1"], output: "first")
        _ = try run(common + ["--epochs", "2", "--resume", path("first")], output: "resumed")
        _ = try run(common + ["--epochs", "2"], output: "whole")
        let resumed = try Data(contentsOf: folder.appendingPathComponent("resumed/weights.safetensors"))
        let whole = try Data(contentsOf: folder.appendingPathComponent("whole/weights.safetensors"))
        XCTAssertEqual(
            try SafeTensors.decode(resumed, file: "r", as: Float.self).tensors,
            try SafeTensors.decode(whole, file: "w", as: Float.self).tensors)
    }

    func testWhatCannotWorkIsRefusedByName() throws {
        let mnist = try TrainerCommandTests.requireMNIST()
        XCTAssertThrowsError(try TrainBlas.parse(["--load", Self.trainedModelA, "--units", "12"])) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertTrue(
                TrainBlas.message(for: error).contains("builds the model a .keras file describes; drop --units"),
                TrainBlas.message(for: error))
        }
        XCTAssertThrowsError(try TrainBlas.parse(["--load", path("model.onnx")])) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertTrue(TrainBlas.message(for: error).contains("does not read them"), TrainBlas.message(for: error))
        }
        XCTAssertThrowsError(try TrainBlas.parse(["--save", "weights.bin"])) { error in
            XCTAssertTrue(
                TrainBlas.message(for: error).contains(
                    "--save weights.bin: name the format by the extension: .keras, .weights.h5, .safetensors or .onnx"),
                TrainBlas.message(for: error))
        }
        let regression = Self.fixtures.appendingPathComponent("keras_many_to_many_mse.keras").path
        XCTAssertThrowsError(try TrainBlas.parse(["--data", mnist.path, "--load", regression, "--output", path("r")]).run()) { error in
            XCTAssertTrue("\(error)".contains("the model is compiled with mean_squared_error"), "\(error)")
        }
        // A model for other inputs: the trainer says what it takes and what MNIST rows are.
        let other = try Sequential<Float>(
            inputShape: .sequence(steps: 10, features: 4), layers: [GRU(units: 3), Dense(units: 10, activation: .softmax)])
        try other.compile(optimizer: Adam())
        try Keras.saveModel(other, to: folder.appendingPathComponent("other.keras"))
        XCTAssertThrowsError(try TrainBlas.parse(["--data", mnist.path, "--load", path("other.keras"), "--output", path("o")]).run()) {
            error in
            XCTAssertTrue("\(error)".contains("the model takes input (None, 10, 4); MNIST rows are (None, 28, 28)"), "\(error)")
        }
    }
}
