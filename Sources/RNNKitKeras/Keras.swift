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
/// `SimpleRNN`, `LSTM`, `GRU`, `Dense` and `TimeDistributed(Dense)`, in float32 or float64, with
/// Adam, SGD or RMSprop. Anything else is refused by `UnsupportedKerasModel`, which lists every
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

    /// The largest member of a `.keras` zip RNNKit will unpack (a guard against zip bombs).
    static let largestMember: UInt64 = 4 << 30

    /// Reads a `.keras` file: rebuilds the model from `config.json`, loads its weights and, when
    /// it was compiled, its optimiser and loss with the optimiser's state.
    ///
    /// - Parameters:
    ///   - scalar: what the model computes in; weights stored in float32 or float64 are converted.
    ///   - seed: for the initial values the file's weights then replace (and any later shuffling).
    /// - Throws: `KerasFileError` for a file that cannot be read or whose weights do not fit its
    ///   config, `UnsupportedKerasModel` listing everything RNNKit does not implement.
    public static func loadModel<Scalar: BLASScalar>(from url: URL, as scalar: Scalar.Type = Float.self, seed: UInt64 = 0,
                                                     backend: any Backend = BLASBackend()) throws -> LoadedModel<Scalar> {
        let name = url.path
        let members = try readArchive(url)
        guard let config = members["config.json"] else {
            throw KerasFileError(file: name, reason: "has no config.json: a .keras file is a zip of config.json, metadata.json and model.weights.h5")
        }
        guard let weights = members["model.weights.h5"] else {
            throw KerasFileError(file: name, reason: members["model.weights.npz"] != nil
                ? "holds its weights as model.weights.npz; RNNKit reads the HDF5 form (Keras's default, model.weights.h5)"
                : "has no model.weights.h5")
        }
        var version: String?
        if let metadata = members["metadata.json"],
           let object = (try? JSONSerialization.jsonObject(with: metadata)) as? [String: Any] {
            version = object["keras_version"] as? String
        }
        let loaded: LoadedModel<Scalar> = try buildModel(config: config, file: "\(name): config.json", seed: seed, backend: backend)
        let file = try HDF5File(reading: weights, name: "\(name): model.weights.h5")
        let notes = try KerasWeightsLayout.read(file, into: loaded.model, optimizer: loaded.optimizer)
        return LoadedModel(model: loaded.model, optimizer: loaded.optimizer, loss: loaded.loss, notes: notes, kerasVersion: version)
    }

    /// Builds the model a Keras `config.json` describes (as `model.to_json()` or a `.keras` file
    /// holds it), with fresh weights drawn from `seed`, compiled when the config has compile settings.
    /// - Throws: `KerasFileError` when `config` is not JSON, `UnsupportedKerasModel` listing what
    ///   RNNKit does not implement, `ModelError` when the layers do not fit together.
    public static func buildModel<Scalar: BLASScalar>(config: Data, file: String = "config.json", as _: Scalar.Type = Scalar.self,
                                                      seed: UInt64 = 0, backend: any Backend = BLASBackend()) throws -> LoadedModel<Scalar> {
        let spec = try KerasConfig.parse(config, file: file)
        let model = try Sequential<Scalar>(name: spec.name, inputShape: spec.inputShape, layers: spec.makeLayers(Scalar.self),
                                           seed: seed, backend: backend)
        let optimizer = spec.makeOptimizer(Scalar.self)
        if let optimizer {
            try model.compile(optimizer: optimizer, loss: spec.loss ?? CategoricalCrossentropy())
        }
        return LoadedModel(model: model, optimizer: optimizer, loss: spec.loss, notes: [], kerasVersion: nil)
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
        let metadata = try JSONSerialization.data(withJSONObject: [
            "keras_version": "3.15.1", "date_saved": formatter.string(from: Date()), "producer": "RNNKit",
        ], options: [.sortedKeys])
        let weights = try HDF5File(creatingNamed: "model.weights.h5")
        try KerasWeightsLayout.write(model, to: weights)
        let archive: Archive
        do { archive = try Archive(accessMode: .create) } catch {
            throw KerasFileError(file: url.path, reason: "cannot start a zip archive in memory (\(error))")
        }
        for (member, data) in [("metadata.json", metadata), ("config.json", config), ("model.weights.h5", try weights.bytes())] {
            try archive.addEntry(with: member, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .none) { position, size in
                data.subdata(in: Int(position)..<Int(position) + size)
            }
        }
        guard let bytes = archive.data else { throw KerasFileError(file: url.path, reason: "the zip archive could not be completed") }
        try writeAtomically(bytes, to: url)
    }

    /// The members of the zip at `url` that RNNKit reads, by name.
    private static func readArchive(_ url: URL) throws -> [String: Data] {
        let name = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KerasFileError(file: name, reason: FileManager.default.fileExists(atPath: name) ? "cannot be read" : "not found")
        }
        guard data.starts(with: [0x50, 0x4B]) else {
            let what = data.starts(with: HDF5File.signature) ? "an HDF5 file (a .weights.h5? load it with loadKerasWeights)"
                : data.isEmpty ? "empty" : "not a zip archive"
            throw KerasFileError(file: name, reason: "is \(what); a .keras file is a zip of config.json, metadata.json and model.weights.h5")
        }
        // A zip ends with its end-of-central-directory record (within its last 64 KiB + 22 bytes).
        // Checked here first: a truncated file is the commonest damage, and ZIPFoundation leaks its
        // in-memory file when its initialiser throws.
        let tail = data.suffix(65_557)
        guard tail.count >= 22, tail.indices.reversed().dropFirst(3).contains(where: { i in
            tail[i] == 0x50 && tail[i + 1] == 0x4B && tail[i + 2] == 0x05 && tail[i + 3] == 0x06
        }) else {
            throw KerasFileError(file: name, reason: "is a damaged or truncated zip archive (it has no end-of-central-directory record)")
        }
        let archive: Archive
        do { archive = try Archive(data: data, accessMode: .read) } catch {
            throw KerasFileError(file: name, reason: "is a damaged or truncated zip archive (\(error))")
        }
        var members: [String: Data] = [:]
        for entry in archive where ["config.json", "metadata.json", "model.weights.h5", "model.weights.npz"].contains(entry.path) {
            guard entry.uncompressedSize <= largestMember else {
                throw KerasFileError(file: name, reason: "member \(entry.path) claims \(entry.uncompressedSize) bytes, more than a model file holds")
            }
            var contents = Data()
            do {
                _ = try archive.extract(entry) { contents.append($0) }
            } catch {
                throw KerasFileError(file: name, reason: "member \(entry.path) cannot be unpacked: the zip is damaged or truncated (\(error))")
            }
            members[entry.path] = contents
        }
        if members.isEmpty, archive.makeIterator().next() == nil {
            throw KerasFileError(file: name, reason: "is a damaged or truncated zip archive (no entries can be read)")
        }
        return members
    }
}

extension Sequential {
    /// Loads weights from a Keras `.weights.h5` file (or the weights inside a `.keras` file) into
    /// this model, built in Swift with the same layers; and, given the model's optimiser, its
    /// state from the file when the file has it.
    ///
    /// Every name and shape is checked first: on any mismatch the model is unchanged and the
    /// error lists every difference.
    /// - Returns: notes on what was read but not used.
    @discardableResult
    public func loadKerasWeights(from url: URL, optimizer: (any StatefulOptimizer<Scalar>)? = nil) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KerasFileError(file: url.path, reason: FileManager.default.fileExists(atPath: url.path) ? "cannot be read" : "not found")
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
