import Foundation
import RNNKit
import ZIPFoundation

/// Keras 3's own files, in and out, with no Python in between:
///
/// - `.keras`: a zip of `config.json` (the architecture and compile settings), `metadata.json` and
///   `model.weights.h5` (the weights and the optimiser's state). `Keras.loadModel` rebuilds the
///   model from it; `Keras.saveModel` writes one that `keras.saving.load_model` reads.
/// - `.weights.h5`: the weights and optimiser state alone, into a model built in Swift
///   (`Sequential.loadKerasWeights`, `saveKerasWeights`), as Keras's `load_weights`/`save_weights`.
///
/// Supported: `Sequential` models (and Functional ones that are a plain stack) of `InputLayer`,
/// `Embedding`, `SimpleRNN`, `LSTM`, `GRU`, `Dense` and `TimeDistributed(Dense)`, in float32 or float64, with
/// or without bias (`use_bias`), L1/L2 regularisers on kernels and biases, and Adam, AdamW, SGD
/// or RMSprop. Anything else is refused by `UnsupportedKerasModel`, which lists every
/// item and where it is in `config.json`; nothing is guessed.
public enum Keras {
    /// A model read from a `.keras` file (or from a Keras config).
    public struct LoadedModel<Scalar: BLASScalar> {
        /// The model, its weights from the file, compiled when the file has compile settings.
        public let model: Sequential<Scalar>
        /// The optimiser from the compile settings, with the file's state (step count, learning
        /// rate, moments) so that `fit` continues where Keras stopped; nil when uncompiled.
        public let optimizer: (any StatefulOptimizer<Scalar>)?
        /// The loss from the compile settings, if any.
        public let loss: (any Loss)?
        /// What was read but not used (an optimiser state that does not fit, say), one line each.
        public let notes: [String]
        /// `metadata.json`'s `keras_version`, when the file has one.
        public let kerasVersion: String?
    }

    /// The most `metadata.json` may unpack to.
    static let largestMetadata: UInt64 = 1 << 20

    /// Reads a `.keras` file: rebuilds the model from `config.json`, loads its weights and, when
    /// it was compiled, its optimiser and loss with the optimiser's state.
    ///
    /// - Parameters:
    ///   - url: the `.keras` file.
    ///   - scalar: what the model computes in; weights stored in float32 or float64 are converted.
    ///   - seed: for the initial values the file's weights then replace (and any later shuffling).
    ///   - backend: which arithmetic runs the model's layers.
    ///   - steps: for a model whose input has no fixed number of steps (`None`), the steps of the
    ///     sequences it is built for. Without it such a model is refused, unless it is stateful:
    ///     that one is built for pieces of 1 step (its `predict(_:)` takes pieces of any length).
    /// - Throws: `FileFormatError` for a file that cannot be read or whose weights do not fit its
    ///   config, `UnsupportedKerasModel` listing everything RNNKit does not implement.
    ///
    /// A model with stateful layers (`stateful=True`) keeps the batch size its input fixes.
    public static func loadModel<Scalar: BLASScalar>(
        from url: URL, as scalar: Scalar.Type = Float.self, seed: UInt64 = 0,
        backend: any Backend = BLASBackend(), steps: Int? = nil
    ) throws -> LoadedModel<Scalar> {
        let name = url.path
        let archive = try openArchive(url)
        guard let configEntry = archive.entry("config.json") else {
            throw FileFormatError(
                file: name, format: .kerasArchive,
                reason: "has no config.json: a .keras file is a zip of config.json, metadata.json and model.weights.h5")
        }
        guard let weightsEntry = archive.entry("model.weights.h5") else {
            throw FileFormatError(
                file: name, format: .kerasArchive,
                reason: archive.entry("model.weights.npz") != nil
                    ? "holds its weights as model.weights.npz; RNNKit reads the HDF5 form (Keras's default, model.weights.h5)"
                    : "has no model.weights.h5")
        }
        let config = try archive.contents(of: configEntry, limit: UInt64(KerasConfig.Limits.configBytes))
        let spec = try KerasConfig.parse(config, file: "\(name): config.json", steps: steps)
        // The weights must be in the file: a few bytes of config cannot make RNNKit build (and
        // allocate, and initialise) a model whose weights the file does not hold.
        let weightCount = KerasConfig.weightCount(spec.layers, input: spec.inputShape) ?? Int.max
        let (needed, overflow) = UInt64(weightCount).multipliedReportingOverflow(by: 4)
        guard !overflow, weightsEntry.uncompressedSize >= needed else {
            throw FileFormatError(
                file: name, format: .kerasArchive,
                reason:
                    "config.json describes \(weightCount) weights (\(needed) bytes at least), but model.weights.h5 holds only \(weightsEntry.uncompressedSize) bytes"
            )
        }
        // The weights, the optimiser's moments and HDF5's own structure, in float64 at most.
        let weightsLimit = needed.multipliedReportingOverflow(by: 6).partialValue + (16 << 20)
        let weights = try archive.contents(of: weightsEntry, limit: weightsLimit)
        var version: String?
        if let metadataEntry = archive.entry("metadata.json"),
            let metadata = try? archive.contents(of: metadataEntry, limit: largestMetadata),
            let object = (try? StrictJSON.value(from: metadata)) as? [String: Any]
        {
            version = object["keras_version"] as? String
        }
        let file = try HDF5File(reading: weights, name: "\(name): model.weights.h5")
        let loaded: LoadedModel<Scalar> = try build(spec, file: "\(name): config.json", seed: seed, backend: backend)
        let notes = try loaded.notes + KerasWeightsLayout.read(file, into: loaded.model, optimizer: loaded.optimizer)
        return LoadedModel(model: loaded.model, optimizer: loaded.optimizer, loss: loaded.loss, notes: notes, kerasVersion: version)
    }

    /// Builds the model a Keras `config.json` describes (as `model.to_json()` or a `.keras` file
    /// holds it), with fresh weights drawn from `seed`, compiled when the config has compile settings.
    /// - Throws: `FileFormatError` when `config` is not JSON, `UnsupportedKerasModel` listing what
    ///   RNNKit does not implement, `ModelError` when the layers do not fit together.
    ///
    /// - Parameters:
    ///   - config: the JSON of `config.json`.
    ///   - file: the name errors give the config.
    ///   - _: what the model computes in (`Float.self` or `Double.self`).
    ///   - seed: draws the fresh weights.
    ///   - backend: which arithmetic runs the model's layers.
    ///   - weightsAvailable: how many weight scalars the caller holds for this model (a
    ///     checkpoint's, a safetensors file's): a config that describes more is refused before
    ///     anything is built, so that a few bytes of config cannot make RNNKit allocate a model whose
    ///     weights are not there. Nil when the weights are to be drawn fresh.
    ///   - steps: for an input of `None` steps, as `loadModel`'s.
    public static func buildModel<Scalar: BLASScalar>(
        config: Data, file: String = "config.json", as _: Scalar.Type = Scalar.self,
        seed: UInt64 = 0, backend: any Backend = BLASBackend(),
        weightsAvailable: Int? = nil, steps: Int? = nil
    ) throws -> LoadedModel<Scalar> {
        let spec = try KerasConfig.parse(config, file: file, steps: steps)
        if let weightsAvailable {
            let described = KerasConfig.weightCount(spec.layers, input: spec.inputShape) ?? Int.max
            guard described <= weightsAvailable else {
                throw FileFormatError(
                    file: file, format: .kerasConfig,
                    reason: "describes a model of \(described) weights, but the file holds only \(weightsAvailable)")
            }
        }
        return try build(spec, file: file, seed: seed, backend: backend)
    }

    /// The most memory a model built from a file may need for its weights, gradients and
    /// optimiser state: half the machine's.
    static var memoryBudget: UInt64 { ProcessInfo.processInfo.physicalMemory / 2 }

    /// The most work the initialisers of a model built from a config may take: 10^12 operations,
    /// seconds on one core (LSTM(4096) takes 5.5·10^11).
    static let largestInitializationWork = 1e12

    /// Builds `spec`, compiled when it has compile settings, once its memory is known to fit.
    static func build<Scalar: BLASScalar>(
        _ spec: KerasModelSpec, file: String, seed: UInt64,
        backend: any Backend
    ) throws -> LoadedModel<Scalar> {
        let weights = UInt64(KerasConfig.weightCount(spec.layers, input: spec.inputShape) ?? Int.max)
        // Weights, gradients and up to two optimiser slots; and a stateful model's carried states
        // (h, and c for LSTM, with the last batch's beside them) for its whole fixed batch.
        var stateScalars: UInt64 = 0
        for case .recurrent(let r) in spec.layers where r.stateful {
            stateScalars += UInt64(r.units) * (r.kind == .lstm ? 4 : 2) * UInt64(spec.batchSize ?? 0)
        }
        let (scalars, sumOverflow) = weights.multipliedReportingOverflow(by: 4)
        let (total, totalOverflow) = scalars.addingReportingOverflow(stateScalars)
        let (bytes, overflow) = total.multipliedReportingOverflow(by: UInt64(MemoryLayout<Scalar>.size))
        guard !sumOverflow, !totalOverflow, !overflow, bytes <= memoryBudget else {
            throw FileFormatError(
                file: file, format: .kerasConfig,
                reason:
                    "the model's \(weights) weights would need \(bytes / (1 << 20)) MiB with their gradients and optimiser state\(stateScalars > 0 ? " (and its stateful layers' states)" : ""), more than the \(memoryBudget / (1 << 20)) MiB RNNKit allows (half this machine's memory)"
            )
        }
        // An orthogonal initialiser is a QR factorisation, about 2·m·n² operations for an m × n
        // kernel: SimpleRNN(16000) would spend a minute in it before the file's weights replace it.
        var work = 0.0
        for layer in spec.layers {
            let (recurrent, copies): (KerasModelSpec.RecurrentSpec?, Double) =
                switch layer {
                case .recurrent(let r): (r, 1)
                case .bidirectional(let r, _): (r, 2)
                default: (nil, 0)
                }
            guard let recurrent, case .orthogonal = recurrent.recurrentInitializer else { continue }
            let n = Double(recurrent.units), m = n * Double(recurrent.kind.gateCount)
            work += copies * 2 * m * n * n
        }
        guard work <= largestInitializationWork else {
            throw FileFormatError(
                file: file, format: .kerasConfig,
                reason: String(
                    format:
                        "the model's orthogonal initialisers would take about %.1e operations (QR factorisations), more than the %.0e RNNKit spends building a model from a config",
                    work, largestInitializationWork))
        }
        let model = try Sequential<Scalar>(
            name: spec.name, inputShape: spec.inputShape,
            layers: spec.makeLayers(Scalar.self), batchSize: spec.batchSize,
            seed: seed, backend: backend)
        let optimizer = spec.makeOptimizer(Scalar.self)
        if let optimizer {
            try model.compile(optimizer: optimizer, loss: spec.loss ?? CategoricalCrossentropy())
        }
        return LoadedModel(model: model, optimizer: optimizer, loss: spec.loss, notes: spec.notes, kerasVersion: nil)
    }

    /// The `config.json` Keras would write for `model` (its compile settings included when it is compiled).
    public static func config<Scalar: BLASScalar>(of model: Sequential<Scalar>) throws -> Data {
        try JSONSerialization.data(withJSONObject: KerasConfigWriter.config(of: model), options: [.sortedKeys])
    }

    /// Writes `model` as a `.keras` file, atomically: its architecture, weights and, when it is
    /// compiled with Adam, SGD or RMSprop, its compile settings and optimiser state.
    /// - Throws: `ModelError.invalidConfiguration` for a layer or optimiser Keras files cannot hold,
    ///   `FileWriteError` when the file cannot be written.
    public static func saveModel<Scalar: BLASScalar>(_ model: Sequential<Scalar>, to url: URL) throws {
        let config = try config(of: model)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd@HH:mm:ss"
        // Keras reads the version to warn about files from newer Kerases; RNNKit writes Keras 3.15's layout.
        let metadata = try JSONSerialization.data(
            withJSONObject: [
                "keras_version": "3.15.1", "date_saved": formatter.string(from: Date()), "producer": "RNNKit",
                "producer_version": RNNKitRelease.version,
            ], options: [.sortedKeys])
        let weights = try HDF5File(creatingNamed: "model.weights.h5")
        try KerasWeightsLayout.write(model, to: weights)
        let archive: Archive
        do { archive = try Archive(accessMode: .create) } catch {
            throw FileFormatError(file: url.path, format: .kerasArchive, reason: "cannot start a zip archive in memory (\(error))")
        }
        for (member, data) in [("metadata.json", metadata), ("config.json", config), ("model.weights.h5", try weights.bytes())] {
            try archive.addEntry(with: member, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .none) {
                position, size in
                data.subdata(in: Int(position)..<Int(position) + size)
            }
        }
        guard let bytes = archive.data else {
            throw FileFormatError(file: url.path, format: .kerasArchive, reason: "the zip archive could not be completed")
        }
        try writeAtomically(bytes, to: url)
    }

    /// The zip at `url`, its structure checked.
    private static func openArchive(_ url: URL) throws -> ZipArchiveReader {
        let name = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FileFormatError(
                file: name, format: .kerasArchive, reason: FileManager.default.fileExists(atPath: name) ? "cannot be read" : "not found")
        }
        guard data.starts(with: [0x50, 0x4B]) else {
            let what =
                HDF5File.signatureOffset(in: data) != nil
                ? "an HDF5 file (a .weights.h5? load it with loadKerasWeights)"
                : data.isEmpty ? "empty" : "not a zip archive"
            throw FileFormatError(
                file: name, format: .kerasArchive,
                reason: "is \(what); a .keras file is a zip of config.json, metadata.json and model.weights.h5")
        }
        return try ZipArchiveReader(data, file: name, kind: .keras)
    }
}

/// Keras's weights files for a model built in Swift: `.weights.h5` in and out.
extension Sequential {
    /// Loads weights from a Keras `.weights.h5` file (or the weights inside a `.keras` file) into
    /// this model, built in Swift with the same layers; and, given the model's optimiser, its
    /// state from the file when the file has it.
    ///
    /// Every name and shape is checked first: on any mismatch the model is unchanged and the
    /// error lists every difference.
    /// - Throws: `FileFormatError` (`.hdf5Weights`, or the `.keras` formats for a `.keras` file)
    ///   for a file that cannot be read or does not fit the model.
    /// - Returns: notes on what was read but not used.
    @discardableResult
    public func loadKerasWeights(from url: URL, optimizer: (any StatefulOptimizer<Scalar>)? = nil) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FileFormatError(
                file: url.path, format: .hdf5Weights,
                reason: FileManager.default.fileExists(atPath: url.path) ? "cannot be read" : "not found")
        }
        if data.starts(with: [0x50, 0x4B]) {
            // A .keras file: its weights, into this model.
            let archive = try Keras.loadModel(from: url, as: Scalar.self)
            try setWeights(archive.model.weights)
            return archive.notes
        }
        let file = try HDF5File(reading: data, name: url.path)
        return try KerasWeightsLayout.read(file, into: self, optimizer: optimizer ?? (self.optimizer as? any StatefulOptimizer<Scalar>))
    }

    /// Writes the weights (and the optimiser's state, when compiled) as a Keras `.weights.h5`
    /// file, atomically, which Keras's `model.load_weights` reads into the same architecture.
    public func saveKerasWeights(to url: URL) throws {
        let file = try HDF5File(creatingNamed: url.lastPathComponent)
        try KerasWeightsLayout.write(self, to: file)
        try writeAtomically(try file.bytes(), to: url)
    }
}
