/// Which of the three recurrent layers a layer is (`SimpleRNN`, `LSTM`, `GRU`), as files and
/// command lines name it. The raw value is Keras's name stem (`simple_rnn`, `lstm`, `gru`: the
/// trainer's `--cell`, and the `cell` setting its checkpoints record); `kerasClassName` is the
/// class name config.json holds.
///
/// This names a layer for users and files; the engine's `RecurrentCell` (in Backends/) says how a
/// cell computes (its activation, GRU's `resetAfter`) and is not for choosing a layer.
public enum RecurrentCellKind: String, Sendable, CaseIterable {
    /// `SimpleRNN` (`simple_rnn`), `LSTM` (`lstm`) and `GRU` (`gru`).
    case simpleRNN = "simple_rnn", lstm, gru

    /// Keras's class name: `SimpleRNN`, `LSTM`, `GRU` (the layers' `typeName`).
    public var kerasClassName: String {
        switch self {
        case .simpleRNN: "SimpleRNN"
        case .lstm: "LSTM"
        case .gru: "GRU"
        }
    }

    /// The kind whose Keras class name is `kerasClassName`; nil for any other name.
    public init?(kerasClassName: String) {
        guard let kind = Self.allCases.first(where: { $0.kerasClassName == kerasClassName }) else { return nil }
        self = kind
    }

    /// The gates side by side in the kernels: 1 for SimpleRNN, 4 for LSTM, 3 for GRU (a kernel is
    /// `[inputs, gateCount · units]`).
    public var gateCount: Int {
        switch self {
        case .simpleRNN: 1
        case .lstm: 4
        case .gru: 3
        }
    }
}
