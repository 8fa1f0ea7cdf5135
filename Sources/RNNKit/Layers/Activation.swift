/// An activation function, applied elementwise (or, for `softmax`, across each row).
public enum Activation: String, Sendable, CaseIterable, Codable {
    case linear
    case tanh
    case relu
    case sigmoid
    case softmax

    /// Whether the derivative at a point can be computed from the activation's output there
    /// alone. All of ours can, which is why the layers keep outputs and not pre-activations.
    var isElementwise: Bool { self != .softmax }
}
