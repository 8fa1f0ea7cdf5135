import Foundation
import XCTest
@testable import RNNKit
import RNNKitKeras

/// Keras and PyTorch read what RNNKit writes, checked by the scripts in `Tests/Python` when a
/// `python3` with those packages is here (`.ci/run` installs them); otherwise each test says it
/// was skipped and why.
final class PythonInteropTests: XCTestCase {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
        "Python")

    /// Keras's backend: `KERAS_BACKEND` when set, else torch or jax, whichever imports (CI installs jax).
    static let kerasBackend: String = {
        if let chosen = ProcessInfo.processInfo.environment["KERAS_BACKEND"] { return chosen }
        for candidate in ["torch", "jax"] where (try? python(["-c", "import \(candidate)"], backend: candidate).status) == 0 {
            return candidate
        }
        return "tensorflow"
    }()

    /// Runs python3 with `arguments`.
    static func python(_ arguments: [String], backend: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["KERAS_BACKEND"] = backend ?? kerasBackend
        environment["PYTHONWARNINGS"] = "ignore"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Skips, saying why, unless python3 can import `modules`.
    static func require(_ modules: String, for what: String) throws {
        let probe = try? python(["-c", "import \(modules)"])
        guard let probe, probe.status == 0 else {
            let reason =
                probe.map { $0.output.split(separator: "\n").last.map(String.init) ?? "status \($0.status)" } ?? "python3 cannot be started"
            throw XCTSkip("skipped: \(what) was not checked, python3 cannot import \(modules) here (\(reason))")
        }
    }

    static func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-python-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// `x` batch-major `[8, 28, 28]` as nested arrays, and the model's predictions for it.
    static func inputsAndOutputs(_ model: Sequential<Float>) throws -> (x: [[[Double]]], outputs: [[Double]]) {
        let fixture = try KerasFixture()
        let batchMajor = fixture.values("input", "x")
        let x = (0..<8).map { b in (0..<28).map { t in (0..<28).map { batchMajor[(b * 28 + t) * 28 + $0] } } }
        let timeMajor = fixture.input(as: Float.self).x
        var output = [Float](repeating: 0, count: 8 * 10)
        timeMajor.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: 8, into: $0.baseAddress!) }
        }
        return (x, (0..<8).map { b in (0..<10).map { Double(output[b * 10 + $0]) } })
    }

    /// The notebook's Model A as Keras trained it, through RNNKit and back into Keras: Keras's
    /// `load_model` and `load_weights` predict what RNNKit predicts, and Keras's next Adam step
    /// from the state RNNKit wrote equals RNNKit's next step.
    func testKerasReadsRNNKitFilesAndTakesTheSameStep() throws {
        try Self.require("keras, numpy", for: "Keras reading RNNKit's .keras and .weights.h5 files")
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = try KerasFileTests.fixtureURL("keras_trained_model_a", "keras")
        let loaded = try Keras.loadModel(from: url, as: Float.self)
        let model = loaded.model
        try Keras.saveModel(model, to: folder.appendingPathComponent("model.keras"))
        try model.saveKerasWeights(to: folder.appendingPathComponent("model.weights.h5"))
        try Keras.config(of: model).write(to: folder.appendingPathComponent("config.json"))
        let (x, outputs) = try Self.inputsAndOutputs(model)

        let fixture = try KerasFixture()
        let (timeMajor, labels) = fixture.input(as: Float.self)
        try timeMajor.withUnsafeBufferPointer { x in
            try labels.withUnsafeBufferPointer { _ = try model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 8) }
        }
        let weightsAfter = model.parameters.map { $0.tensor.scalars.map(Double.init) }
        let oneHot = labels.map { label in (0..<10).map { $0 == Int(label) ? 1.0 : 0.0 } }
        // A stack of Bidirectional layers in every merge mode, one of them reading backwards.
        let bidirectional = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                Bidirectional(LSTM(units: 5, returnSequences: true, dropout: 0.2, recurrentDropout: 0.1)), Dropout(rate: 0.3),
                Bidirectional(GRU(units: 4, returnSequences: true), mergeMode: .mul),
                Bidirectional(SimpleRNN(units: 3, returnSequences: true, goBackwards: true), mergeMode: .average),
                Bidirectional(GRU(units: 3, resetAfter: false), mergeMode: .sum), Dense(units: 10, activation: .softmax),
            ], seed: 8)
        try bidirectional.compile(optimizer: Adam())
        try Keras.saveModel(bidirectional, to: folder.appendingPathComponent("bidirectional.keras"))
        let extra: [String: Any] = ["file": "bidirectional.keras", "x": x, "outputs": try Self.inputsAndOutputs(bidirectional).outputs]
        // Stateful layers at a fixed batch: Keras's second predict continues the first, as RNNKit's does.
        let stateful = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [LSTM(units: 6, returnSequences: true, stateful: true), GRU(units: 5, stateful: true), Dense(units: 10)],
            batchSize: 8, seed: 9)
        try Keras.saveModel(stateful, to: folder.appendingPathComponent("stateful.keras"))
        let statefulExtra: [String: Any] = [
            "file": "stateful.keras", "x": x, "outputs": try Self.inputsAndOutputs(stateful).outputs,
            "outputs_again": try Self.inputsAndOutputs(stateful).outputs,
        ]
        let expected: [String: Any] = [
            "x": x, "outputs": outputs, "step": ["x": x, "y": oneHot, "weights_after": weightsAfter],
            "extra": [extra, statefulExtra],
        ]
        try JSONSerialization.data(withJSONObject: expected).write(to: folder.appendingPathComponent("expected.json"))

        let result = try Self.python([Self.scripts.appendingPathComponent("keras_interop.py").path, folder.path])
        print(
            "Keras backend \(Self.kerasBackend):\n"
                + result.output.split(separator: "\n").filter { !$0.contains("━") }.joined(separator: "\n"))
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("iterations 16880"), result.output)
    }

    /// RNNKit's safetensors into PyTorch's recurrent layers (docs/GUIDE.md's recipe): Model A and the
    /// LSTM → GRU fixture predict in PyTorch what they predict in RNNKit.
    func testPyTorchLoadsRNNKitSafetensors() throws {
        try Self.require("torch, numpy", for: "PyTorch loading RNNKit's safetensors")
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["trained_model_a", "stacked_lstm_gru"] {
            let model = try Keras.loadModel(from: KerasFileTests.fixtureURL("keras_\(name)", "keras"), as: Float.self).model
            let weights = folder.appendingPathComponent("\(name).safetensors")
            try model.saveWeights(to: weights)
            let (x, outputs) = try Self.inputsAndOutputs(model)
            let expected = folder.appendingPathComponent("\(name).json")
            try JSONSerialization.data(withJSONObject: ["x": x, "outputs": outputs]).write(to: expected)
            let result = try Self.python(
                [Self.scripts.appendingPathComponent("pytorch_load.py").path, weights.path, expected.path]
                    + model.layers.map(\.name))
            print(result.output)
            XCTAssertEqual(result.status, 0, result.output)
        }
    }
}
