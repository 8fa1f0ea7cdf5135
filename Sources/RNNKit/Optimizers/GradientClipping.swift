/// How an optimiser limits the gradients before each update: Keras's `clipnorm`, `clipvalue` and
/// `global_clipnorm` optimiser arguments (of which Keras allows one at a time).
public enum GradientClipping: Equatable, Sendable {
    /// The gradients as they are.
    case none
    /// Each weight's gradient scaled down to at most this L2 norm: `g · c / max(‖g‖, c)` (Keras's `clipnorm`).
    case norm(Double)
    /// Every element clipped to `[−c, c]` (Keras's `clipvalue`).
    case value(Double)
    /// All gradients scaled together so their joint L2 norm is at most this:
    /// `g · c / max(‖all g‖, c)` (Keras's `global_clipnorm`).
    case globalNorm(Double)

    /// Applies the clipping to every gradient in `arena`, in place.
    public func apply<S: BLASScalar>(to arena: ParameterArena<S>) {
        let gradients = arena.gradients.pointer
        switch self {
        case .none:
            return
        case .norm(let limit):
            precondition(limit > 0, "clipnorm must be positive, not \(limit)")
            for (parameter, offset) in zip(arena.parameters, arena.offsets) {
                let norm = S.sumOfSquares(gradients + offset, count: parameter.count).squareRoot()
                if norm > limit { S.scale(gradients + offset, by: S(limit / norm), count: parameter.count) }
            }
        case .value(let limit):
            precondition(limit > 0, "clipvalue must be positive, not \(limit)")
            S.clamp(gradients, to: S(limit), count: arena.count)
        case .globalNorm(let limit):
            precondition(limit > 0, "global_clipnorm must be positive, not \(limit)")
            let norm = S.sumOfSquares(gradients, count: arena.count).squareRoot()
            if norm > limit { S.scale(gradients, by: S(limit / norm), count: arena.count) }
        }
    }
}
