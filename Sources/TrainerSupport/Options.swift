import ArgumentParser
import RNNKit

/// `--activation`.
public enum ActivationOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case tanh, relu
    var activation: Activation { self == .tanh ? .tanh : .relu }
}

/// `--cell`: the recurrent layer, with Keras's names.
public enum CellOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case simpleRNN = "simple_rnn", lstm, gru

    /// A layer of this kind; `activation` applies to SimpleRNN only (LSTM and GRU keep Keras's tanh).
    func layer(units: Int, returnSequences: Bool, activation: Activation) -> any Layer<Float> {
        switch self {
        case .simpleRNN: SimpleRNN<Float>(units: units, returnSequences: returnSequences, activation: activation)
        case .lstm: LSTM<Float>(units: units, returnSequences: returnSequences)
        case .gru: GRU<Float>(units: units, returnSequences: returnSequences)
        }
    }
}

/// `--optimizer`, with each optimiser's Keras default learning rate.
public enum OptimizerOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case adam, sgd, rmsprop

    public var defaultLearningRate: Double { self == .sgd ? 0.01 : 0.001 }

    func make(learningRate: Double) -> any Optimizer<Float> {
        switch self {
        case .adam: Adam<Float>(learningRate: learningRate)
        case .sgd: SGD<Float>(learningRate: learningRate)
        case .rmsprop: RMSprop<Float>(learningRate: learningRate)
        }
    }
}

/// `--backend`.
public enum BackendOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case blas, naive
    var backend: any Backend { self == .blas ? BLASBackend() : NaiveBackend() }
}

/// `--units 16,8,4`: positive sizes, comma-separated.
public struct UnitList: ExpressibleByArgument, Equatable, Sendable, CustomStringConvertible {
    public let sizes: [Int]

    /// Parses the flag's value, saying what it accepts when it cannot.
    public static func parse(_ argument: String) throws -> UnitList {
        guard let list = UnitList(argument: argument) else {
            throw ValidationError("takes layer sizes as positive whole numbers separated by commas, e.g. 16,8,4")
        }
        return list
    }

    public init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        let sizes = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, sizes.count == parts.count, sizes.allSatisfy({ $0 > 0 }) else { return nil }
        self.sizes = sizes
    }

    public var description: String { sizes.map(String.init).joined(separator: ",") }
    public var defaultValueDescription: String { description }
}

/// `--lr-schedule`.
public enum ScheduleOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case constant, cosine
    var schedule: LearningRateSchedule { self == .constant ? .constant : .cosineDecay(steps: nil) }
}
