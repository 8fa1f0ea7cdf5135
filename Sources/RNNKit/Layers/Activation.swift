/// An activation function, applied elementwise (or, for `softmax`, across each row), with
/// Keras's names and definitions.
public enum Activation: String, Sendable, CaseIterable, Codable {
    /// The identity, `x` (Keras's default for `Dense`).
    case linear
    /// `tanh(x)`, in `(−1, 1)`: the default activation of the recurrent layers.
    case tanh
    /// `max(x, 0)`.
    case relu
    /// `1 / (1 + e^−x)`, in `(0, 1)`: the default recurrent activation of LSTM and GRU.
    case sigmoid
    /// Keras 3's `hard_sigmoid`: `clip(x / 6 + 1/2, 0, 1)`. Older Keras files use it as the
    /// recurrent activation of LSTM and GRU.
    case hardSigmoid = "hard_sigmoid"
    /// `e^x / Σ e^x` across each row (the last axis), whose outputs sum to 1: not elementwise.
    case softmax

    /// Whether the derivative at a point can be computed from the activation's output there
    /// alone. All but softmax can, which is why the layers keep outputs and not pre-activations.
    public var isElementwise: Bool { self != .softmax }
}
