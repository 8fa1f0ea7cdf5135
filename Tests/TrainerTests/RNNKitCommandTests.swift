import ArgumentParser
import Foundation
import RNNKitKeras
import RNNKitONNX
import XCTest

@testable import RNNKit
@testable import TrainerSupport

/// `rnnkit`: summary, predict and convert on small models saved here, in process and once as
/// the built binary, and every refusal with its message and status.
final class RNNKitCommandTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-command-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// LSTM(4) → Dense(3, softmax) over 5 steps of 2 features, compiled with Adam, saved as `model.keras`.
    func savedModel(_ name: String = "model.keras") throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 2), layers: [LSTM(units: 4), Dense(units: 3, activation: .softmax)], seed: 7)
        try model.compile(optimizer: Adam())
        try Keras.saveModel(model, to: folder.appendingPathComponent(name))
        return model
    }

    /// Runs `rnnkit` in process.
    func run(_ arguments: [String]) throws {
        var command = try RNNKitCommand.parseAsRoot(arguments)
        try command.run()
    }

    /// Asserts that `arguments` fail with a message containing `text` and exit status `status`.
    func assertRefused(_ arguments: [String], _ text: String, status: Int32 = 1, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try run(arguments), file: file, line: line) { error in
            let message = RNNKitCommand.text(for: error)
            XCTAssertTrue(message.contains(text), "\(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            XCTAssertEqual(RNNKitCommand.status(for: error), status, "\(message)", file: file, line: line)
        }
    }

    static let samples: [Float] = (0..<30).map { Float(($0 * 37) % 11) / 7 - 0.6 }

    func writeInputs() throws -> Tensor<Float> {
        let x = Tensor<Float>(shape: [3, 5, 2], scalars: Self.samples)
        try NumPy.write(NumPyArray(x), to: folder.appendingPathComponent("x.npy"))
        try NumPy.write(NumPyArray(shape: [3], integers: [5, 2, 3]), to: folder.appendingPathComponent("l.npy"))
        return x
    }

    func predictions(_ name: String) throws -> NumPyArray { try NumPy.read(contentsOf: folder.appendingPathComponent(name)) }

    func testSummaryOfASavedModel() throws {
        let model = try savedModel()
        let text = try RNNKitCommand.Summary.parse([path("model.keras")]).text()
        XCTAssertEqual(text, model.summary())
        XCTAssertTrue(text.contains("lstm (LSTM)"), text)
    }

    func testPredictEqualsSequentialPredictWithAndWithoutLengths() throws {
        let model = try savedModel()
        let x = try writeInputs()
        try run(["predict", path("model.keras"), "--input", path("x.npy"), "--output", path("y.npy"), "--batch-size", "2"])
        let expected = try model.predict(TensorDataset(inputs: x, labels: [0, 0, 0], classCount: 1), batchSize: 2)
        let y = try predictions("y.npy")
        XCTAssertEqual(y.dtype, .float32)
        XCTAssertEqual(y.shape, [3, 3])
        XCTAssertEqual(y.floats(as: Float.self).map(\.bitPattern), expected.scalars.map(\.bitPattern))

        try run(["predict", path("model.keras"), "--input", path("x.npy"), "--lengths", path("l.npy"), "--output", path("ym.npy")])
        let masked = try model.predict(TensorDataset(inputs: x, labels: [0, 0, 0], classCount: 1, lengths: [5, 2, 3]))
        XCTAssertEqual(try predictions("ym.npy").floats(as: Float.self).map(\.bitPattern), masked.scalars.map(\.bitPattern))
        XCTAssertNotEqual(masked.scalars, expected.scalars, "the lengths mask padded steps")
    }

    func testPredictReadsIntegerIdsAsOneFeature() throws {
        let model = try Sequential<Float>(inputShape: .sequence(steps: 4, features: 1), layers: [GRU(units: 2)], seed: 3)
        try Keras.saveModel(model, to: folder.appendingPathComponent("ids.keras"))
        try NumPy.write(NumPyArray(shape: [2, 4], integers: [1, 2, 3, 4, 5, 6, 7, 8]), to: folder.appendingPathComponent("ids.npy"))
        try run(["predict", path("ids.keras"), "--input", path("ids.npy"), "--output", path("y.npy")])
        let x = Tensor<Float>(shape: [2, 4, 1], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        let expected = try model.predict(TensorDataset(inputs: x, labels: [0, 0], classCount: 1))
        XCTAssertEqual(try predictions("y.npy").floats(as: Float.self).map(\.bitPattern), expected.scalars.map(\.bitPattern))
    }

    /// A Keras model of None steps (here a stateful one, batch 3) is built for `--steps`;
    /// `predict` takes its fixed batch by default and refuses another.
    func testStepsBuildAModelOfNoneStepsAndAStatefulModelKeepsItsBatch() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 2), layers: [GRU(units: 3, stateful: true), Dense(units: 2)], batchSize: 3,
            seed: 5)
        var config = try XCTUnwrap(String(data: Keras.config(of: model), encoding: .utf8))
        config = config.replacingOccurrences(of: "[3,5,2]", with: "[3,null,2]").replacingOccurrences(of: "[3,5,3]", with: "[3,null,3]")
        XCTAssertFalse(config.contains("[3,5,"), config)
        try Data(config.utf8).write(to: folder.appendingPathComponent("open.json"))
        try model.saveWeights(to: folder.appendingPathComponent("open.safetensors"))
        let x = try writeInputs()
        try run([
            "predict", path("open.safetensors"), "--model", path("open.json"), "--steps", "5", "--input", path("x.npy"), "--output",
            path("y.npy"),
        ])
        let expected = try model.predict(x)
        XCTAssertEqual(try predictions("y.npy").floats(as: Float.self).map(\.bitPattern), expected.scalars.map(\.bitPattern))
        let summary = try RNNKitCommand.Summary.parse([path("open.safetensors"), "--model", path("open.json"), "--steps", "5"]).text()
        XCTAssertTrue(summary.contains("(3, 3)"), summary)
        assertRefused(
            [
                "predict", path("open.safetensors"), "--model", path("open.json"), "--steps", "5", "--input", path("x.npy"), "--output",
                path("y.npy"), "--batch-size", "2",
            ],
            "exactly 3 samples")
        // Stateful, it is built for pieces of 1 step without --steps; not stateful, it is refused.
        XCTAssertTrue(try RNNKitCommand.Summary.parse([path("open.safetensors"), "--model", path("open.json")]).text().contains("(3, 3)"))
        let plain = config.replacingOccurrences(of: "\"stateful\":true", with: "\"stateful\":false")
        XCTAssertNotEqual(plain, config)
        try Data(plain.utf8).write(to: folder.appendingPathComponent("plain.json"))
        assertRefused(["summary", path("open.safetensors"), "--model", path("plain.json")], "pass steps:")
        assertRefused(
            ["summary", path("open.safetensors"), "--model", path("open.json"), "--steps", "0"], "--steps must be between 1", status: 64)
    }

    /// `convert MODEL model.onnx` writes what `ONNXExport` writes (ONNXExportTests runs such files in onnxruntime).
    func testConvertToONNX() throws {
        let model = try savedModel()
        try run(["convert", path("model.keras"), path("model.onnx")])
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("model.onnx")), try ONNXExport.serialize(model))
    }

    func testConvertRoundTripsGiveIdenticalPredictions() throws {
        _ = try savedModel()
        _ = try writeInputs()
        let predict = { (model: String, out: String, extra: [String]) in
            try self.run(["predict", self.path(model), "--input", self.path("x.npy"), "--output", self.path(out)] + extra)
        }
        try predict("model.keras", "y.npy", [])
        let reference = try predictions("y.npy")

        try run(["convert", path("model.keras"), path("model.safetensors")])
        try run(["convert", path("model.safetensors"), path("back.keras")])
        try predict("model.safetensors", "ys.npy", [])
        try predict("back.keras", "yk.npy", [])
        XCTAssertEqual(try predictions("ys.npy"), reference)
        XCTAssertEqual(try predictions("yk.npy"), reference)

        try run(["convert", path("model.keras"), path("model.weights.h5")])
        assertRefused(["convert", path("model.weights.h5"), path("again.keras")], "give --model M")
        try run(["convert", path("model.weights.h5"), path("again.keras"), "--model", path("back.keras")])
        try predict("again.keras", "yh.npy", [])
        XCTAssertEqual(try predictions("yh.npy"), reference)
        // A Keras config as the architecture, and the weights file read straight by predict.
        try Keras.config(of: Keras.loadModel(from: folder.appendingPathComponent("model.keras")).model).write(
            to: folder.appendingPathComponent("config.json"))
        try predict("model.weights.h5", "yj.npy", ["--model", path("config.json")])
        XCTAssertEqual(try predictions("yj.npy"), reference)
    }

    func testRefusals() throws {
        _ = try savedModel()
        _ = try writeInputs()
        let predict = ["predict", path("model.keras"), "--input", path("x.npy")]
        assertRefused(["summary", path("missing.keras")], "missing.keras: not found")
        try Data("not a zip".utf8).write(to: folder.appendingPathComponent("bad.keras"))
        assertRefused(["summary", path("bad.keras")], "bad.keras")
        try Data(repeating: 0, count: 40).write(to: folder.appendingPathComponent("bad.safetensors"))
        assertRefused(["summary", path("bad.safetensors"), "--model", path("model.keras")], "bad.safetensors")
        assertRefused(["summary", path("bad.safetensors")], "give --model M")
        assertRefused(predict + ["--output", path("y.npy"), "--lengths", path("none.npy")], "--lengths")
        assertRefused(predict + ["--output", path("y.txt")], "--output \(path("y.txt")): name a .npy file", status: 64)
        assertRefused(predict + ["--output", path("x.npy")], "is --input's file; it would be overwritten", status: 64)
        assertRefused(predict + ["--output", path("y.npy"), "--batch-size", "0"], "--batch-size must be between 1", status: 64)
        assertRefused(
            ["predict", path("model.keras"), "--input", path("missing.npy"), "--output", path("y.npy")], "--input")
        // Wrong shapes and lengths.
        try NumPy.write(NumPyArray(shape: [3, 4, 2], floats: Array(repeating: 0, count: 24)), to: folder.appendingPathComponent("x4.npy"))
        assertRefused(
            ["predict", path("model.keras"), "--input", path("x4.npy"), "--output", path("y.npy")],
            "the samples are (None, 4, 2); the model takes (None, 5, 2)")
        try NumPy.write(NumPyArray(shape: [30], floats: Self.samples), to: folder.appendingPathComponent("flat.npy"))
        assertRefused(
            ["predict", path("model.keras"), "--input", path("flat.npy"), "--output", path("y.npy")],
            "expected [N, T, F] float32/float64 or [N, T] integer ids, got float32 [30]")
        try NumPy.write(NumPyArray(shape: [2], integers: [1, 2]), to: folder.appendingPathComponent("l2.npy"))
        assertRefused(predict + ["--output", path("y.npy"), "--lengths", path("l2.npy")], "2 lengths for the 3 samples of --input")
        try NumPy.write(NumPyArray(shape: [3], integers: [1, 6, 2]), to: folder.appendingPathComponent("l6.npy"))
        assertRefused(predict + ["--output", path("y.npy"), "--lengths", path("l6.npy")], "length 6 of sample 1 is not in 1...5")
        try NumPy.write(NumPyArray(shape: [3], floats: [1, 2, 3]), to: folder.appendingPathComponent("lf.npy"))
        assertRefused(predict + ["--output", path("y.npy"), "--lengths", path("lf.npy")], "expected [N] integers, got float32 [3]")
        // An output under a regular file: refused, nothing written.
        assertRefused(predict + ["--output", path("x.npy/y.npy")], "cannot write")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("y.npy")))
        // convert
        assertRefused(["convert", path("model.keras"), path("model.txt")], "model.txt: unknown extension", status: 64)
        assertRefused(["convert", path("model.onnx"), path("out.keras")], "does not read them", status: 64)
        let masked = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 2), layers: [Masking(), LSTM(units: 4), Dense(units: 3, activation: .softmax)])
        try masked.compile(optimizer: Adam())
        try Keras.saveModel(masked, to: folder.appendingPathComponent("masked.keras"))
        assertRefused(["convert", path("masked.keras"), path("masked.onnx")], "masked.onnx: ONNX export: the mask of masking")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("masked.onnx")))
        assertRefused(["convert", path("model.keras"), path("model.keras")], "is the input file; it would be overwritten", status: 64)
        assertRefused(["convert", path("missing.keras"), path("out.safetensors")], "missing.keras: not found")
        assertRefused(
            ["convert", path("bad.safetensors"), path("out.keras"), "--model", path("config.txt")],
            "--model \(path("config.txt")): not found")
        // A config RNNKit cannot rebuild: its list of reasons on one line.
        try Data(#"{"foo": 1}"#.utf8).write(to: folder.appendingPathComponent("cfg.json"))
        assertRefused(["convert", path("bad.safetensors"), path("out.keras"), "--model", path("cfg.json")], "cfg.json")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.keras")))
    }

    /// The built binary: its summary on standard output, a refusal on standard error with status 1.
    func testBuiltBinary() throws {
        let executable = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "rnnkit")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            return XCTFail("rnnkit is not built beside the tests at \(executable.path)")
        }
        let model = try savedModel()
        func launch(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let (stdout, stderr) = (Pipe(), Pipe())
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
        }
        let summary = try launch(["summary", path("model.keras")])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertEqual(summary.stdout, model.summary() + "\n")
        let missing = try launch(["summary", path("missing.keras")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "rnnkit: error: \(path("missing.keras")): not found\n")
        let usage = try launch(["convert", path("model.keras"), path("model.txt")])
        XCTAssertEqual(usage.status, 64, usage.stderr)
        let help = try launch(["predict", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--lengths"), help.stdout)
    }
}
