import Foundation
import RNNKit

/// What `--checkpoint-every` writes and `--resume` reads: the weights, the optimiser's state, the
/// history and the settings of a run after a finished epoch, in one safetensors file
/// (`checkpoint.safetensors`: the weights under their Keras names, each optimiser slot over the
/// whole parameter arena as `optimizer/slot<k>`, the rest as metadata).
///
/// Package-internal but for what the fuzz package (Fuzz/, a package of its own) calls through
/// `@_spi(Fuzzing) import TrainerSupport`: `decode(_:file:)` and the two properties its target
/// reads. SPI, not API: nothing outside this repository should use it.
@_spi(Fuzzing) public struct Checkpoint {
    static let fileName = "checkpoint.safetensors"

    var epoch: Int
    var history: History
    /// The settings a resumed run must share for its result to equal an uninterrupted run's.
    var configuration: [String: String]
    @_spi(Fuzzing) public var weights: [String: Tensor<Float>]
    var iterations: Int
    var slots: [[Float]]
    /// The Keras config of a run whose model came from a file, to rebuild it on `--resume`.
    @_spi(Fuzzing) public var kerasConfig: Data?

    /// The flags that decide the arithmetic of a run (not where it writes, nor how often it saves).
    /// `epochs` counts only under a schedule, whose rates depend on the total.
    /// `ranks` counts only above 1 (checkpoints from before MPI runs have no such setting).
    /// A model from a file records `model` instead of the architecture flags, and the optimiser
    /// the run actually uses (from the flags or the file).
    static func configuration(of options: TrainBlas, built: BuiltModel, ranks: Int = 1) -> [String: String] {
        var settings = [
            "batch-size": "\(options.batchSize)", "validation-split": "\(options.validationSplit)",
            "optimizer": built.optimizer.name,
            "learning-rate": "\(built.optimizer.learningRate)",
            "lr-schedule": options.learningRateSchedule.rawValue, "seed": "\(options.seed)",
            "shuffle": "\(!options.noShuffle)", "limit": options.limit.map(String.init) ?? "none",
            "workers": "\(options.workers)", "data": URL(fileURLWithPath: options.data).standardizedFileURL.path,
        ]
        if built.fileConfig == nil {
            settings.merge(["cell": options.cell.rawValue, "units": options.units.description, "activation": options.activation.rawValue]) {
                $1
            }
            // Only what differs from the defaults is recorded, so earlier checkpoints still resume.
            if let mode = options.bidirectional { settings["bidirectional"] = mode.rawValue }
            if options.goBackwards { settings["go-backwards"] = "true" }
            if let dropout = options.dropout, dropout > 0 { settings["dropout"] = "\(dropout)" }
            if let rate = options.recurrentDropout, rate > 0 { settings["recurrent-dropout"] = "\(rate)" }
            if let maskValue = options.maskValue { settings["mask-value"] = "\(maskValue)" }
        } else {
            settings["model"] = built.description + " from a Keras config"
        }
        if options.learningRateSchedule != .constant { settings["epochs"] = "\(options.epochs)" }
        switch built.optimizer.clipping {
        case .none: break
        case .norm(let c): settings["clipnorm"] = "\(c)"
        case .value(let c): settings["clipvalue"] = "\(c)"
        case .globalNorm(let c): settings["global-clipnorm"] = "\(c)"
        }
        if ranks > 1 { settings["mpi-ranks"] = "\(ranks)" }
        // Only the non-default choice is recorded, so earlier checkpoints still resume.
        if options.kernels != .auto { settings["kernels"] = options.kernels.rawValue }
        return settings
    }

    func write(to folder: URL) throws {
        var tensors = weights
        for (k, slot) in slots.enumerated() { tensors["optimizer/slot\(k)"] = Tensor(shape: [slot.count], scalars: slot) }
        let historyJSON = String(decoding: try JSONEncoder().encode(history), as: UTF8.self)
        let configurationJSON = String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
        let metadata = [
            "format": "rnnkit-checkpoint-1", "epoch": "\(epoch)", "iterations": "\(iterations)",
            "history": historyJSON, "configuration": configurationJSON,
            "epoch_seconds": history.epochSeconds.map { "\($0)" }.joined(separator: ","),
        ]
        .merging(kerasConfig.map { [SafeTensors.kerasConfigKey: String(decoding: $0, as: UTF8.self)] } ?? [:]) { $1 }
        try writeAtomically(SafeTensors.encode(tensors, metadata: metadata), to: folder.appendingPathComponent(Self.fileName))
    }

    /// Reads `path` (a checkpoint file, or a folder holding one).
    /// - Throws: `FileFormatError` (format `.checkpoint`, or `.safetensors` when the file is no
    ///   safetensors file at all) naming the file and what is wrong; the trainer prefixes `--resume`.
    static func read(_ path: String) throws -> Checkpoint {
        var url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
            url = url.appendingPathComponent(fileName)
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FileFormatError(
                file: url.path, format: .checkpoint,
                reason: FileManager.default.fileExists(atPath: url.path)
                    ? "cannot be read" : "no checkpoint there (write one with --checkpoint-every N)")
        }
        return try decode(data, file: url.path)
    }

    /// Reads a checkpoint from its bytes; `file` names it in errors. Every count, size and value
    /// is checked before anything uses it (the fuzz target `FuzzCheckpoint` calls this).
    /// - Throws: `FileFormatError` as `read` does; nothing else.
    @_spi(Fuzzing) public static func decode(_ data: Data, file path: String) throws -> Checkpoint {
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: path, format: .checkpoint, reason: reason) }
        // SafeTensors names the file itself.
        let file = try SafeTensors.decode(data, file: path, as: Float.self)
        guard file.metadata["format"] == "rnnkit-checkpoint-1", let epochText = file.metadata["epoch"],
            let iterationsText = file.metadata["iterations"], let historyText = file.metadata["history"],
            let configurationText = file.metadata["configuration"]
        else { throw fail("is not an RNNKit checkpoint (its metadata lacks the epoch, optimiser count, history or settings)") }
        // Each count is checked before anything computes with it: a crafted 2^63 − 1 would
        // otherwise overflow at the first step's `iterations + 1`.
        guard let epoch = Int(epochText), (0...TrainBlas.maximumEpochs).contains(epoch) else {
            throw fail("its epoch count \(excerpt(epochText)) is not a whole number in 0...\(TrainBlas.maximumEpochs)")
        }
        guard let iterations = Int(iterationsText), (0...maximumIterations).contains(iterations) else {
            throw fail("its iteration count \(excerpt(iterationsText)) is not a whole number in 0...\(maximumIterations) (2^53)")
        }
        guard historyText.utf8.count <= maximumHistoryBytes(epochs: epoch) else {
            throw fail(
                "its history is \(historyText.utf8.count) bytes of JSON; at most \(maximumHistoryBytes(epochs: epoch)) are read for \(epoch) epoch\(epoch == 1 ? "" : "s")"
            )
        }
        guard configurationText.utf8.count <= maximumConfigurationBytes else {
            throw fail("its settings are \(configurationText.utf8.count) bytes of JSON; at most \(maximumConfigurationBytes) are read")
        }
        guard var history = try? JSONDecoder().decode(History.self, from: Data(historyText.utf8)) else {
            throw fail("its history is not a training history in JSON")
        }
        guard let configuration = try? JSONDecoder().decode([String: String].self, from: Data(configurationText.utf8)) else {
            throw fail("its settings are not a JSON object of strings")
        }
        history.epochSeconds = (file.metadata["epoch_seconds"] ?? "").split(separator: ",").compactMap { Double($0) }
        // One figure per finished epoch (validation figures only with a validation split).
        guard history.loss.count == epoch, history.categoricalAccuracy.count == epoch,
            history.valLoss.count == history.valCategoricalAccuracy.count, [0, epoch].contains(history.valLoss.count),
            history.epochSeconds.count <= epoch
        else {
            throw fail(
                "its history holds \(history.loss.count) losses, \(history.categoricalAccuracy.count) accuracies, "
                    + "\(history.valLoss.count) and \(history.valCategoricalAccuracy.count) validation figures and \(history.epochSeconds.count) epoch times "
                    + "for its \(epoch) epochs")
        }
        var slots: [[Float]] = []
        while let slot = file.tensors["optimizer/slot\(slots.count)"] { slots.append(slot.scalars) }
        let known = Set((0..<slots.count).map { "optimizer/slot\($0)" })
        if let stray = file.tensors.keys.filter({ $0.hasPrefix("optimizer/") && !known.contains($0) }).sorted().first {
            throw fail("tensor \(stray) is not one of the optimiser's slots (optimizer/slot0, optimizer/slot1, … in turn)")
        }
        let weights = file.tensors.filter { !$0.key.hasPrefix("optimizer/") }
        // As --load does: a NaN or infinity would spread through every later step.
        for (name, tensor) in weights.sorted(by: { $0.key < $1.key }) {
            if let index = tensor.scalars.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor \(name) holds \(tensor.scalars[index]) at element \(index); weights must be finite")
            }
        }
        for (k, slot) in slots.enumerated() {
            if let index = slot.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor optimizer/slot\(k) holds \(slot[index]) at element \(index); the optimiser's state must be finite")
            }
        }
        return Checkpoint(
            epoch: epoch, history: history, configuration: configuration, weights: weights,
            iterations: iterations, slots: slots, kerasConfig: file.metadata[SafeTensors.kerasConfigKey].map { Data($0.utf8) })
    }

    /// The largest optimiser iteration count read: 2^53, up to which a Double counts exactly.
    static let maximumIterations = 1 << 53
    /// The largest history read for `epochs` epochs, in bytes of JSON: four figures an epoch
    /// take at most some 100 bytes (`0.12345678901234568,` each); never over 2 MiB, whose
    /// decoding already takes a debug build most of a second.
    static func maximumHistoryBytes(epochs: Int) -> Int { min(1024 + 128 * epochs, 2 << 20) }
    /// The largest settings read, in bytes of JSON (a run's settings take well under a kilobyte).
    static let maximumConfigurationBytes = 64 << 10

    /// `text` quoted for a message, cut to its first 40 characters.
    static func excerpt(_ text: String) -> String {
        text.count <= 40 ? "«\(text)»" : "«\(text.prefix(40))…»"
    }

    /// Checks that `slots` fit `optimizer` over a model of `parameters` values before they are
    /// restored; the message says what the checkpoint holds and what the model needs.
    func checkSlots(for optimizer: any StatefulOptimizer<Float>, parameters: Int) throws {
        let needed = optimizer.state.slotCount
        guard slots.count != needed || slots.contains(where: { $0.count != parameters }) else { return }
        let lengths = Array(Set(slots.map(\.count))).sorted().prefix(4).map(String.init).joined(separator: ", ")
        throw TrainerFailure(
            message: "the checkpoint's optimiser state is \(slots.count) slot\(slots.count == 1 ? "" : "s")"
                + (slots.isEmpty ? "" : " of \(lengths) values") + "; \(optimizer.name) over this model keeps \(needed) of \(parameters)")
    }

    /// One line per setting that differs from `current`.
    func differences(from current: [String: String]) -> [String] {
        Set(configuration.keys).union(current.keys).sorted().compactMap { key in
            // A run of one process records no rank count.
            let (then, now) = key == "mpi-ranks" ? (configuration[key] ?? "1", current[key] ?? "1") : (configuration[key], current[key])
            guard then != now else { return nil }
            let setting = key == "mpi-ranks" ? "MPI ranks" : "--\(key)"
            return "\(setting): the checkpoint's run used \(then ?? "(not set)"), this one \(now ?? "(not set)")"
        }
    }
}
