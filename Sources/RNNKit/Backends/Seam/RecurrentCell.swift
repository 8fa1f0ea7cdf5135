/// What a recurrent layer computes at each step, once its gates' pre-activations are known.
///
/// Every cell keeps its gates concatenated in Keras's order and layout, so one GEMM projects all
/// of a step's inputs for every gate and one `[B, H]·[H, G·H]` GEMM does the recurrence:
/// `kernel [D, G·H]`, `recurrent_kernel [H, G·H]`. Only the elementwise step after the GEMMs
/// differs from cell to cell (as in oneDNN's RNN primitive: one driver, a post-GEMM kernel per cell).
public enum RecurrentCell: Equatable, Sendable, CustomStringConvertible {
    /// Keras's `SimpleRNN`: `h_t = f(x_t·W + h_{t−1}·U + b)`. G = 1.
    case simple(activation: Activation)
    /// Keras's `LSTM`, gates i, f, c, o (G = 4), one bias `[4H]`, state (h, c):
    /// `c_t = σ(z_f) ⊙ c_{t−1} + σ(z_i) ⊙ f(z_c)`, `h_t = σ(z_o) ⊙ f(c_t)`.
    case lstm(activation: Activation, recurrentActivation: Activation)
    /// Keras's `GRU`, gates z, r, h (G = 3): `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`. With `resetAfter`
    /// (Keras's default) the bias is `[2, 3H]` (input row, recurrent row) and
    /// `h̃ = f(x·W_h + b_h + r ⊙ (h_{t−1}·U_h + b′_h))`; without, the bias is `[3H]` and
    /// `h̃ = f(x·W_h + (r ⊙ h_{t−1})·U_h + b_h)`.
    case gru(activation: Activation, recurrentActivation: Activation, resetAfter: Bool)

    /// Gates per unit (G): 1, 4 or 3.
    public var gates: Int {
        switch self {
        case .simple: 1
        case .lstm: 4
        case .gru: 3
        }
    }

    /// GRU with reset-after: a second bias row for the recurrent side.
    var hasRecurrentBias: Bool {
        if case .gru(_, _, true) = self { return true }
        return false
    }

    /// GRU with reset-before: the reset gate scales the state before the candidate's GEMM.
    var resetsBeforeProduct: Bool {
        if case .gru(_, _, false) = self { return true }
        return false
    }

    /// The shape of the bias in Keras's layout.
    public func biasShape(units: Int) -> [Int] {
        if case .gru(_, _, true) = self { return [2, 3 * units] }
        return [gates * units]
    }

    /// The activations, each of which must be elementwise.
    var activations: [Activation] {
        switch self {
        case .simple(let f): [f]
        case .lstm(let f, let sigma), .gru(let f, let sigma, _): [f, sigma]
        }
    }

    /// The cell and its settings in one line: `LSTM(tanh, sigmoid)`, `GRU(tanh, sigmoid, reset_after: true)`.
    public var description: String {
        switch self {
        case .simple(let f): "SimpleRNN(\(f.rawValue))"
        case .lstm(let f, let sigma): "LSTM(\(f.rawValue), \(sigma.rawValue))"
        case .gru(let f, let sigma, let after): "GRU(\(f.rawValue), \(sigma.rawValue), reset_after: \(after))"
        }
    }
}

/// The sizes of one recurrent pass over a batch.
public struct RNNDimensions: Equatable, Sendable {
    /// Sequences in the batch (`B`).
    public var batch: Int
    /// Time steps (`T`).
    public var steps: Int
    /// Input features per step (`D`).
    public var inputs: Int
    /// Units, the size of the state (`H`).
    public var units: Int

    /// The sizes of a pass; each must be positive (a precondition).
    public init(batch: Int, steps: Int, inputs: Int, units: Int) {
        precondition(
            batch > 0 && steps > 0 && inputs > 0 && units > 0,
            "RNN dimensions must be positive: B \(batch), T \(steps), D \(inputs), H \(units)")
        self.batch = batch
        self.steps = steps
        self.inputs = inputs
        self.units = units
    }
}

/// A recurrent layer's weights, in Keras's layout: `kernel [D, G·H]`, `recurrentKernel [H, G·H]`,
/// `bias` as `RecurrentCell.biasShape` says. Borrowed for one call.
public struct RecurrentWeights<S: BLASScalar> {
    /// `W [D, G·H]`, the input weights.
    public var kernel: UnsafePointer<S>
    /// `U [H, G·H]`, the recurrent weights.
    public var recurrentKernel: UnsafePointer<S>
    /// `b [G·H]`, or `[2, 3H]` for GRU with reset-after.
    public var bias: UnsafePointer<S>

    /// Borrows the three weights, which the caller keeps alive for the call.
    public init(kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>, bias: UnsafePointer<S>) {
        self.kernel = kernel
        self.recurrentKernel = recurrentKernel
        self.bias = bias
    }
}

/// Where a recurrent backward pass writes d loss / d each weight (same layouts as the weights;
/// written, not accumulated).
public struct RecurrentGradients<S: BLASScalar> {
    /// d loss / d `W`, `[D, G·H]`.
    public var kernel: UnsafeMutablePointer<S>
    /// d loss / d `U`, `[H, G·H]`.
    public var recurrentKernel: UnsafeMutablePointer<S>
    /// d loss / d `b`, laid out as the bias.
    public var bias: UnsafeMutablePointer<S>

    /// Borrows the three gradient buffers, which the caller keeps alive for the call.
    public init(kernel: UnsafeMutablePointer<S>, recurrentKernel: UnsafeMutablePointer<S>, bias: UnsafeMutablePointer<S>) {
        self.kernel = kernel
        self.recurrentKernel = recurrentKernel
        self.bias = bias
    }
}

/// What a forward pass keeps for the backward pass, laid out the same way by every backend, so
/// the layer can read its outputs from it and tests can compare backends on it. All regions are
/// time-major:
///
/// - `gates [T, B, G·H]`: each step's gate values after their activations (SimpleRNN: the states
///   themselves; LSTM: i, f, f(z_c), o; GRU: z, r, h̃).
/// - `states [T, B, H]`: `h_t` for t = 1…T (the same memory as `gates` for SimpleRNN).
/// - `cellStates [T, B, H]`: LSTM's `c_t`.
/// - `auxiliary [T, B, H]`: LSTM: `f(c_t)`; GRU with reset after: `h_{t−1}·U_h + b′_h`; GRU with
///   reset before: `r ⊙ h_{t−1}` (`r ⊙ h_{t−1} ⊙ m` under recurrent dropout).
/// - `recurrentDropout`, when set by the layer (training with Keras's `recurrent_dropout`): see
///   `RecurrentDropout`.
public struct RecurrentTape<S: BLASScalar> {
    /// `[T, B, G·H]`: each step's gate values after their activations.
    public let gates: UnsafeMutablePointer<S>
    /// `[T, B, H]`: `h_t` for t = 1…T.
    public let states: UnsafeMutablePointer<S>
    /// `[T, B, H]`: LSTM's `c_t`; nil for the other cells.
    public let cellStates: UnsafeMutablePointer<S>?
    /// `[T, B, H]`: what the cell's backward step needs besides the gates; nil for SimpleRNN.
    public let auxiliary: UnsafeMutablePointer<S>?
    /// The recurrent dropout of the pass; nil when none applies.
    public var recurrentDropout: RecurrentDropout<S>?

    /// Scalars the tape of `cell` needs for `dims`.
    public static func count(_ cell: RecurrentCell, _ dims: RNNDimensions) -> Int {
        let step = dims.steps * dims.batch * dims.units
        switch cell {
        case .simple: return step
        case .lstm: return step * (4 + 3)
        case .gru: return step * (3 + 2)
        }
    }

    /// The tape of `cell` for `dims` carved out of `memory`, which holds at least `count(cell, dims)`.
    public init(_ cell: RecurrentCell, _ dims: RNNDimensions, memory: UnsafeMutablePointer<S>) {
        let step = dims.steps * dims.batch * dims.units
        gates = memory
        switch cell {
        case .simple:
            states = memory
            cellStates = nil
            auxiliary = nil
        case .lstm:
            states = memory + 4 * step
            cellStates = memory + 5 * step
            auxiliary = memory + 6 * step
        case .gru:
            states = memory + 3 * step
            cellStates = nil
            auxiliary = memory + 4 * step
        }
    }
}

/// Keras's `recurrent_dropout` in the driver: every product with the recurrent kernel reads
/// `h_{t−1} ⊙ m` instead of `h_{t−1}`, with one mask `m [B, H]` per sequence for every step and
/// every gate (0, or `1 / (1 − rate)`). What does not pass through `U` (GRU's blend
/// `z ⊙ h_{t−1}`, a masked step's carried state) reads `h_{t−1}` itself.
public struct RecurrentDropout<S: BLASScalar> {
    /// `m [B, H]`.
    public var mask: UnsafePointer<S>
    /// `[T, B, H]`: receives `h_{t−1} ⊙ m` for every step in the forward pass; the backward pass
    /// reads it for `d loss / d U`.
    public var droppedStates: UnsafeMutablePointer<S>

    /// Borrows the mask and the buffer of dropped states, which the caller keeps alive for the pass.
    public init(mask: UnsafePointer<S>, droppedStates: UnsafeMutablePointer<S>) {
        self.mask = mask
        self.droppedStates = droppedStates
    }
}

/// A recurrent layer's state `[B, H]`: `h`, and LSTM's cell state `c` (nil for the other cells).
/// Borrowed for one call.
public struct RecurrentState<S: BLASScalar> {
    /// The state `h`, `[B, H]`.
    public var h: UnsafePointer<S>
    /// LSTM's cell state `c`, `[B, H]`; nil for the other cells.
    public var c: UnsafePointer<S>?

    /// Borrows `h` and, for LSTM, `c`.
    public init(h: UnsafePointer<S>, c: UnsafePointer<S>? = nil) {
        self.h = h
        self.c = c
    }
}

/// Where d loss / d a recurrent layer's initial state is written (`[B, H]` each; `c` for LSTM).
public struct RecurrentStateGradient<S: BLASScalar> {
    /// Receives d loss / d `h_0`, `[B, H]`.
    public var h: UnsafeMutablePointer<S>
    /// Receives d loss / d `c_0`, `[B, H]`, for LSTM; nil for the other cells.
    public var c: UnsafeMutablePointer<S>?

    /// Borrows the buffers for d `h_0` and, for LSTM, d `c_0`.
    public init(h: UnsafeMutablePointer<S>, c: UnsafeMutablePointer<S>? = nil) {
        self.h = h
        self.c = c
    }
}
