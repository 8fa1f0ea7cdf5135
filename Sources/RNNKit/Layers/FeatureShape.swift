/// The shape of one sample as it flows between layers (the batch axis is implicit).
public enum FeatureShape: Equatable, Sendable, CustomStringConvertible {
    /// A sequence of `steps` vectors of `features` each; batches of these are laid out
    /// time-major, `[steps, batch, features]`.
    case sequence(steps: Int, features: Int)
    /// One vector of `features`; batches are `[batch, features]`.
    case vector(features: Int)

    /// The size of the last axis.
    public var features: Int {
        switch self {
        case .sequence(_, let features), .vector(let features): features
        }
    }

    /// Scalars per sample.
    public var scalarCount: Int {
        switch self {
        case .sequence(let steps, let features): steps * features
        case .vector(let features): features
        }
    }

    /// Keras's notation with the batch axis as `None`: `(None, 28, 10)`, `(None, 10)`.
    public var description: String {
        switch self {
        case .sequence(let steps, let features): "(None, \(steps), \(features))"
        case .vector(let features): "(None, \(features))"
        }
    }
}
