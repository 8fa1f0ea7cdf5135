import ArgumentParser
import Foundation
import RNNKit
import RNNKitMPI

/// `train-blas`: the notebook end to end. Reads MNIST, builds SimpleRNN(s) + Dense(10, softmax),
/// trains with a Keras-style progress bar, evaluates on the test set, predicts one example, and
/// writes the history, pictures, weights and metrics.
package struct TrainBlas: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "train-blas",
        abstract: "Train a recurrent network on MNIST (each 28×28 image read as 28 steps of 28 pixels) on OpenBLAS.",
        discussion:
            "Defaults reproduce the notebook's Model A: SimpleRNN(10) → Dense(10, softmax), Adam, 10 epochs, batch 32, validation split 0.1.",
        version: RNNKitRelease.version)

    @Option(help: ArgumentHelp("Folder with the four MNIST IDX files, raw or .gz.", valueName: "DIR"))
    package var data: String = "data/mnist"

    // The architecture flags are optional so the trainer knows which were given: a model read
    // from a file (`--load model.keras`) takes its architecture from there.
    @Option(
        name: .customLong("cell"),
        help:
            "Recurrent layer: simple_rnn (the notebook's), lstm or gru (Keras's defaults: tanh, sigmoid gates; GRU with reset_after). Default: simple_rnn."
    )
    package var cellFlag: RecurrentCellKind?

    @Option(
        name: .customLong("units"),
        help: ArgumentHelp(
            "Recurrent layer sizes (each 1 to 65536, at most 64 layers), comma-separated; several stack (all but the last return sequences). Default: 10.",
            valueName: "list"),
        transform: UnitList.parse)
    package var unitsFlag: UnitList?

    @Option(name: .customLong("activation"), help: "SimpleRNN activation (LSTM and GRU use tanh). Default: tanh.")
    package var activationFlag: ActivationOption?

    @Option(
        name: .customLong("bidirectional"),
        help: "Wrap each recurrent layer in Bidirectional, merging the two directions by concat, sum, mul or ave (Keras's merge_mode).")
    package var bidirectional: MergeMode?

    @Flag(name: .customLong("go-backwards"), help: "Read each image's rows from the bottom up (Keras's go_backwards).")
    package var goBackwards = false

    @Option(
        help: ArgumentHelp(
            "Drop this fraction of each recurrent layer's input features while training, one mask per image (Keras's dropout).",
            valueName: "R"))
    package var dropout: Double?

    @Option(
        name: .customLong("recurrent-dropout"),
        help: ArgumentHelp(
            "Drop this fraction of each recurrent layer's state where it meets the recurrent kernel while training, one mask per image (Keras's recurrent_dropout).",
            valueName: "R"))
    package var recurrentDropout: Double?

    // `.unconditional` so that a negative value (`--mask-value -1`) is read as the value.
    @Option(
        name: .customLong("mask-value"), parsing: .unconditional,
        help: ArgumentHelp(
            "Start with Masking(V): image rows whose pixels all equal V (0 for blank rows, after scaling to [0, 1]) are skipped, the state carried over them.",
            valueName: "V"))
    package var maskValue: Double?

    package var cell: RecurrentCellKind { cellFlag ?? .simpleRNN }
    package var units: UnitList { unitsFlag ?? UnitList(argument: "10")! }
    package var activation: ActivationOption { activationFlag ?? .tanh }
    /// The architecture flags given, by name, for messages.
    var architectureFlagsGiven: [String] {
        [
            cellFlag.map { _ in "--cell" }, unitsFlag.map { _ in "--units" }, activationFlag.map { _ in "--activation" },
            bidirectional.map { _ in "--bidirectional" }, goBackwards ? "--go-backwards" : nil, dropout.map { _ in "--dropout" },
            recurrentDropout.map { _ in "--recurrent-dropout" }, maskValue.map { _ in "--mask-value" },
        ].compactMap { $0 }
    }

    @Option(help: "Passes over the training data, at most 1000000 (0 with --load: evaluate and predict only).")
    package var epochs: Int = 10

    @Option(help: "Samples per training step: 1 to 1048576, and at most the training samples.")
    package var batchSize: Int = 32

    @Option(help: "Fraction of the training images, taken from the end before shuffling, that validates (0 for none).")
    package var validationSplit: Double = 0.1

    @Option(
        name: .customLong("optimizer"),
        help: "Optimiser, with Keras's defaults (default: adam; with --load model.keras, the file's optimiser and its state).")
    package var optimizerFlag: OptimizerOption?

    package var optimizer: OptimizerOption { optimizerFlag ?? .adam }

    // `.unconditional` so that `--learning-rate -1` reaches the validation (and its message)
    // instead of being read as a missing value followed by a flag.
    @Option(
        parsing: .unconditional,
        help: "Learning rate (default: the optimiser's Keras default: 0.001 for adam and rmsprop, 0.01 for sgd).")
    package var learningRate: Double?

    @Option(
        help: ArgumentHelp(
            "Scale each weight's gradient down to this L2 norm at most before each update (Keras's clipnorm).", valueName: "N"))
    package var clipnorm: Double?

    @Option(help: ArgumentHelp("Clip every gradient element into [−N, N] (Keras's clipvalue).", valueName: "N"))
    package var clipvalue: Double?

    @Option(
        name: .customLong("global-clipnorm"),
        help: ArgumentHelp("Scale all gradients together down to this joint L2 norm at most (Keras's global_clipnorm).", valueName: "N"))
    package var globalClipnorm: Double?

    /// The clipping the flags ask for.
    var clipping: GradientClipping? {
        if let clipnorm { return .norm(clipnorm) }
        if let clipvalue { return .value(clipvalue) }
        return globalClipnorm.map { .globalNorm($0) }
    }

    @Option(
        name: .customLong("lr-schedule"),
        help: "Learning rate over training: constant, or cosine (Keras's CosineDecay from the rate to 0 over all epochs).")
    package var learningRateSchedule: ScheduleOption = .constant

    @Option(help: "Seed for the initial weights and the shuffling.")
    package var seed: UInt64 = 0

    @Flag(help: "Keep the training order fixed instead of reshuffling every epoch.")
    package var noShuffle = false

    @Option(help: "Use only the first N training images.")
    package var limit: Int?

    @Option(
        help: ArgumentHelp(
            "Start from this model: a Keras .keras file (architecture, weights and optimiser state: no --units needed), a Keras .weights.h5 file, or safetensors (RNNKit's own carry their architecture).",
            valueName: "FILE"))
    package var load: String?

    @Option(
        help: ArgumentHelp(
            "Also write the trained model here, in the format its extension names: .keras (Keras's model file, with the optimiser state), .weights.h5 (Keras's weights file), .safetensors, or .onnx (ONNX opset 17, for inference runtimes).",
            valueName: "FILE"))
    package var save: String?

    @Option(
        help: ArgumentHelp(
            "Folder for history.json, history.svg, prediction.svg, weights.safetensors and metrics.json (default: a new folder per run, runs/<date>-<time>-<model>, with runs/latest linked to it).",
            valueName: "DIR"))
    package var output: String?

    @Option(
        help: ArgumentHelp(
            "Every N epochs (1 to --epochs), write checkpoint.safetensors (weights, optimiser state, history) to the output folder.",
            valueName: "N"))
    package var checkpointEvery: Int?

    @Option(
        help: ArgumentHelp(
            "Continue the run whose checkpoint is in DIR (or this file), with the same settings: the result equals an uninterrupted run's.",
            valueName: "DIR"))
    package var resume: String?

    @Option(help: "Arithmetic: the OpenBLAS engine or the naive reference.")
    package var backend: BackendOption = .blas

    @Option(
        help:
            "The engine's matrix products: auto (those too small for OpenBLAS in RNNKit's SIMD kernels, the rest in OpenBLAS) or blas (all in OpenBLAS)."
    )
    package var kernels: KernelsOption = .auto

    @Option(help: "OpenBLAS threads per call, 1 to 256 (default 1: the notebook's GEMMs are too small to share).")
    package var threads: Int = 1

    @Option(
        help:
            "Threads that share each batch, each running a shard of it, 1 to 256 (default: one per core; under mpirun, the cores divided among the ranks on each machine)."
    )
    package var workers: Int = min(256, max(1, ProcessInfo.processInfo.activeProcessorCount / MPIWorld.ranksOnThisMachine))

    @Option(help: "Training image to predict and draw.")
    package var exampleIndex: Int = 36

    package init() {}

    /// The largest `--epochs`.
    package static let maximumEpochs = 1_000_000
    /// The largest `--batch-size` (at run time also at most the training samples).
    package static let maximumBatchSize = 1 << 20
    /// The largest size of one recurrent layer in `--units`.
    package static let maximumUnits = 1 << 16
    /// The most layers `--units` lists.
    package static let maximumLayers = 64
    /// The largest `--workers` and `--threads`.
    package static let maximumThreads = 256

    /// Checks every flag with arithmetic behind it against a documented range, so that no value
    /// reaches a computation that overflows or a conversion to Float that becomes infinite.
    package func validate() throws {
        guard (0...Self.maximumEpochs).contains(epochs) else {
            throw ValidationError("--epochs must be between 0 and \(Self.maximumEpochs), got \(epochs)")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be a whole number of 1 or more, got \(batchSize)") }
        guard batchSize <= Self.maximumBatchSize else {
            throw ValidationError("--batch-size must be between 1 and \(Self.maximumBatchSize), got \(batchSize)")
        }
        if let sizes = unitsFlag?.sizes {
            guard sizes.count <= Self.maximumLayers else {
                throw ValidationError("--units lists \(sizes.count) layers; at most \(Self.maximumLayers) are allowed")
            }
            if let size = sizes.first(where: { $0 > Self.maximumUnits }) {
                throw ValidationError("--units: each layer's size must be between 1 and \(Self.maximumUnits), got \(size)")
            }
        }
        guard validationSplit >= 0, validationSplit < 1 else {
            throw ValidationError("--validation-split must be in [0, 1) (0 for none), got \(validationSplit)")
        }
        // The trainer computes in Float: a value Float cannot hold would become 0 or infinite.
        func fitsFloat(_ value: Double) -> Bool { Float(value).isFinite && Float(value) >= Float.leastNormalMagnitude }
        if let learningRate, !fitsFloat(learningRate) {
            throw ValidationError(
                "--learning-rate must be a positive number from \(Float.leastNormalMagnitude) to \(Float.greatestFiniteMagnitude), got \(learningRate)"
            )
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be 1 or more, got \(limit)") }
        if let maskValue, !Float(maskValue).isFinite {
            throw ValidationError(
                "--mask-value must be a number from -\(Float.greatestFiniteMagnitude) to \(Float.greatestFiniteMagnitude), got \(maskValue)"
            )
        }
        if let dropout, !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        if let recurrentDropout, !(recurrentDropout >= 0 && recurrentDropout < 1) {
            throw ValidationError("--recurrent-dropout must be in [0, 1), got \(recurrentDropout)")
        }
        let clips = [("--clipnorm", clipnorm), ("--clipvalue", clipvalue), ("--global-clipnorm", globalClipnorm)].filter { $0.1 != nil }
        if clips.count > 1 { throw ValidationError("give one of \(clips.map(\.0).joined(separator: ", ")), as Keras allows one") }
        if let (flag, value) = clips.first, let value, !fitsFloat(value) {
            throw ValidationError(
                "\(flag) must be a positive number from \(Float.leastNormalMagnitude) to \(Float.greatestFiniteMagnitude), got \(value)")
        }
        guard threads >= 1, threads <= Self.maximumThreads else {
            throw ValidationError("--threads must be between 1 and \(Self.maximumThreads), got \(threads)")
        }
        guard workers >= 1, workers <= Self.maximumThreads else {
            throw ValidationError("--workers must be between 1 and \(Self.maximumThreads), got \(workers)")
        }
        if let checkpointEvery, !(1...max(epochs, 1)).contains(checkpointEvery) || epochs == 0 {
            throw ValidationError(
                epochs == 0
                    ? "--checkpoint-every needs --epochs of 1 or more (nothing is trained with --epochs 0)"
                    : "--checkpoint-every must be between 1 and --epochs (\(epochs)), got \(checkpointEvery)")
        }
        if resume != nil, load != nil { throw ValidationError("--resume restores the weights itself; drop --load") }
        if let save, WeightsFormat(path: save) == nil, !save.hasSuffix("/"), !FileManager.default.fileExists(atPath: save) {
            throw ValidationError("--save \(save): name the format by the extension: .keras, .weights.h5, .safetensors or .onnx")
        }
        if let load, WeightsFormat(path: load) == .onnx {
            throw ValidationError("--load \(load): RNNKit writes ONNX files for inference runtimes but does not read them")
        }
        if let load, WeightsFormat(path: load) == .keras, !architectureFlagsGiven.isEmpty {
            throw ValidationError(
                "--load \(load) builds the model a .keras file describes; drop \(architectureFlagsGiven.joined(separator: ", "))")
        }
        guard exampleIndex >= 0 else { throw ValidationError("--example-index must be 0 or more, got \(exampleIndex)") }
    }

    package func run() throws {
        do {
            try Trainer(options: self).run()
        } catch let failure as RankFailure {
            throw failure.underlying
        } catch let error as TrainerFailure {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            throw TrainerFailure(message: "\(error)")
        }
    }
}

/// A failure that ends the trainer with a one-line message and exit status 1 (130 after an
/// interruption, as shells report Ctrl-C).
package struct TrainerFailure: Error, CustomStringConvertible {
    package let message: String
    package var exitCode: Int32 = 1
    package var description: String { message }
}

/// How an error that ends one rank of an MPI job ends the others.
struct RankFailure: Error, CustomStringConvertible {
    enum Handling {
        /// Every rank has failed alike (or been told of this rank's failure): print here, end normally.
        case printAndFinish
        /// Another rank prints the message; end normally.
        case finishQuietly
    }
    let underlying: Error
    let handling: Handling
    /// The rank whose failure this is, named in the message when it is not rank 0.
    var rank = 0

    init(_ underlying: Error, handling: Handling, rank: Int = 0) {
        self.underlying = underlying
        self.handling = handling
        self.rank = rank
    }

    var description: String { "\(underlying)" }
}

extension TrainBlas {
    /// Parses the arguments, runs, and exits: status 0 on success, 64 with a one-line message for
    /// a bad flag, 1 with a one-line message for anything else.
    ///
    /// Under an MPI launcher (`mpirun -np N train-blas …`) every rank runs this, and MPI starts
    /// first. A bad flag is reported once, by the first rank that has it (rank 0 when every rank
    /// has the same flags), and every rank exits with the usage status. An error every rank knows of is printed once and each rank ends normally; an error
    /// only one rank knows of (rank 0 failing to write its outputs) is printed and ends the whole
    /// job through MPI_Abort, so no rank is left waiting.
    package static func runAndExit(_ arguments: [String]? = nil) -> Never {
        var world: MPIWorld?
        if MPIWorld.launchedByMPI {
            do { world = try MPIWorld.start() } catch {
                FileHandle.standardError.write(Data((boundedMessage("train-blas: error: cannot start MPI: \(error)") + "\n").utf8))
                Foundation.exit(1)
            }
        }
        let parsed = Result { try parse(arguments) }
        var failedToParse = false
        if case .failure = parsed { failedToParse = true }
        // Every rank parses; the first that could not (rank 0 when all have the same flags) speaks.
        var speaker: Int? = failedToParse ? (world?.rank ?? 0) : nil
        if let world {
            do { speaker = try world.firstRank(where: failedToParse) } catch { world.abort(code: 1) }
        }
        let command: TrainBlas
        switch parsed {
        case .success(let parsedCommand) where speaker == nil:
            command = parsedCommand
        case .success:
            world?.finish()
            Foundation.exit(ExitCode.validationFailure.rawValue)
        case .failure(let error):
            let code = exitCode(for: error), speaks = speaker == (world?.rank ?? 0)
            if code == .success {
                if world?.isRoot ?? true { print(fullMessage(for: error)) }
            } else if speaks {
                let place = world.map { $0.rank == 0 ? "" : "rank \($0.rank): " } ?? ""
                FileHandle.standardError.write(Data((boundedMessage("train-blas: error: \(place)\(message(for: error))") + "\n").utf8))
            }
            world?.finish()
            Foundation.exit(code.rawValue)
        }
        do {
            try Trainer(options: command, world: world).run()
            world?.finish()
            Foundation.exit(0)
        } catch let failure as RankFailure {
            if failure.handling == .printAndFinish { report(failure.underlying, rank: world == nil ? nil : failure.rank) }
            world?.finish()
            Foundation.exit(exitStatus(for: failure.underlying))
        } catch {
            report(error, rank: world?.rank)
            let status = exitStatus(for: error)
            if let world, world.size > 1 { world.abort(code: status) }
            world?.finish()
            Foundation.exit(status)
        }
    }

    private static func exitStatus(for error: Error) -> Int32 {
        if let failure = error as? TrainerFailure { return failure.exitCode }
        if error is ValidationError { return exitCode(for: error).rawValue }
        return 1
    }

    /// Prints the one-line message for `error`, naming the rank when it is not rank 0.
    private static func report(_ error: Error, rank: Int?) {
        let place = rank.map { $0 == 0 ? "" : "rank \($0): " } ?? ""
        let text: String
        if let failure = error as? TrainerFailure {
            text = "train-blas: \(failure.exitCode == 130 ? "stopped" : "error"): \(place)\(failure.message)"
        } else if error is ValidationError {
            text = "train-blas: error: \(place)\(message(for: error))"
        } else {
            text = "train-blas: error: \(place)\(error)"
        }
        // A message with parts from a file (names, lists of differences) is cut to 40 lines and
        // about 4,000 characters, saying how much was left out.
        FileHandle.standardError.write(Data((boundedMessage(text) + "\n").utf8))
    }
}
