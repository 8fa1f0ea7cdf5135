import ArgumentParser
import Foundation
import RNNKit
import RNNKitKeras

/// The model a run trains, its optimiser, and where its architecture came from.
struct BuiltModel {
    let model: Sequential<Float>
    let optimizer: any StatefulOptimizer<Float>
    /// Keras's config (with the compile settings as the run starts) of a model whose architecture
    /// came from a file (`--load model.keras`, RNNKit's safetensors, or a checkpoint of such a run);
    /// nil when the flags built it. Checkpoints keep it, so `--resume` rebuilds the same model.
    let fileConfig: Data?
    /// What was read but not used, to tell the user.
    let notes: [String]

    /// `LSTM(128)`, `SimpleRNN(16→8→4)`, `LSTM(7)→GRU(5)`: the recurrent stack, for titles.
    var description: String {
        // One entry per recurrent layer of the stack: `LSTM(8)`, `Bidirectional(LSTM(8))`.
        let entries: [(kind: String, units: Int)] = model.layers.compactMap { layer in
            if let bidirectional = layer as? Bidirectional<Float> {
                return ("Bidirectional(\(bidirectional.forwardLayer.typeName)", bidirectional.forwardLayer.units)
            }
            return (layer as? RecurrentLayer<Float>).map { ($0.typeName, $0.units) }
        }
        guard let first = entries.first else { return model.layers.map(\.typeName).joined(separator: "→") }
        let close = first.kind.hasPrefix("Bidirectional(") ? ")" : ""
        if entries.allSatisfy({ $0.kind == first.kind }) {
            return "\(first.kind)(\(entries.map { String($0.units) }.joined(separator: "→")))\(close)"
        }
        return entries.map { "\($0.kind)(\($0.units))\($0.kind.hasPrefix("Bidirectional(") ? ")" : "")" }.joined(separator: "→")
    }

    /// The recurrent layers (both directions of a Bidirectional one), in order.
    var recurrentLayers: [RecurrentLayer<Float>] {
        model.layers.flatMap { layer -> [RecurrentLayer<Float>] in
            if let bidirectional = layer as? Bidirectional<Float> { return [bidirectional.forwardLayer, bidirectional.backwardLayer] }
            return (layer as? RecurrentLayer<Float>).map { [$0] } ?? []
        }
    }

    /// The recurrent layers' gates and units, for the memory estimate.
    var recurrentSizes: (gates: [Int], units: [Int]) {
        (recurrentLayers.map(\.cell.gates), recurrentLayers.map(\.units))
    }
}

/// What a file given to `--load` is, by its first bytes (not its name).
enum LoadedFileKind {
    case keras, kerasWeights, safetensors

    init(contentsOf path: String) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            self = .safetensors
            return
        }
        defer { try? handle.close() }
        func bytes(at offset: UInt64) -> Data {
            (try? handle.seek(toOffset: offset)).flatMap { _ in try? handle.read(upToCount: 8) } ?? Data()
        }
        let start = bytes(at: 0)
        if start.starts(with: [0x50, 0x4B]) {
            self = .keras
            return
        }
        // HDF5 puts its signature at the start or after a user block of 512, 1024, 2048, … bytes.
        let hdf5: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        let size = (try? handle.seekToEnd()) ?? 0
        var offset: UInt64 = 0
        while offset + 8 <= size {
            if bytes(at: offset).elementsEqual(hdf5) {
                self = .kerasWeights
                return
            }
            offset = offset == 0 ? 512 : offset * 2
        }
        self = .safetensors
    }
}

extension Trainer {
    /// Builds the model and optimiser: from the flags, or from the architecture a file holds
    /// (`checkpointConfig` when resuming a run that came from a file, else `--load`), with the
    /// file's weights, and an optimiser from `--optimizer`/`--learning-rate` where given, else from
    /// the file with its state.
    ///
    /// `checkpointWeights` is how many weight scalars the checkpoint holds: a config that describes
    /// more is refused before anything is built (as is a safetensors file's).
    func buildModel(sampleShape: FeatureShape, classes: Int, checkpointConfig: Data?, checkpointWeights: Int? = nil) throws -> BuiltModel {
        let backend = options.backend.backend(kernels: options.kernels)
        var model: Sequential<Float>
        var fileOptimizer: (any StatefulOptimizer<Float>)?
        var fromFile = false
        var notes: [String] = []
        let loadKind = options.load.map { LoadedFileKind(contentsOf: $0) }
        func modelFrom(config: Data, source: String, weightsAvailable: Int?) throws -> Sequential<Float> {
            guard options.architectureFlagsGiven.isEmpty else {
                throw ValidationError(
                    "\(source) holds the model's architecture; drop \(options.architectureFlagsGiven.joined(separator: ", "))")
            }
            fromFile = true
            do {
                let built = try Keras.buildModel(
                    config: config, file: source, as: Float.self, seed: options.seed, backend: backend,
                    weightsAvailable: weightsAvailable)
                fileOptimizer = built.optimizer
                return built.model
            } catch let error as ModelError { throw TrainerFailure(message: "\(source): \(error)") }
        }

        if let checkpointConfig {
            model = try modelFrom(config: checkpointConfig, source: "--resume \(options.resume ?? "")", weightsAvailable: checkpointWeights)
        } else if let load = options.load, loadKind == .keras {
            guard options.architectureFlagsGiven.isEmpty else {
                throw ValidationError(
                    "--load \(load) builds the model a .keras file describes; drop \(options.architectureFlagsGiven.joined(separator: ", "))"
                )
            }
            let loaded: Keras.LoadedModel<Float>
            do {
                loaded = try Keras.loadModel(from: URL(fileURLWithPath: load), as: Float.self, seed: options.seed, backend: backend)
            } catch let error as ModelError { throw TrainerFailure(message: "--load \(load): \(error)") }
            if let loss = loaded.loss, !["categorical_crossentropy", "sparse_categorical_crossentropy"].contains(loss.name) {
                throw TrainerFailure(
                    message:
                        "--load \(load): the model is compiled with \(loss.name); train-blas trains digit classifiers with categorical cross-entropy"
                )
            }
            model = loaded.model
            fileOptimizer = loaded.optimizer
            fromFile = true
            notes = loaded.notes
        } else if let load = options.load, loadKind == .safetensors, options.architectureFlagsGiven.isEmpty,
            let (config, scalars) = Self.kerasConfig(inSafetensors: load)
        {
            model = try modelFrom(config: config, source: "--load \(load)", weightsAvailable: scalars)
            fileOptimizer = nil // a safetensors file holds no optimiser state
        } else {
            model = try flagModel(sampleShape: sampleShape, classes: classes, backend: backend)
        }

        guard model.inputShape == sampleShape else {
            throw TrainerFailure(
                message:
                    "\(options.load.map { "--load \($0)" } ?? "the model"): the model takes input \(model.inputShape); MNIST rows are \(sampleShape)"
            )
        }
        guard model.outputShape == .vector(features: classes) else {
            throw TrainerFailure(
                message:
                    "\(options.load.map { "--load \($0)" } ?? "the model"): the model outputs \(model.outputShape); MNIST needs (None, \(classes)) class probabilities"
            )
        }

        // The optimiser: named by the flag (fresh), else the file's (with its state), else Adam.
        let optimizer: any StatefulOptimizer<Float>
        if let kept = fileOptimizer, options.optimizerFlag == nil || options.optimizerFlag?.rawValue == kept.name {
            if let rate = options.learningRate { kept.learningRate = rate }
            if let clipping = options.clipping { kept.clipping = clipping }
            optimizer = kept
        } else {
            optimizer = options.optimizer.make(
                learningRate: options.learningRate ?? options.optimizer.defaultLearningRate,
                clipping: options.clipping ?? .none)
        }
        try model.compile(optimizer: optimizer)

        // A .keras file brought its weights with it; the other formats load into the model built.
        if let load = options.load, let loadKind, loadKind != .keras {
            notes += try loadWeights(load, kind: loadKind, into: model, optimizer: optimizer)
        }
        model.workers = options.workers
        return BuiltModel(model: model, optimizer: optimizer, fileConfig: fromFile ? try Keras.config(of: model) : nil, notes: notes)
    }

    private func flagModel(sampleShape: FeatureShape, classes: Int, backend: any Backend) throws -> Sequential<Float> {
        let sizes = options.units.sizes
        var layers: [any Layer<Float>] = sizes.enumerated().map { index, units in
            // Each layer's dropout stream from the run's seed, so a run is reproducible.
            let layer = options.cell.layer(
                units: units, returnSequences: index < sizes.count - 1,
                activation: options.activation.activation, goBackwards: options.goBackwards,
                dropout: options.dropout ?? 0, recurrentDropout: options.recurrentDropout ?? 0,
                seed: options.seed &+ UInt64(index) &* 1_000_003)
            return options.bidirectional.map { Bidirectional(layer, mergeMode: $0) } ?? layer
        }
        if let maskValue = options.maskValue { layers.insert(Masking<Float>(maskValue: maskValue), at: 0) }
        layers.append(Dense<Float>(units: classes, activation: .softmax))
        return try Sequential<Float>(inputShape: sampleShape, layers: layers, seed: options.seed, backend: backend)
    }

    /// Loads a Keras weights file or safetensors into a model built already.
    private func loadWeights(
        _ load: String, kind: LoadedFileKind, into model: Sequential<Float>,
        optimizer: any StatefulOptimizer<Float>
    ) throws -> [String] {
        let url = URL(fileURLWithPath: load)
        switch kind {
        case .kerasWeights:
            do { return try model.loadKerasWeights(from: url, optimizer: optimizer) } catch let error as FileFormatError {
                throw TrainerFailure(message: "--load \(error)")
            }
        case .safetensors:
            do { return try model.loadWeights(from: url) } catch let error as ModelError {
                throw TrainerFailure(message: "--load \(load): \(error)" + (Self.suggestion(forWeightsIn: load).map { "\n\($0)" } ?? ""))
            }
        case .keras:
            preconditionFailure("a .keras file builds its own model")
        }
    }

    /// The Keras config RNNKit writes into the metadata of its safetensors files, and how many
    /// scalars the file's tensors hold.
    static func kerasConfig(inSafetensors path: String) -> (config: Data, scalars: Int)? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
            let file = try? SafeTensors.decode(data, file: path, as: Float.self),
            let config = file.metadata[SafeTensors.kerasConfigKey]
        else { return nil }
        return (Data(config.utf8), file.tensors.values.reduce(0) { $0 + $1.scalars.count })
    }
}
