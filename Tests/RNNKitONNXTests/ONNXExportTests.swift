import Foundation
import RNNKit
import RNNKitKeras
import RNNKitONNX
import XCTest

/// ONNX files RNNKit writes, checked by `onnx.checker` and run by onnxruntime
/// (`Tests/Python/onnx_check.py`) when a `python3` with both is here (`.ci/run` installs them);
/// otherwise the test says it was skipped and why. The refusals need no Python.
final class ONNXExportTests: XCTestCase {
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = tests.appendingPathComponent("RNNKitTests/Fixtures")

    // MARK: Python

    /// Runs python3 with `arguments`.
    static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        var environment = ProcessInfo.processInfo.environment
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

    // MARK: Models and inputs

    /// A fixture's input `x`, batch-major, and its shape (`[B, T]` ids get a feature axis of 1).
    static func fixtureInput(_ json: String) throws -> (x: [Float], shape: [Int]) {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("\(json).json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let input = try XCTUnwrap(root["input"] as? [String: Any])
        var shape: [Int] = []
        var level: Any? = input["x"]
        while let array = level as? [Any] {
            shape.append(array.count)
            level = array.first
        }
        func flatten(_ value: Any) -> [Float] {
            if let array = value as? [Any] { return array.flatMap(flatten) }
            return [Float((value as? NSNumber)?.doubleValue ?? .nan)]
        }
        let x = flatten(input["x"] as Any)
        if shape.count == 2 { shape.append(1) }
        return (x, shape)
    }

    static func keras(_ name: String) throws -> Sequential<Float> {
        try Keras.loadModel(from: fixtures.appendingPathComponent("keras_\(name).keras"), as: Float.self).model
    }

    /// Reproducible inputs in [−1, 1], never exactly 0.
    static func noise(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let u = Float(state >> 40) / Float(1 << 24)
            return u < 0.5 ? -0.05 - 0.95 * u * 2 : 0.05 + 0.95 * (u - 0.5) * 2
        }
    }

    /// One model and the inputs the Python side feeds it, with RNNKit's prediction.
    struct Case {
        let name: String
        let model: Sequential<Float>
        var options = ONNXExportOptions()
        let x: [Float]
        let shape: [Int]
        var lengths: [Int32]? = nil
        var initialStates: [(name: String, values: [Float])] = []
        var note = ""
        /// Memory the model's layers point into (initial states), freed with the case.
        var storage: AnyObject? = nil
    }

    /// Copies of arrays at addresses that stay put until it is released (a layer keeps the
    /// pointer `setInitialState` gets).
    final class PinnedArrays {
        let pointers: [UnsafeMutableBufferPointer<Float>]
        init(_ arrays: [[Float]]) {
            pointers = arrays.map { array in
                let pointer = UnsafeMutableBufferPointer<Float>.allocate(capacity: array.count)
                _ = pointer.initialize(from: array)
                return pointer
            }
        }
        subscript(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(pointers[i].baseAddress!) }
        deinit { for pointer in pointers { pointer.deallocate() } }
    }

    /// RNNKit's `predict` of the case, batch-major.
    static func predict(_ c: Case) -> [Float] {
        let (B, T, F) = (c.shape[0], c.shape[1], c.shape[2])
        var timeMajor = [Float](repeating: 0, count: c.x.count)
        for b in 0..<B {
            for t in 0..<T {
                for f in 0..<F { timeMajor[(t * B + b) * F + f] = c.x[(b * T + t) * F + f] }
            }
        }
        var output = [Float](repeating: 0, count: B * c.model.outputShape.scalarCount)
        timeMajor.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in
                if let lengths = c.lengths {
                    lengths.withUnsafeBufferPointer {
                        c.model.predict(x: x.baseAddress!, lengths: $0.baseAddress!, batchSize: B, into: out.baseAddress!)
                    }
                } else {
                    c.model.predict(x: x.baseAddress!, batchSize: B, into: out.baseAddress!)
                }
            }
        }
        return output
    }

    static let randomBias = Initializer.uniform(lower: -0.3, upper: 0.3)

    /// The notebook's Model B: SimpleRNN 16 → 8 → 4 → Dense(10, softmax) on MNIST's rows.
    static func modelB() throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                SimpleRNN(units: 16, returnSequences: true, biasInitializer: randomBias),
                SimpleRNN(units: 8, returnSequences: true, biasInitializer: randomBias),
                SimpleRNN(units: 4, biasInitializer: randomBias), Dense(units: 10, activation: .softmax, biasInitializer: randomBias),
            ], seed: 2)
    }

    /// Every merge mode, a forward layer reading backwards, and every cell inside Bidirectional.
    static func bidirectionalStack() throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                Bidirectional(LSTM(units: 5, returnSequences: true, dropout: 0.2, biasInitializer: randomBias)), Dropout(rate: 0.3),
                Bidirectional(GRU(units: 4, returnSequences: true, biasInitializer: randomBias), mergeMode: .mul),
                Bidirectional(
                    SimpleRNN(units: 3, returnSequences: true, goBackwards: true, biasInitializer: randomBias), mergeMode: .average),
                Bidirectional(GRU(units: 3, resetAfter: false, biasInitializer: randomBias), mergeMode: .sum),
                Dense(units: 10, activation: .softmax),
            ], seed: 8)
    }

    /// Layers under a mask: Bidirectional in every merge mode, a sequence that repeats its last
    /// state at masked steps, and a layer reading backwards that returns its last state.
    static func maskedStack() throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: 12, features: 5),
            layers: [
                Bidirectional(LSTM(units: 5, returnSequences: true, biasInitializer: randomBias)),
                Bidirectional(GRU(units: 4, returnSequences: true, biasInitializer: randomBias), mergeMode: .mul),
                GRU(units: 4, resetAfter: false, returnSequences: true, biasInitializer: randomBias),
                Bidirectional(SimpleRNN(units: 3, returnSequences: true, biasInitializer: randomBias), mergeMode: .average),
                TimeDistributed(Dense(units: 4, activation: .relu, biasInitializer: randomBias)),
                Bidirectional(GRU(units: 3, returnSequences: true, biasInitializer: randomBias), mergeMode: .sum),
                SimpleRNN(units: 4, activation: .relu, goBackwards: true, biasInitializer: randomBias),
                Dense(units: 3, activation: .softmax),
            ], seed: 5)
    }

    /// A per-step output after a recurrent sequence, under a mask: the outputs at masked steps count too.
    static func maskedSequenceOutput() throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: 12, features: 5),
            layers: [
                LSTM(units: 6, returnSequences: true, biasInitializer: randomBias),
                GRU(units: 4, returnSequences: true, biasInitializer: randomBias),
                TimeDistributed(Dense(units: 2, biasInitializer: randomBias)),
            ], seed: 6)
    }

    /// Activations beyond tanh and sigmoid: linear (ONNX's Affine), relu, hard sigmoid.
    static func activations() throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: 10, features: 4),
            layers: [
                SimpleRNN(units: 5, returnSequences: true, activation: .linear, biasInitializer: randomBias),
                LSTM(units: 4, activation: .relu, recurrentActivation: .hardSigmoid, returnSequences: true, biasInitializer: randomBias),
                GRU(units: 3, activation: .linear, recurrentActivation: .hardSigmoid, biasInitializer: randomBias),
                Dense(units: 3, activation: .hardSigmoid, biasInitializer: randomBias),
            ], seed: 7)
    }

    /// Every case the Python side runs.
    static func cases() throws -> [Case] {
        let mnist = try fixtureInput("keras_model_a")
        var cases: [Case] = [
            Case(
                name: "model_a", model: try keras("trained_model_a"), x: mnist.x, shape: mnist.shape,
                note: "the notebook's Model A, Keras-trained"),
            Case(name: "model_b", model: try modelB(), x: mnist.x, shape: mnist.shape, note: "the notebook's Model B"),
        ]
        for name in [
            "lstm", "gru", "gru_reset_before", "stacked_lstm_gru", "many_to_many_mse", "go_backwards_relu", "no_bias_regularized_adamw",
        ] {
            let input = try fixtureInput("keras_\(name)")
            cases.append(Case(name: name, model: try keras(name), x: input.x, shape: input.shape, note: "fixture"))
        }
        let tokens = try fixtureInput("keras_embedding_mask_zero")
        cases.append(
            Case(
                name: "embedding_mask_zero", model: try keras("embedding_mask_zero"), x: tokens.x, shape: tokens.shape,
                note: "fixture, trailing padding: lengths from the ids in the graph"))
        // The fixture pads at the front; sequence_lens expresses only trailing padding, so the same
        // ids run with their padding moved to the end.
        let front = try fixtureInput("keras_embedding_char_lm")
        let (B, T) = (front.shape[0], front.shape[1])
        var trailing = [Float](repeating: 0, count: front.x.count)
        for b in 0..<B {
            let ids = front.x[(b * T)..<((b + 1) * T)].filter { $0 != 0 }
            for (t, id) in ids.enumerated() { trailing[b * T + t] = id }
        }
        cases.append(
            Case(
                name: "embedding_char_lm", model: try keras("embedding_char_lm"), x: trailing, shape: front.shape,
                note: "fixture's ids with their front padding moved to the end"))
        cases.append(Case(name: "bidirectional_every_merge", model: try bidirectionalStack(), x: mnist.x, shape: mnist.shape))
        let lengths28: [Int32] = [28, 20, 5, 28, 13, 1, 27, 9]
        cases.append(
            Case(
                name: "lstm_lengths", model: try keras("lstm"), options: ONNXExportOptions(lengthsInput: true), x: mnist.x,
                shape: mnist.shape, lengths: lengths28, note: "fixture with a lengths input"))
        let jitter = noise(8 * 12 * 5, seed: 1)
        let lengths12: [Int32] = [12, 7, 1, 12, 3, 10, 11, 5]
        cases.append(
            Case(
                name: "masked_stack", model: try maskedStack(), options: ONNXExportOptions(lengthsInput: true), x: jitter,
                shape: [8, 12, 5], lengths: lengths12))
        cases.append(
            Case(
                name: "masked_sequence_output", model: try maskedSequenceOutput(), options: ONNXExportOptions(lengthsInput: true),
                x: jitter, shape: [8, 12, 5], lengths: lengths12))
        // Masking with its padding trailing: zero rows after each sample's length.
        var padded = jitter
        for b in 0..<8 {
            for t in Int(lengths12[b])..<12 {
                for f in 0..<5 { padded[(b * 12 + t) * 5 + f] = 0 }
            }
        }
        let masked = try Sequential<Float>(
            inputShape: .sequence(steps: 12, features: 5),
            layers: [
                Masking(), Bidirectional(GRU(units: 4, returnSequences: true, biasInitializer: randomBias)),
                LSTM(units: 5, biasInitializer: randomBias), Dense(units: 3, activation: .softmax),
            ], seed: 9)
        cases.append(
            Case(
                name: "masking_trailing", model: masked, options: ONNXExportOptions(masking: .trailingPadding), x: padded,
                shape: [8, 12, 5], note: "Masking exported with masking: .trailingPadding"))
        cases.append(Case(name: "activations", model: try activations(), x: noise(8 * 10 * 4, seed: 2), shape: [8, 10, 4]))
        cases.append(try initialStateCase())
        return cases
    }

    /// Initial states fed as graph inputs, and set on the layers for RNNKit's predict.
    static func initialStateCase() throws -> Case {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 10, features: 4),
            layers: [
                LSTM(units: 5, returnSequences: true, biasInitializer: randomBias),
                Bidirectional(GRU(units: 3, biasInitializer: randomBias), mergeMode: .concat),
                Dense(units: 2),
            ], seed: 4)
        let lstm = try XCTUnwrap(model.layers[0] as? RecurrentLayer<Float>)
        let bidirectional = try XCTUnwrap(model.layers[1] as? Bidirectional<Float>)
        let states: [(name: String, values: [Float])] = [
            ("lstm/initial_h", noise(8 * 5, seed: 11)), ("lstm/initial_c", noise(8 * 5, seed: 12)),
            ("\(bidirectional.forwardLayer.name)/initial_h", noise(8 * 3, seed: 13)),
            ("\(bidirectional.backwardLayer.name)/initial_h", noise(8 * 3, seed: 14)),
        ]
        let storage = PinnedArrays(states.map(\.values))
        lstm.setInitialState(h: storage[0], c: storage[1])
        bidirectional.forwardLayer.setInitialState(h: storage[2])
        bidirectional.backwardLayer.setInitialState(h: storage[3])
        return Case(
            name: "initial_states", model: model, options: ONNXExportOptions(initialStateInputs: true), x: noise(8 * 10 * 4, seed: 3),
            shape: [8, 10, 4], initialStates: states, storage: storage)
    }

    // MARK: Tests

    /// Every model exported, checked by `onnx.checker` (full check) and run by onnxruntime on the
    /// fixtures' inputs: each equals RNNKit's Float `predict` within 1e-5 (at a batch of 8 and of
    /// 3: the batch dimension is dynamic).
    func testOnnxRuntimeRunsEveryExportedModelAsRNNKitPredicts() throws {
        try Self.require("onnx, onnxruntime, numpy", for: "ONNX export through onnxruntime")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-onnx-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var manifest: [[String: Any]] = []
        for c in try Self.cases() {
            let file = folder.appendingPathComponent("\(c.name).onnx")
            let expected = Self.predict(c)
            XCTAssertTrue(
                expected.allSatisfy(\.isFinite) && c.x.allSatisfy(\.isFinite), "\(c.name): RNNKit's prediction or input is not finite")
            try ONNXExport.write(c.model, to: file, options: c.options)
            let outputShape: [Int] =
                if case .sequence = c.model.outputShape { [c.shape[0], c.shape[1], c.model.outputShape.features] } else {
                    [c.shape[0], c.model.outputShape.features]
                }
            var entry: [String: Any] = [
                "name": c.name, "file": file.lastPathComponent, "note": c.note,
                "x": c.x.map(Double.init), "x_shape": c.shape,
                "expected": expected.map(Double.init),
                "expected_shape": outputShape,
                "dynamic_steps": c.options.dynamicSteps,
            ]
            if let lengths = c.lengths { entry["lengths"] = lengths.map(Int.init) }
            if !c.initialStates.isEmpty {
                entry["initial_states"] = Dictionary(uniqueKeysWithValues: c.initialStates.map { ($0.name, $0.values.map(Double.init)) })
            }
            manifest.append(entry)
        }
        try JSONSerialization.data(withJSONObject: manifest).write(to: folder.appendingPathComponent("cases.json"))
        let script = Self.tests.appendingPathComponent("Python/onnx_check.py")
        let result = try Self.python([script.path, folder.path, "1e-5"])
        print(result.output)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.components(separatedBy: "\n").filter { $0.hasPrefix("ok ") }.count, manifest.count, result.output)
    }

    /// A `Double` model is written in float32: the same file as the `Float` model of the same
    /// (float32) weights.
    func testDoubleModelIsWrittenInFloat32() throws {
        for name in ["stacked_lstm_gru", "gru", "embedding_mask_zero"] {
            let url = Self.fixtures.appendingPathComponent("keras_\(name).keras")
            let double = try Keras.loadModel(from: url, as: Double.self).model
            XCTAssertEqual(try ONNXExport.serialize(double), try ONNXExport.serialize(Self.keras(name)), name)
        }
    }

    /// `bidirectional_masking`'s Masking masks the blank rows at both ends of each digit, which
    /// ONNX's sequence_lens cannot skip: refused, naming the layer.
    func testMaskingIsRefusedByName() throws {
        let model = try Self.keras("bidirectional_masking")
        XCTAssertThrowsError(try ONNXExport.serialize(model)) { error in
            guard case .maskNotExpressible(let layer, _) = error as? ONNXExportError else {
                return XCTFail("expected maskNotExpressible, got \(error)")
            }
            XCTAssertEqual(layer, "masking")
            XCTAssertTrue("\(error)".contains("masking"), "\(error)")
        }
    }

    /// A layer reading backwards that returns its sequence under a mask is refused by name.
    func testBackwardSequenceUnderMaskIsRefused() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 6, features: 2),
            layers: [SimpleRNN(units: 3, returnSequences: true, goBackwards: true), GRU(units: 2)])
        XCTAssertNoThrow(try ONNXExport.serialize(model))
        XCTAssertThrowsError(try ONNXExport.serialize(model, options: ONNXExportOptions(lengthsInput: true))) { error in
            XCTAssertEqual(error as? ONNXExportError, .maskNotExpressible(layer: "simple_rnn", reason: Self.reason(of: error)))
        }
    }

    /// A custom layer and lengths on a model of vectors are refused, naming the layer.
    func testCustomLayerAndLengthsWithoutStepsAreRefused() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 2), layers: [LSTM(units: 3, returnSequences: true), Passthrough()])
        XCTAssertThrowsError(try ONNXExport.serialize(model)) { error in
            XCTAssertEqual(error as? ONNXExportError, .unsupportedLayer(layer: "passthrough", type: "Passthrough"))
            XCTAssertEqual("\(error)", "ONNX export: layer passthrough (Passthrough) has no ONNX form in RNNKit's export")
        }
        let vectors = try Sequential<Float>(inputShape: .vector(features: 4), layers: [Dense(units: 2)])
        XCTAssertNoThrow(try ONNXExport.serialize(vectors))
        XCTAssertThrowsError(try ONNXExport.serialize(vectors, options: ONNXExportOptions(lengthsInput: true))) { error in
            XCTAssertEqual(error as? ONNXExportError, .maskNotExpressible(layer: "input", reason: Self.reason(of: error)))
        }
    }

    static func reason(of error: Error) -> String {
        if case .maskNotExpressible(_, let reason) = error as? ONNXExportError { return reason }
        return ""
    }
}

/// A layer of the user's: the export does not know it.
final class Passthrough<Scalar: BLASScalar>: Layer {
    var typeName: String { "Passthrough" }
    var nameStem: String { "passthrough" }
    var name = "passthrough"
    var parameters: [Parameter<Scalar>] { [] }
    private(set) var outputShape: FeatureShape = .vector(features: 0)

    func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        outputShape = inputShape
        return inputShape
    }

    func replica() -> any Layer<Scalar> {
        let copy = Passthrough<Scalar>()
        copy.outputShape = outputShape
        return copy
    }

    func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {}

    func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> { input }

    func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        outputGradient
    }
}
