import ArgumentParser
import Foundation
import RNNKit
import RNNKitKeras
import RNNKitONNX

/// `rnnkit`: a saved model's summary, its predictions on a `.npy` array, and conversion between
/// Keras's files and RNNKit's safetensors. Every failure is one line and a non-zero status.
package struct RNNKitCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "rnnkit",
        abstract: "Inspect, run and convert saved RNNKit and Keras models.",
        discussion:
            "MODEL is any file train-blas --load takes: a .keras file, RNNKit's .safetensors (which carry their architecture), or, with --model, a .weights.h5 or a safetensors file without one.",
        version: RNNKitRelease.version,
        subcommands: [Summary.self, Predict.self, Convert.self])

    package init() {}

    /// Parses `arguments` (the process's when nil), runs the subcommand and exits: 0 on success,
    /// 64 for bad usage, 1 for anything else, with a one-line message on standard error.
    package static func runAndExit(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Foundation.exit(0)
        } catch {
            let status = status(for: error)
            if status == 0 {
                print(fullMessage(for: error))
            } else {
                FileHandle.standardError.write(Data((boundedMessage("rnnkit: error: \(text(for: error))") + "\n").utf8))
            }
            Foundation.exit(status)
        }
    }

    /// The exit status for `error`: a failure's own, ArgumentParser's for usage errors.
    package static func status(for error: Error) -> Int32 {
        if let failure = error as? TrainerFailure { return failure.exitCode }
        return exitCode(for: error).rawValue
    }

    /// The one-line message for `error`.
    /// The lines of a longer message (UnsupportedKerasModel's list) are joined into one.
    package static func text(for error: Error) -> String {
        let text = (error as? TrainerFailure)?.message ?? message(for: error)
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}

/// Options shared by the subcommands that read a model.
package struct ModelOptions: ParsableArguments {
    @Option(
        name: .customLong("model"),
        help: ArgumentHelp(
            "The architecture for a weights-only file: a .keras file or a Keras config (.json).", valueName: "M"))
    package var architecture: String?

    @Option(
        help: ArgumentHelp(
            "For a Keras model whose input has no fixed number of steps (None): build it for sequences of N steps.",
            valueName: "N"))
    package var steps: Int?

    package init() {}

    package func validate() throws {
        if let steps, !(1...(1 << 20)).contains(steps) {
            throw ValidationError("--steps must be between 1 and \(1 << 20), got \(steps)")
        }
    }
}

extension RNNKitCommand {
    package struct Summary: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Print Keras's summary table (layers, output shapes, parameters) of a saved model.")

        @Argument(help: ArgumentHelp("The model file.", valueName: "MODEL"))
        package var model: String

        @OptionGroup package var options: ModelOptions

        package init() {}

        /// The table `run` prints.
        package func text() throws -> String {
            try ModelFile.load(model, architecture: options.architecture, steps: options.steps).summary()
        }

        package func run() throws { print(try text()) }
    }

    package struct Predict: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract: "Write a saved model's outputs for the samples in a .npy array.",
            discussion:
                "X is [N, T, F] float32 or float64 (or [N, T] integer ids, read as one feature); the outputs are written as float32 [N, ...], atomically."
        )

        @Argument(help: ArgumentHelp("The model file.", valueName: "MODEL"))
        package var model: String

        @Option(help: ArgumentHelp("The samples: [N, T, F] floats or [N, T] integer ids.", valueName: "X.npy"))
        package var input: String

        @Option(
            help: ArgumentHelp(
                "Each sample's true number of steps, [N] integers in 1...T; later steps are padding, masked.", valueName: "L.npy"))
        package var lengths: String?

        @Option(help: ArgumentHelp("Where to write the outputs (float32 .npy).", valueName: "Y.npy"))
        package var output: String

        @Option(help: "Samples per batch, 1 to 1048576 (default: a stateful model's fixed batch, else 32).")
        package var batchSize: Int?

        @OptionGroup package var options: ModelOptions

        package init() {}

        package func validate() throws {
            if let batchSize, !(1...TrainBlas.maximumBatchSize).contains(batchSize) {
                throw ValidationError("--batch-size must be between 1 and \(TrainBlas.maximumBatchSize), got \(batchSize)")
            }
            guard output.lowercased().hasSuffix(".npy") else { throw ValidationError("--output \(output): name a .npy file") }
            for (flag, path) in [("MODEL", model), ("--input", input), ("--lengths", lengths), ("--model", options.architecture)] {
                if let path, ModelFile.sameFile(path, output) {
                    throw ValidationError("--output \(output) is \(flag == "MODEL" ? "the model" : flag)'s file; it would be overwritten")
                }
            }
        }

        package func run() throws {
            let sequential = try ModelFile.load(model, architecture: options.architecture, steps: options.steps)
            let x = try Self.read(input, flag: "--input")
            let n = x.shape.first ?? 0
            let samples: Tensor<Float>
            switch (x.shape.count, x.dtype.isFloatingPoint) {
            case (3, true): samples = x.tensor(as: Float.self)
            case (2, false): samples = Tensor(shape: x.shape + [1], scalars: x.floats(as: Float.self))
            default:
                throw TrainerFailure(
                    message: "--input \(input): expected [N, T, F] float32/float64 or [N, T] integer ids, got \(x.dtype) \(x.shape)")
            }
            guard n > 0 else { throw TrainerFailure(message: "--input \(input): holds no samples") }
            let given = FeatureShape.sequence(steps: samples.shape[1], features: samples.shape[2])
            guard given == sequential.inputShape else {
                throw TrainerFailure(message: "--input \(input): the samples are \(given); the model takes \(sequential.inputShape)")
            }
            var steps: [Int]?
            if let lengths {
                let array = try Self.read(lengths, flag: "--lengths")
                guard array.shape.count == 1, !array.dtype.isFloatingPoint else {
                    throw TrainerFailure(message: "--lengths \(lengths): expected [N] integers, got \(array.dtype) \(array.shape)")
                }
                guard array.shape[0] == n else {
                    throw TrainerFailure(message: "--lengths \(lengths): \(array.shape[0]) lengths for the \(n) samples of --input")
                }
                let values = try array.integers()
                let t = samples.shape[1]
                if let bad = values.firstIndex(where: { !(1...t).contains($0) }) {
                    throw TrainerFailure(message: "--lengths \(lengths): length \(values[bad]) of sample \(bad) is not in 1...\(t)")
                }
                steps = values
            }
            let outputs: Tensor<Float>
            do {
                let data = try TensorDataset(inputs: samples, labels: Array(repeating: 0, count: n), classCount: 1, lengths: steps)
                outputs = try sequential.predict(data, batchSize: batchSize)
            } catch let error as ModelError { throw TrainerFailure(message: "\(model): \(error)") }
            do { try NumPy.write(NumPyArray(outputs), to: URL(fileURLWithPath: output)) } catch let error as FileWriteError {
                throw TrainerFailure(message: "--output \(error)")
            }
        }

        static func read(_ path: String, flag: String) throws -> NumPyArray {
            do { return try NumPy.read(contentsOf: URL(fileURLWithPath: path)) } catch let error as FileFormatError {
                throw TrainerFailure(message: "\(flag) \(error)")
            }
        }
    }

    package struct Convert: ParsableCommand {
        package static let configuration = CommandConfiguration(
            abstract:
                "Convert a model between .keras, .weights.h5 and RNNKit's .safetensors, or export it to .onnx, chosen by the extensions.",
            discussion:
                "A .weights.h5 (or a .safetensors without its architecture) needs --model to build the model its weights go into. "
                + "An .onnx output is ONNX opset 17 for inference runtimes (onnxruntime); RNNKit does not read .onnx files.")

        @Argument(help: ArgumentHelp("The file to read.", valueName: "IN"))
        package var input: String

        @Argument(help: ArgumentHelp("The file to write, atomically.", valueName: "OUT"))
        package var output: String

        @OptionGroup package var options: ModelOptions

        package init() {}

        package func validate() throws {
            for path in [input, output] where WeightsFormat(path: path) == nil {
                throw ValidationError("\(path): unknown extension; use .keras, .weights.h5, .safetensors (or .onnx to write)")
            }
            if WeightsFormat(path: input) == .onnx {
                throw ValidationError("\(input): RNNKit writes ONNX files for inference runtimes but does not read them")
            }
            if ModelFile.sameFile(input, output) { throw ValidationError("\(output) is the input file; it would be overwritten") }
            if let architecture = options.architecture, ModelFile.sameFile(architecture, output) {
                throw ValidationError("\(output) is the --model file; it would be overwritten")
            }
        }

        package func run() throws {
            let model = try ModelFile.load(input, architecture: options.architecture, steps: options.steps)
            try ModelFile.save(model, to: output)
        }
    }
}

/// A model file as `train-blas --load` takes it, read whole into a model.
package enum ModelFile {
    /// Whether `a` and `b` name the same file (after links), or the same path when neither exists.
    package static func sameFile(_ a: String, _ b: String) -> Bool {
        let (x, y) = (URL(fileURLWithPath: a), URL(fileURLWithPath: b))
        if x.standardizedFileURL.resolvingSymlinksInPath().path == y.standardizedFileURL.resolvingSymlinksInPath().path { return true }
        guard let p = try? FileManager.default.attributesOfItem(atPath: x.path),
            let q = try? FileManager.default.attributesOfItem(atPath: y.path)
        else { return false }
        return (p[.systemNumber] as? Int) == (q[.systemNumber] as? Int)
            && (p[.systemFileNumber] as? Int) == (q[.systemFileNumber] as? Int)
    }

    /// The model in `path`: a `.keras` file whole; a `.weights.h5` or safetensors file's weights
    /// into the model `architecture` (a `.keras` file or a Keras config) describes, or for RNNKit's
    /// safetensors, the one its metadata describes. The file's kind is read from its first bytes.
    /// - Throws: `TrainerFailure` with one line naming the file and what is wrong.
    /// `steps` builds a Keras model whose input has no fixed number of steps for sequences of that many.
    package static func load(_ path: String, architecture: String? = nil, steps: Int? = nil) throws -> Sequential<Float> {
        do {
            return try unwrappedLoad(path, architecture: architecture, steps: steps)
        } catch let failure as TrainerFailure {
            throw failure
        } catch let error as ModelError {
            throw TrainerFailure(message: "\(path): \(error)")
        } catch let error as UnsupportedKerasModel {
            throw TrainerFailure(message: "\(error)")
        } catch {
            throw TrainerFailure(message: "\(error)")
        }
    }

    private static func unwrappedLoad(_ path: String, architecture: String?, steps: Int?) throws -> Sequential<Float> {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw TrainerFailure(message: "\(path): not found")
        }
        guard !isFolder.boolValue else { throw TrainerFailure(message: "\(path): is a folder, not a model file") }
        let kind = LoadedFileKind(contentsOf: path)
        if kind == .keras {
            return try Keras.loadModel(from: URL(fileURLWithPath: path), as: Float.self, steps: steps).model
        }
        let model: Sequential<Float>
        if let architecture {
            model = try build(architecture: architecture, steps: steps)
        } else if kind == .safetensors, let (config, scalars) = Trainer.kerasConfig(inSafetensors: path) {
            model = try Keras.buildModel(config: config, file: path, as: Float.self, weightsAvailable: scalars, steps: steps).model
        } else {
            let what = kind == .kerasWeights ? "a Keras weights file" : "weights without their architecture"
            throw TrainerFailure(
                message: "\(path): holds \(what); give --model M (a .keras file or a Keras config .json) to build the model")
        }
        if kind == .kerasWeights {
            try model.loadKerasWeights(from: URL(fileURLWithPath: path))
        } else {
            try model.loadWeights(from: URL(fileURLWithPath: path))
        }
        return model
    }

    /// The model `architecture` names: a `.keras` file's, or a Keras config's (fresh weights).
    private static func build(architecture: String, steps: Int?) throws -> Sequential<Float> {
        guard FileManager.default.fileExists(atPath: architecture) else {
            throw TrainerFailure(message: "--model \(architecture): not found")
        }
        if LoadedFileKind(contentsOf: architecture) == .keras {
            return try Keras.loadModel(from: URL(fileURLWithPath: architecture), as: Float.self, steps: steps).model
        }
        guard architecture.lowercased().hasSuffix(".json") else {
            throw TrainerFailure(message: "--model \(architecture): give a .keras file or a Keras config (.json)")
        }
        let config: Data
        do { config = try Data(contentsOf: URL(fileURLWithPath: architecture)) } catch {
            throw TrainerFailure(message: "--model \(architecture): cannot be read")
        }
        return try Keras.buildModel(config: config, file: architecture, as: Float.self, steps: steps).model
    }

    /// The metadata of RNNKit's safetensors files: RNNKit's version and the model's Keras config,
    /// which lets `train-blas --load` and `rnnkit` rebuild the model with no other file.
    static func safetensorsMetadata(of model: Sequential<Float>) throws -> [String: String] {
        [
            "rnnkit_version": RNNKitRelease.version,
            SafeTensors.kerasConfigKey: String(decoding: try Keras.config(of: model), as: UTF8.self),
        ]
    }

    /// Writes `model` in the format `path`'s extension names, atomically; a safetensors file
    /// carries the Keras config in its metadata, as train-blas writes it.
    package static func save(_ model: Sequential<Float>, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            switch WeightsFormat(path: path) {
            case .keras?: try Keras.saveModel(model, to: url)
            case .kerasWeights?: try model.saveKerasWeights(to: url)
            case .safetensors?:
                try writeAtomically(try SafeTensors.encode(model.weights, metadata: safetensorsMetadata(of: model)), to: url)
            case .onnx?:
                do { try ONNXExport.write(model, to: url) } catch let error as ONNXExportError {
                    throw TrainerFailure(message: "\(path): \(error)")
                }
            case nil:
                throw TrainerFailure(message: "\(path): unknown extension; use .keras, .weights.h5, .safetensors or .onnx")
            }
        } catch let failure as TrainerFailure {
            throw failure
        } catch {
            throw TrainerFailure(message: "\(error)")
        }
    }
}
