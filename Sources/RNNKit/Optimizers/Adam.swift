import RealModule

/// Adam, exactly as Keras computes it (defaults lr 0.001, β1 0.9, β2 0.999, ε 1e-7):
///
///     m += (g − m)(1 − β1);  v += (g² − v)(1 − β2)
///     α = lr · √(1 − β2^t) / (1 − β1^t);  w −= α · m / (√v + ε)      (t from 1)
public final class Adam<Scalar: BLASScalar>: StatefulOptimizer {
    public var name: String { "adam" }
    public var learningRate: Double
    /// β1, β2 and ε of the update above (Keras's `beta_1`, `beta_2`, `epsilon`).
    public let beta1: Double, beta2: Double, epsilon: Double
    public private(set) var iterations = 0
    /// Gradient clipping before each update (Keras's `clipnorm`, `clipvalue`, `global_clipnorm`).
    public var clipping: GradientClipping
    public func restoreIterations(_ iterations: Int) { self.iterations = iterations }
    /// Slot 0: the first moments m; slot 1: the second moments v.
    public let state = OptimizerState<Scalar>(slotCount: 2)
    private var stepSize: Scalar = 0

    /// Keras's `Adam`, with Keras's defaults.
    ///
    /// - Parameters:
    ///   - learningRate: the step size (Keras's `learning_rate`).
    ///   - beta1: the decay of the first moments' running mean.
    ///   - beta2: the decay of the second moments' running mean.
    ///   - epsilon: added to the root of the second moments, for stability.
    ///   - clipping: how the gradients are limited before each update (Keras's `clipnorm`,
    ///     `clipvalue` or `global_clipnorm`).
    public init(
        learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-7,
        clipping: GradientClipping = .none
    ) {
        self.clipping = clipping
        precondition(
            learningRate > 0 && (0..<1).contains(beta1) && (0..<1).contains(beta2) && epsilon >= 0,
            "Adam needs lr > 0, β1 and β2 in [0, 1) and ε ≥ 0")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    public func beginStep(_ arena: ParameterArena<Scalar>) {
        state.prepare(arena)
        iterations += 1
        let t = Double(iterations)
        stepSize = Scalar(learningRate * (1 - Double.pow(beta2, t)).squareRoot() / (1 - Double.pow(beta1, t)))
    }

    @_specialize(where Scalar == Float)
    public func update(_ range: Range<Int>, of arena: ParameterArena<Scalar>) {
        let (m, v) = (state.slots[0].pointer, state.slots[1].pointer)
        let start = range.lowerBound
        Scalar.adamStep(
            weights: arena.values.pointer + start, gradients: arena.gradients.pointer + start,
            m: m + start, v: v + start, count: range.count,
            oneMinusBeta1: Scalar(1 - beta1), oneMinusBeta2: Scalar(1 - beta2), epsilon: Scalar(epsilon), stepSize: stepSize)
    }

    /// The first and second moments of `parameter` (copies).
    public func moments(of parameter: Parameter<Scalar>) -> (m: [Scalar], v: [Scalar]) {
        (state.values(slot: 0, for: parameter), state.values(slot: 1, for: parameter))
    }
}
