/// Stochastic gradient descent as Keras computes it (defaults lr 0.01, no momentum):
/// `w −= lr · g`, or with momentum `v = μv − lr · g; w += v` (Nesterov: `w += μv − lr · g`).
public final class SGD<Scalar: BLASScalar>: StatefulOptimizer {
    public var name: String { "sgd" }
    public var learningRate: Double
    /// μ, the fraction of the last update carried into the next, in [0, 1) (0: plain SGD).
    public let momentum: Double
    /// Whether the momentum is Nesterov's.
    public let nesterov: Bool
    public private(set) var iterations = 0
    /// Gradient clipping before each update (Keras's `clipnorm`, `clipvalue`, `global_clipnorm`).
    public var clipping: GradientClipping
    public func restoreIterations(_ iterations: Int) { self.iterations = iterations }
    /// Slot 0: the velocities (used only with momentum).
    public let state = OptimizerState<Scalar>(slotCount: 1)

    /// Keras's `SGD`, with Keras's defaults.
    ///
    /// - Parameters:
    ///   - learningRate: the step size (Keras's `learning_rate`).
    ///   - momentum: the fraction of the last update carried into the next (0: plain SGD).
    ///   - nesterov: apply Nesterov momentum.
    ///   - clipping: how the gradients are limited before each update (Keras's `clipnorm`,
    ///     `clipvalue` or `global_clipnorm`).
    public init(
        learningRate: Double = 0.01, momentum: Double = 0, nesterov: Bool = false,
        clipping: GradientClipping = .none
    ) {
        self.clipping = clipping
        precondition(learningRate > 0 && (0..<1).contains(momentum), "SGD needs lr > 0 and momentum in [0, 1)")
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
    }

    public func beginStep(_ arena: ParameterArena<Scalar>) {
        state.prepare(arena)
        iterations += 1
    }

    public func update(_ range: Range<Int>, of arena: ParameterArena<Scalar>) {
        let start = range.lowerBound
        Scalar.sgdStep(
            weights: arena.values.pointer + start, gradients: arena.gradients.pointer + start,
            velocity: momentum > 0 ? state.slots[0].pointer + start : nil,
            count: range.count, learningRate: Scalar(learningRate), momentum: Scalar(momentum), nesterov: nesterov)
    }
}
