import ArgumentParser
import Foundation
import RNNKit
import RNNKitKeras
import RNNKitMPI
import RNNKitONNX

/// What `train-blas` does once its flags are valid.
struct Trainer {
    let options: TrainBlas
    /// Ctrl-C and SIGTERM: the first finishes the current step and writes what was trained.
    let interruption = Interruption()
    /// Where this run writes: `--output`, or a new folder per run so no run overwrites another.
    let outputPath: String
    /// The MPI job this process is a rank of; nil when it runs alone.
    let world: MPIWorld?
    /// Whether this process prints and writes: the only one, or rank 0 of an MPI job.
    var isRoot: Bool { world?.isRoot ?? true }

    init(options: TrainBlas, world: MPIWorld? = nil) {
        self.options = options
        self.world = world
        if let output = options.output {
            outputPath = output
        } else {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.dateFormat = "yyyyMMdd-HHmmss"
            // A run from a Keras file is named after the file; otherwise after the flags' model.
            let model =
                options.load.flatMap { load in
                    LoadedFileKind(contentsOf: load) == .keras
                        ? URL(fileURLWithPath: load).deletingPathExtension().lastPathComponent : nil
                }
                ?? "\(options.cell.rawValue)-\(options.units.sizes.map(String.init).joined(separator: "-"))"
            outputPath = "runs/\(formatter.string(from: Date()))-\(model)"
        }
    }

    /// Points `runs/latest` at this run's folder (for the default folders only).
    private func linkLatest() {
        guard options.output == nil, isRoot else { return }
        Self.link(latest: "runs/latest", to: (outputPath as NSString).lastPathComponent)
    }

    /// Points the link `latest` at `target`: a new link made under a temporary name beside it,
    /// then renamed over it, so the old link is replaced in one step and never followed (a
    /// link to a folder elsewhere is not written into). Anything there that is not a link (a
    /// real folder of that name, from an older version) stays.
    static func link(latest: String, to target: String) {
        var status = stat()
        if lstat(latest, &status) == 0, (status.st_mode & S_IFMT) != S_IFLNK { return }
        let temporary = ((latest as NSString).deletingLastPathComponent as NSString)
            .appendingPathComponent(".\((latest as NSString).lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        if symlink(target, temporary) != 0 {
            // A stale one of ours (or anything planted with the name): unlink it, a link itself
            // never its target, and try once more.
            guard errno == EEXIST, unlink(temporary) == 0, symlink(target, temporary) == 0 else { return }
        }
        if rename(temporary, latest) != 0 { unlink(temporary) }
    }

    /// Progress and results are printed by rank 0 alone.
    private func say(_ text: String) { if isRoot { writeToStandardOutput(text + "\n") } }

    /// What the run starts from, once every rank has read its files and built its model.
    private struct Setup {
        var outputLock: FolderLock?
        var mnist: MNIST
        var train: ImageDataset
        var model: Sequential<Float>
        var optimizer: any StatefulOptimizer<Float>
        var built: BuiltModel
        /// The settings a checkpoint of this run records, as the run starts.
        var configuration: [String: String]
        var history = History()
        var initialEpoch = 0
    }

    func run() throws {
        #if DEBUG
            if isRoot {
                FileHandle.standardError.write(
                    Data(
                        "train-blas: note: this is a debug build, which trains about 30× slower than a release one: use `swift run -c release train-blas` (or `make run`)\n"
                            .utf8))
            }
        #endif
        BLASConfiguration.threads = options.threads
        // Every rank reads its own data and builds its own model; a failure on any rank ends all
        // of them, the message printed once, by the first rank that failed.
        let setup = try collectively { try prepare() }
        defer { withExtendedLifetime(setup.outputLock) {} }
        let (mnist, train, model, optimizer) = (setup.mnist, setup.train, setup.model, setup.optimizer)
        if let world {
            // Before the first collective whose counts depend on the settings.
            try checkRanksAgree(setup, world: world)
            let reducer = MPIReducer<Float>(world: world)
            reducer.localStopRequested = { [interruption] in interruption.requested }
            model.reducer = reducer
            // Rank 0's weights (drawn, loaded or resumed) and optimiser state, on every rank.
            try agreed { try world.broadcast(model: model, optimizer: optimizer) }
        }
        linkLatest()
        interruption.install(say: { FileHandle.standardError.write(Data($0.utf8)) })
        defer { interruption.uninstall() }
        say("Machine: \(BLASConfiguration.report.summary)")
        say(model.summary())
        for note in setup.built.notes { say(boundedMessage("Note: \(note)")) }
        if setup.initialEpoch > 0 || options.resume != nil {
            say("Resuming after epoch \(setup.initialEpoch) of \(options.epochs) (\(options.resume ?? ""))")
        }

        let resumedHistory = setup.history
        var history = resumedHistory
        var stoppedEarly: TrainingError?
        var trainCount = 0
        if options.epochs > 0 {
            let split = try ValidationSplit(count: train.count, fraction: options.validationSplit)
            trainCount = split.training.count
            let validationCount = split.validation.count
            let ranks = world.map { ", \($0.size) MPI ranks" } ?? ""
            say(
                "Training on \(trainCount) samples, validating on \(validationCount) (\(options.backend.rawValue) backend\(options.backend == .blas && options.kernels == .blas ? ", every product in OpenBLAS" : "")\(ranks), \(options.workers) worker\(options.workers == 1 ? "" : "s"), \(BLASConfiguration.threads) OpenBLAS thread\(BLASConfiguration.threads == 1 ? "" : "s") each)"
            )
            var bar = ProgressBar()
            var fitOptions = FitOptions(
                epochs: options.epochs, batchSize: options.batchSize, validationSplit: options.validationSplit,
                shuffle: !options.noShuffle, seed: options.seed,
                learningRateSchedule: options.learningRateSchedule.schedule)
            if let reducer = model.reducer as? MPIReducer<Float> {
                // Decided in each step's all-reduce, so every rank stops after the same step.
                fitOptions.stopRequested = { [reducer] in reducer.stopRequestedOnAnyRank }
            } else {
                fitOptions.stopRequested = { [interruption] in interruption.requested }
            }
            fitOptions.initialEpoch = setup.initialEpoch
            var running = resumedHistory
            do {
                history = try agreed {
                    try model.fit(train, options: fitOptions) { event in
                        guard isRoot else { return }
                        bar.handle(event, epochs: options.epochs)
                        if case .epochEnded(let epoch, _, let training, let validation, let seconds) = event {
                            running.append(training: training, validation: validation, seconds: seconds)
                            if let every = options.checkpointEvery, epoch % every == 0 {
                                writeCheckpoint(epoch: epoch, history: running, setup: setup)
                            }
                        }
                    }
                }
                history = Self.joined(resumedHistory, history)
            } catch let thrown {
                guard let error = ((thrown as? RankFailure)?.underlying ?? thrown) as? TrainingError else { throw thrown }
                switch error {
                case .nonFinite(_, _, let partial): history = Self.joined(resumedHistory, partial ?? History())
                case .interrupted(_, _, let partial): history = Self.joined(resumedHistory, partial)
                }
                stoppedEarly = error
                say((bar.interactive ? "\n" : "") + "Training stopped: \(error)")
            }
        }

        // After an interruption the test set is not evaluated: the user asked to stop.
        let interrupted = try agreed { try world?.any(interruption.requested) ?? interruption.requested }
        let test =
            interrupted
            ? Metrics(loss: .nan, accuracy: .nan, samples: 0)
            : try agreed { try model.evaluate(mnist.test, batchSize: options.batchSize) }
        if !interrupted {
            say(String(format: "Test loss: %.4f - test categorical_accuracy: %.4f (%d images)", test.loss, test.accuracy, test.samples))
        }

        let example = try model.predict(mnist.train, range: options.exampleIndex..<(options.exampleIndex + 1), batchSize: 1)
        let predicted = example.scalars.indices.max { example.scalars[$0] < example.scalars[$1] }!
        let pixels = mnist.train.image(at: options.exampleIndex)
        say("\nTraining image \(options.exampleIndex) (label \(mnist.train.label(at: options.exampleIndex))):")
        say(Pictures.terminalDigit(pixels: pixels, rows: mnist.train.rows, columns: mnist.train.columns))
        say("predicted: \(predicted)")

        if isRoot {
            // Rank 0 alone writes; should that fail, the other ranks are ended with it (MPI_Abort).
            let written = try writeOutputs(
                built: setup.built, history: history, test: test, trainCount: trainCount,
                pixels: pixels, rows: mnist.train.rows, columns: mnist.train.columns, predicted: predicted,
                label: mnist.train.label(at: options.exampleIndex), interrupted: interrupted)
            say("\nWrote " + written.joined(separator: ", "))
        }
        if let world {
            let checksum = try agreed { try world.checkIdentical(model.arena) }
            say("The weights are identical on all \(world.size) ranks (checksum \(String(checksum, radix: 16)))")
        }
        if let stoppedEarly {
            // An interruption ends with the status shells give Ctrl-C.
            let interrupted = if case .interrupted = stoppedEarly { true } else { false }
            let failure = TrainerFailure(
                message: "\(stoppedEarly); what was trained so far is saved in \(outputPath)",
                exitCode: interrupted ? 130 : 1)
            try agreed { throw failure }
        }
    }

    /// Checks the output folder (rank 0), reads MNIST and any weights or checkpoint, and builds
    /// the model and optimiser.
    private func prepare() throws -> Setup {
        var outputLock: FolderLock?
        if isRoot {
            // Before any work: a run whose results cannot be written is not worth starting.
            do { try checkWritable(folder: URL(fileURLWithPath: outputPath)) } catch let error as FileWriteError {
                throw ValidationError("--output \(outputPath): cannot write there (\(error.reason))")
            }
            // Held until the run ends: a second run writing the same folder is refused, not mixed in.
            do { outputLock = try FolderLock(URL(fileURLWithPath: outputPath)) } catch let error as FileWriteError {
                // The lock file's own trouble (a planted link) names the file.
                let folder = URL(fileURLWithPath: outputPath).path
                throw TrainerFailure(message: "--output \(outputPath): \(error.path == folder ? error.reason : "\(error)")")
            }
            if let save = options.save {
                var isFolder: ObjCBool = false
                if save.hasSuffix("/") || (FileManager.default.fileExists(atPath: save, isDirectory: &isFolder) && isFolder.boolValue) {
                    throw ValidationError(
                        "--save \(save) is a folder; give a file name, e.g. \((save as NSString).appendingPathComponent("weights.safetensors"))"
                    )
                }
                do { try checkWritable(folder: URL(fileURLWithPath: save).deletingLastPathComponent()) } catch let error as FileWriteError {
                    throw ValidationError("--save \(save): cannot write there (\(error.reason))")
                }
            }
        }
        let mnist: MNIST
        do {
            mnist = try MNIST(folder: URL(fileURLWithPath: options.data))
        } catch let error as FileFormatError {
            throw TrainerFailure(message: "\(error); run `make data` to fetch MNIST, or pass --data DIR")
        }
        let train = options.limit.map { mnist.train.prefix($0) } ?? mnist.train
        guard options.exampleIndex < mnist.train.count else {
            throw ValidationError("--example-index must be below the \(mnist.train.count) training images, got \(options.exampleIndex)")
        }
        // A batch larger than the data is a mistake in the flags, not a request for one batch.
        // (A split that leaves nothing to train on is reported where the run splits.)
        if options.epochs > 0, let samples = (try? ValidationSplit(count: train.count, fraction: options.validationSplit))?.training.count {
            guard options.batchSize <= samples else {
                throw ValidationError(
                    "--batch-size must be between 1 and the \(samples) training samples (after --limit and --validation-split), got \(options.batchSize)"
                )
            }
        }

        var checkpoint: Checkpoint?
        if let resume = options.resume {
            do { checkpoint = try Checkpoint.read(resume) } catch let error as FileFormatError {
                throw TrainerFailure(message: "--resume \(error)")
            }
        }
        if checkpoint?.kerasConfig == nil, options.load == nil || LoadedFileKind(contentsOf: options.load!) != .keras {
            // Checked before building: the flags alone say how much memory the model needs.
            // A Bidirectional stack holds each recurrent layer twice.
            let copies = options.bidirectional == nil ? 1 : 2
            try checkMemory(
                gates: Array(repeating: options.cell.gateCount, count: copies * options.units.sizes.count),
                units: options.units.sizes.flatMap { Array(repeating: $0, count: copies) }, train: train)
        }
        let built = try buildModel(
            sampleShape: train.sampleShape, classes: train.classCount, checkpointConfig: checkpoint?.kerasConfig,
            checkpointWeights: checkpoint.map { $0.weights.values.reduce(0) { $0 + $1.scalars.count } })
        if built.fileConfig != nil {
            let sizes = built.recurrentSizes
            try checkMemory(gates: sizes.gates, units: sizes.units, train: train)
        }
        let (model, optimizer) = (built.model, built.optimizer)
        if let save = options.save, WeightsFormat(path: save) == .onnx {
            // Refused before training rather than after it: a Masking layer over MNIST's rows, say.
            do { _ = try ONNXExport.serialize(model) } catch let error as ONNXExportError {
                throw ValidationError("--save \(save): \(error)")
            }
        }
        let configuration = Checkpoint.configuration(of: options, built: built, ranks: world?.size ?? 1)
        var setup = Setup(
            outputLock: outputLock, mnist: mnist, train: train, model: model, optimizer: optimizer, built: built,
            configuration: configuration)
        if let resume = options.resume, let checkpoint {
            let differences = checkpoint.differences(from: configuration)
            guard differences.isEmpty else {
                throw ValidationError(
                    "--resume \(resume): this run's settings differ from the checkpoint's, so it could not continue it exactly: "
                        + differences.joined(separator: "; "))
            }
            do {
                try model.setWeights(checkpoint.weights)
                // Checked here, before restore uses them, with the checkpoint's figures and the model's.
                try checkpoint.checkSlots(for: optimizer, parameters: model.arena.count)
                try optimizer.restore(iterations: checkpoint.iterations, slots: checkpoint.slots, for: model.arena)
            } catch let failure as TrainerFailure {
                throw TrainerFailure(message: "--resume \(resume): \(failure.message)")
            } catch { throw TrainerFailure(message: "--resume \(resume): \(error)") }
            setup.history = checkpoint.history
            setup.initialEpoch = min(checkpoint.epoch, options.epochs)
        }
        return setup
    }

    // MARK: Errors across ranks

    /// Runs `body` on every rank; when it fails on any, every rank throws: the first rank that
    /// failed its own error (printed), the others quietly, so the message appears once.
    private func collectively<T>(_ body: () throws -> T) throws -> T {
        guard let world, world.size > 1 else { return try body() }
        let result = Result { try body() }
        var failed = false
        if case .failure = result { failed = true }
        guard let first = try world.firstRank(where: failed) else { return try result.get() }
        if first == world.rank, case .failure(let error) = result {
            throw RankFailure(error, handling: .printAndFinish, rank: world.rank)
        }
        throw RankFailure(TrainerFailure(message: "rank \(first) failed"), handling: .finishQuietly)
    }

    /// The settings every rank of an MPI job must share, as lines `key=value`, sorted: those a
    /// checkpoint records (less the data folder's path and the worker threads, which may differ
    /// from machine to machine), the epochs, and what was read and built (sample counts and
    /// shape, weight count, the epoch a resumed run starts after). Ranks that differ in any of
    /// these would make collective calls of different counts or different numbers of them.
    static func agreementLines(
        configuration: [String: String], epochs: Int, initialEpoch: Int, train: ImageDataset,
        testSamples: Int, parameters: Int
    ) -> [String] {
        var settings = configuration.filter { $0.key != "data" && $0.key != "workers" }
        settings["epochs"] = "\(epochs)"
        settings["initial-epoch"] = "\(initialEpoch)"
        settings["training-samples"] = "\(train.count)"
        settings["test-samples"] = "\(testSamples)"
        settings["sample-shape"] = "\(train.rows)x\(train.columns), \(train.classCount) classes"
        settings["parameters"] = "\(parameters)"
        return settings.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// 64-bit FNV-1a of `lines` joined by newlines: the same on every machine and run.
    static func fnv1a(_ lines: [String]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in lines.joined(separator: "\n").utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// The ranks whose hash differs from rank 0's, named in one message every rank agrees on.
    static func disagreement(_ hashes: [UInt64]) -> String? {
        let differing = hashes.indices.filter { hashes[$0] != hashes[0] }
        guard !differing.isEmpty else { return nil }
        let names = differing.map(String.init).joined(separator: ", ")
        return "MPI ranks disagree on their settings: rank\(differing.count == 1 ? "" : "s") \(names) "
            + "differ\(differing.count == 1 ? "s" : "") from rank 0 (start every rank with the same flags)"
    }

    /// Compares every rank's settings with rank 0's (a hash of each, gathered on all): ranks
    /// started with different flags or data would otherwise fail later inside MPI (a truncated
    /// message, a hang) instead of with a message. On a difference every rank fails, rank 0
    /// printing the one message.
    private func checkRanksAgree(_ setup: Setup, world: MPIWorld) throws {
        let lines = Self.agreementLines(
            configuration: setup.configuration, epochs: options.epochs, initialEpoch: setup.initialEpoch,
            train: setup.train, testSamples: setup.mnist.test.count, parameters: setup.model.arena.count)
        let hashes = try world.allGather(Self.fnv1a(lines))
        if let message = Self.disagreement(hashes) {
            throw RankFailure(TrainerFailure(message: message), handling: isRoot ? .printAndFinish : .finishQuietly)
        }
    }

    /// Runs `body`, whose outcome is the same on every rank (it computes on reduced figures and
    /// identical weights): an error is printed by rank 0 alone, and every rank ends normally.
    private func agreed<T>(_ body: () throws -> T) throws -> T {
        guard world != nil else { return try body() }
        do { return try body() } catch let failure as RankFailure { throw failure } catch {
            throw RankFailure(error, handling: isRoot ? .printAndFinish : .finishQuietly)
        }
    }

    /// A resumed run's history followed by the epochs trained since.
    static func joined(_ first: History, _ second: History) -> History {
        var result = first
        result.loss += second.loss
        result.categoricalAccuracy += second.categoricalAccuracy
        result.valLoss += second.valLoss
        result.valCategoricalAccuracy += second.valCategoricalAccuracy
        result.epochSeconds += second.epochSeconds
        return result
    }

    /// Refuses a model whose training would need more memory than the machine has, with the figure.
    private func checkMemory(gates: [Int], units: [Int], train: ImageDataset) throws {
        let estimate = MemoryEstimate(
            gates: gates, units: units, steps: train.rows, features: train.columns,
            classes: train.classCount, batchSize: options.batchSize, workers: options.workers)
        let available = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard let needed = estimate.bytes, needed <= available else {
            throw ValidationError(
                "--units \(units.map(String.init).joined(separator: ",")) with --batch-size \(options.batchSize) needs "
                    + (estimate.bytes.map { "about \(MemoryEstimate.describe($0))" } ?? "more memory than can be counted")
                    + "; this machine has \(MemoryEstimate.describe(available))")
        }
    }

    /// Writes the checkpoint after `epoch`; a failure is reported and training goes on.
    private func writeCheckpoint(epoch: Int, history: History, setup: Setup) {
        let checkpoint = Checkpoint(
            epoch: epoch, history: history, configuration: setup.configuration,
            weights: setup.model.weights, iterations: setup.optimizer.iterations,
            slots: setup.optimizer.state.slots.map(\.array), kerasConfig: setup.built.fileConfig)
        do { try checkpoint.write(to: URL(fileURLWithPath: outputPath)) } catch {
            FileHandle.standardError.write(
                Data((boundedMessage("train-blas: warning: the checkpoint after epoch \(epoch) was not written: \(error)") + "\n").utf8))
        }
    }

    /// The flags that would build the architecture a weights file holds: from the metadata RNNKit
    /// writes, or read off the recurrent kernels' names and shapes.
    static func suggestion(forWeightsIn path: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
            let file = try? SafeTensors.decode(data, file: path, as: Float.self)
        else { return nil }
        if let cell = file.metadata["cell"], let units = file.metadata["units"] {
            return "the file holds a \(cell) model with units \(units): try --cell \(cell) --units \(units)"
        }
        var layers: [(index: Int, cell: String, units: Int)] = []
        for (name, tensor) in file.tensors where name.hasSuffix("/recurrent_kernel") && tensor.shape.count == 2 {
            let layer = String(name.dropLast("/recurrent_kernel".count))
            let stem = layer.split(separator: "_").last.flatMap { Int($0) } == nil ? layer : String(layer[..<layer.lastIndex(of: "_")!])
            let index = layer == stem ? 0 : Int(layer.dropFirst(stem.count + 1)) ?? 0
            guard RecurrentCellKind(rawValue: stem) != nil else { continue }
            layers.append((index, stem, tensor.shape[0]))
        }
        guard !layers.isEmpty, Set(layers.map(\.cell)).count == 1 else { return nil }
        let units = layers.sorted { $0.index < $1.index }.map { String($0.units) }.joined(separator: ",")
        return "the file holds \(layers[0].cell) layers of \(units) units: try --cell \(layers[0].cell) --units \(units)"
    }

    private func writeOutputs(
        built: BuiltModel, history: History, test: Metrics, trainCount: Int,
        pixels: [UInt8], rows: Int, columns: Int, predicted: Int, label: Int, interrupted: Bool
    ) throws -> [String] {
        let model = built.model
        let folder = URL(fileURLWithPath: outputPath)
        var written: [String] = []
        func write(_ data: Data, _ name: String) throws {
            try writeAtomically(data, to: folder.appendingPathComponent(name))
            written.append((outputPath as NSString).appendingPathComponent(name)) // as the user gave it
        }
        try write(history.jsonData(), "history.json")
        // With no epoch trained (--epochs 0) there is no curve to draw.
        if history.epochs > 0 {
            try write(
                Data(
                    Pictures.historySVG(
                        loss: history.loss, accuracy: history.categoricalAccuracy,
                        valLoss: history.valLoss, valAccuracy: history.valCategoricalAccuracy,
                        title: "\(built.description) on MNIST rows, seed \(options.seed)"
                    ).utf8), "history.svg")
        }
        try write(
            Data(
                Pictures.digitSVG(
                    pixels: pixels, rows: rows, columns: columns,
                    title: "predicted: \(predicted)   (label \(label))"
                ).utf8), "prediction.svg")
        // The Keras config in the metadata lets `--load` rebuild the model with no flags.
        var metadata = try ModelFile.safetensorsMetadata(of: model)
        metadata["epochs"] = "\(history.epochs)"
        if built.fileConfig == nil {
            metadata.merge(["cell": options.cell.rawValue, "units": options.units.description, "activation": options.activation.rawValue]) {
                $1
            }
        }
        let weights = try SafeTensors.encode(model.weights, metadata: metadata)
        try write(weights, "weights.safetensors")
        if let save = options.save {
            let url = URL(fileURLWithPath: save)
            switch WeightsFormat(path: save) {
            case .keras?: try Keras.saveModel(model, to: url)
            case .kerasWeights?: try model.saveKerasWeights(to: url)
            case .onnx?: try ONNXExport.write(model, to: url)
            case .safetensors?, nil: try writeAtomically(weights, to: url)
            }
            written.append(save)
        }
        let metrics: [String: Any] = [
            "test_loss": test.loss,
            "test_categorical_accuracy": test.accuracy,
            "test_samples": test.samples,
            "epoch_seconds": history.epochSeconds,
            "train_samples_per_second": history.epochSeconds.map { Double(trainCount) / $0 },
            "training_seconds_total": history.epochSeconds.reduce(0, +),
            "train_samples": trainCount,
            "example_index": options.exampleIndex,
            "example_prediction": predicted,
            "backend": options.backend.rawValue,
            "kernels": options.kernels.rawValue,
            "openblas_threads": BLASConfiguration.threads,
            "machine": machineDescription(),
            "workers": options.workers,
            "units": built.recurrentSizes.units,
            "cell": model.layers.compactMap { ($0 as? RecurrentLayer<Float>)?.nameStem }.first ?? "none",
            "model": built.description,
            "interrupted": interrupted,
            "mpi_ranks": world?.size ?? 1,
            "batch_size": options.batchSize,
            "learning_rate_schedule": options.learningRateSchedule.rawValue,
        ]
        try write(JSONSerialization.data(withJSONObject: jsonSafe(metrics), options: [.prettyPrinted, .sortedKeys]), "metrics.json")
        return written
    }
}

/// JSON has no infinity or NaN; a diverged run's figures are written as `null`.
func jsonSafe(_ value: Any) -> Any {
    switch value {
    case let number as Double: number.isFinite ? number : NSNull()
    case let numbers as [Double]: numbers.map(jsonSafe)
    case let object as [String: Any]: object.mapValues(jsonSafe)
    default: value
    }
}

/// The processor, OpenBLAS's core before and after RNNKit's repair, and the small kernels'
/// instruction set, as `metrics.json` records them.
func machineDescription() -> [String: Any] {
    let report = BLASConfiguration.report
    var machine: [String: Any] = [
        "cpu_vendor": report.processor.vendor, "cpu_brand": report.processor.brand,
        "cpu_family": report.processor.family, "cpu_model": report.processor.model,
        "cpu_features": report.processor.features, "vector_level": report.processor.vectorLevel.description,
        "openblas_version": report.openBLASVersion, "openblas_configuration": report.openBLASConfiguration,
        "openblas_core_before": report.coreBefore, "openblas_core": report.coreAfter,
        "openblas_core_repair": report.outcome.rawValue, "small_kernels": SmallGEMM.instructionSet,
    ]
    if let rehearsal = report.rehearsedFallback { machine["rehearsed_fallback"] = rehearsal }
    return machine
}
