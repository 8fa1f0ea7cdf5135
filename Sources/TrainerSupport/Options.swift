import ArgumentParser
import RNNKit

/// `--activation`.
package enum ActivationOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case tanh, relu
    var activation: Activation { self == .tanh ? .tanh : .relu }
}

/// `--cell` parses straight into RNNKit's kind, by Keras's name stems (`simple_rnn`, `lstm`, `gru`).
extension RecurrentCellKind: ExpressibleByArgument {}

/// `--bidirectional` parses straight into RNNKit's merge mode, by Keras's spellings (`concat`, `sum`, `mul`, `ave`).
extension MergeMode: ExpressibleByArgument {}

extension RecurrentCellKind {
    /// A layer of this kind; `activation` applies to SimpleRNN only (LSTM and GRU keep Keras's tanh).
    func layer(
        units: Int, returnSequences: Bool, activation: Activation, goBackwards: Bool = false,
        dropout: Double = 0, recurrentDropout: Double = 0, seed: UInt64 = 0
    ) -> RecurrentLayer<Float> {
        switch self {
        case .simpleRNN:
            SimpleRNN<Float>(
                units: units, returnSequences: returnSequences, activation: activation, goBackwards: goBackwards,
                dropout: dropout, recurrentDropout: recurrentDropout, seed: seed)
        case .lstm:
            LSTM<Float>(
                units: units, returnSequences: returnSequences, goBackwards: goBackwards, dropout: dropout,
                recurrentDropout: recurrentDropout, seed: seed)
        case .gru:
            GRU<Float>(
                units: units, returnSequences: returnSequences, goBackwards: goBackwards, dropout: dropout,
                recurrentDropout: recurrentDropout, seed: seed)
        }
    }
}

/// `--optimizer`, with each optimiser's Keras default learning rate.
package enum OptimizerOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case adam, sgd, rmsprop

    package var defaultLearningRate: Double { self == .sgd ? 0.01 : 0.001 }

    func make(learningRate: Double, clipping: GradientClipping = .none) -> any StatefulOptimizer<Float> {
        switch self {
        case .adam: Adam<Float>(learningRate: learningRate, clipping: clipping)
        case .sgd: SGD<Float>(learningRate: learningRate, clipping: clipping)
        case .rmsprop: RMSprop<Float>(learningRate: learningRate, clipping: clipping)
        }
    }
}

/// `--backend`.
package enum BackendOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case blas, naive
    func backend(kernels: KernelsOption) -> any Backend {
        self == .blas ? BLASBackend(kernels: kernels == .auto ? .auto : .blas) : NaiveBackend()
    }
}

/// `--kernels auto|blas`: `BLASBackend.Kernels`.
package enum KernelsOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case auto, blas
}

/// `--units 16,8,4`: positive sizes, comma-separated.
package struct UnitList: ExpressibleByArgument, Equatable, Sendable, CustomStringConvertible {
    package let sizes: [Int]

    /// Parses the flag's value, saying what it accepts when it cannot.
    package static func parse(_ argument: String) throws -> UnitList {
        guard let list = UnitList(argument: argument) else {
            throw ValidationError("takes layer sizes as positive whole numbers separated by commas, e.g. 16,8,4")
        }
        return list
    }

    package init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        let sizes = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, sizes.count == parts.count, sizes.allSatisfy({ $0 > 0 }) else { return nil }
        self.sizes = sizes
    }

    package var description: String { sizes.map(String.init).joined(separator: ",") }
    package var defaultValueDescription: String { description }
}

/// `--lr-schedule`.
package enum ScheduleOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case constant, cosine
    var schedule: LearningRateSchedule { self == .constant ? .constant : .cosineDecay(steps: nil) }
}

/// What a training configuration needs in memory, computed from the flags with checked
/// arithmetic before anything is built, so that `--units 100000000` or `--batch-size 10000000`
/// get a message with the figure instead of a trap or an abort inside an allocation.
struct MemoryEstimate {
    /// Bytes, or nil when the count itself overflows.
    let bytes: Int?

    /// Float weights (value, gradient, two optimiser slots, and a gradient per extra worker) and
    /// per-worker activations: each recurrent layer's tape (G + 3 values per unit and step), its
    /// backward scratch (2·G per unit and step) and input gradient, the input batch.
    init(cell: RecurrentCellKind, units: [Int], steps: Int, features: Int, classes: Int, batchSize: Int, workers: Int) {
        self.init(
            gates: Array(repeating: cell.gateCount, count: units.count), units: units, steps: steps,
            features: features, classes: classes, batchSize: batchSize, workers: workers)
    }

    /// The same for recurrent layers of `gates[i]` gates and `units[i]` units in turn.
    init(gates layerGates: [Int], units: [Int], steps: Int, features: Int, classes: Int, batchSize: Int, workers: Int) {
        precondition(layerGates.count == units.count, "one gate count per layer")
        let perShard = (batchSize + workers - 1) / workers
        func multiply(_ values: Int...) -> Int? {
            var product = 1
            for value in values {
                let (next, overflow) = product.multipliedReportingOverflow(by: value)
                if overflow { return nil }
                product = next
            }
            return product
        }
        var total: Int? = 0
        func add(_ value: Int?) {
            guard let current = total, let value else { total = nil; return }
            let (sum, overflow) = current.addingReportingOverflow(value)
            total = overflow ? nil : sum
        }
        var inputs = features
        var weights: Int? = 0
        for (gates, h) in zip(layerGates, units) {
            let layerWeights = multiply(gates, h).flatMap { gh in
                multiply(gh, inputs).flatMap { a in multiply(gh, h).map { a + $0 + 2 * gh } }
            }
            if let w = weights, let l = layerWeights { weights = w + l } else { weights = nil }
            add(multiply(steps, perShard, h, gates + 3 + 2 * gates, workers)) // tape and scratch
            add(multiply(steps, perShard, inputs, workers)) // input gradient / input
            inputs = h
        }
        if let w = weights, let l = multiply(inputs + 1, classes) { weights = w + l } else { weights = nil }
        add(weights.flatMap { multiply($0, 4 + workers) })
        bytes = total.flatMap { multiply($0, MemoryLayout<Float>.size) }
    }

    static func describe(_ bytes: Int) -> String {
        bytes >= 1 << 30
            ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}

/// The file formats `--load` and `--save` take, by extension (ONNX only as `--save` and `rnnkit convert`'s output:
/// RNNKit writes it for inference runtimes and never reads it).
package enum WeightsFormat: Equatable, Sendable {
    /// Keras's model file: architecture, weights, optimiser state.
    case keras
    /// Keras's weights file (HDF5): weights and optimiser state.
    case kerasWeights
    /// safetensors: weights under RNNKit's names, the architecture in the metadata.
    case safetensors
    /// ONNX, for inference runtimes (RNNKitONNX): written, never read.
    case onnx

    /// The format `path`'s extension names; nil for any other.
    package init?(path: String) {
        let lower = path.lowercased()
        if lower.hasSuffix(".keras") {
            self = .keras
        } else if lower.hasSuffix(".weights.h5") || lower.hasSuffix(".h5") {
            self = .kerasWeights
        } else if lower.hasSuffix(".safetensors") {
            self = .safetensors
        } else if lower.hasSuffix(".onnx") {
            self = .onnx
        } else {
            return nil
        }
    }
}
