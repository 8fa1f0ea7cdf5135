/// RMSprop as Keras 3 computes it (defaults lr 0.001, ρ 0.9, ε 1e-7, no momentum, not centred):
/// `s = ρs + (1 − ρ)g²; w −= lr · g / √(s + ε)`.
public final class RMSprop<Scalar: BLASScalar>: StatefulOptimizer {
    public var name: String { "rmsprop" }
    public var learningRate: Double
    /// ρ and ε of the update above (Keras's `rho`, `epsilon`).
    public let rho: Double, epsilon: Double
    public private(set) var iterations = 0
    /// Gradient clipping before each update (Keras's `clipnorm`, `clipvalue`, `global_clipnorm`).
    public var clipping: GradientClipping
    public func restoreIterations(_ iterations: Int) { self.iterations = iterations }
    /// Slot 0: the running mean squares.
    public let state = OptimizerState<Scalar>(slotCount: 1)

    /// Keras's `RMSprop`, with Keras's defaults.
    ///
    /// - Parameters:
    ///   - learningRate: the step size (Keras's `learning_rate`).
    ///   - rho: the decay of the running mean of squared gradients.
    ///   - epsilon: added to the root of the mean square, for stability.
    ///   - clipping: how the gradients are limited before each update (Keras's `clipnorm`,
    ///     `clipvalue` or `global_clipnorm`).
    public init(
        learningRate: Double = 0.001, rho: Double = 0.9, epsilon: Double = 1e-7,
        clipping: GradientClipping = .none
    ) {
        self.clipping = clipping
        precondition(learningRate > 0 && (0..<1).contains(rho) && epsilon >= 0, "RMSprop needs lr > 0, ρ in [0, 1), ε ≥ 0")
        self.learningRate = learningRate
        self.rho = rho
        self.epsilon = epsilon
    }

    public func beginStep(_ arena: ParameterArena<Scalar>) {
        state.prepare(arena)
        iterations += 1
    }

    public func update(_ range: Range<Int>, of arena: ParameterArena<Scalar>) {
        let start = range.lowerBound
        Scalar.rmspropStep(
            weights: arena.values.pointer + start, gradients: arena.gradients.pointer + start,
            meanSquare: state.slots[0].pointer + start, count: range.count,
            learningRate: Scalar(learningRate), rho: Scalar(rho), oneMinusRho: Scalar(1 - rho), epsilon: Scalar(epsilon))
    }
}
