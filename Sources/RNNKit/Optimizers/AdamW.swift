/// AdamW, as Keras 3 computes it: Adam with decoupled weight decay. Each step first shrinks
/// every weight, `w −= lr · wd · w` (`w − w · wd · lr`, in that order, as Keras writes it), then
/// applies `Adam`'s update from the same gradient. The decay reaches every weight, biases
/// included (Keras's default, with nothing excluded from weight decay).
public final class AdamW<Scalar: BLASScalar>: StatefulOptimizer {
    public var name: String { "adamw" }
    public var learningRate: Double {
        get { adam.learningRate }
        set { adam.learningRate = newValue }
    }
    /// The decay factor `wd` (Keras's `weight_decay`, default 0.004).
    public let weightDecay: Double
    /// β1, β2 and ε of Adam's update.
    public var beta1: Double { adam.beta1 }
    /// β2 of Adam's update.
    public var beta2: Double { adam.beta2 }
    /// ε of Adam's update.
    public var epsilon: Double { adam.epsilon }
    public var iterations: Int { adam.iterations }
    /// Gradient clipping before each update (Keras's `clipnorm`, `clipvalue`, `global_clipnorm`).
    public var clipping: GradientClipping {
        get { adam.clipping }
        set { adam.clipping = newValue }
    }
    public func restoreIterations(_ iterations: Int) { adam.restoreIterations(iterations) }
    /// Slot 0: the first moments m; slot 1: the second moments v (as `Adam`'s).
    public var state: OptimizerState<Scalar> { adam.state }
    private let adam: Adam<Scalar>
    private var decay: Scalar = 0

    /// Keras 3's `AdamW`, with Keras's defaults.
    ///
    /// - Parameters:
    ///   - learningRate: the step size (Keras's `learning_rate`), which also scales the decay.
    ///   - weightDecay: `wd` in `w −= lr · wd · w` (Keras's `weight_decay`), at least 0.
    ///   - beta1: the decay of the first moments' running mean.
    ///   - beta2: the decay of the second moments' running mean.
    ///   - epsilon: added to the root of the second moments, for stability.
    ///   - clipping: how the gradients are limited before each update.
    public init(
        learningRate: Double = 0.001, weightDecay: Double = 0.004, beta1: Double = 0.9, beta2: Double = 0.999,
        epsilon: Double = 1e-7, clipping: GradientClipping = .none
    ) {
        precondition(weightDecay >= 0 && weightDecay.isFinite, "AdamW needs a finite weight decay ≥ 0, not \(weightDecay)")
        self.weightDecay = weightDecay
        adam = Adam(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, clipping: clipping)
    }

    public func beginStep(_ arena: ParameterArena<Scalar>) {
        adam.beginStep(arena)
    }

    @_specialize(where Scalar == Float)
    public func update(_ range: Range<Int>, of arena: ParameterArena<Scalar>) {
        let weights = arena.values.pointer, wd = Scalar(weightDecay), lr = Scalar(learningRate)
        // Keras: `variable.assign(variable - variable * wd * lr)`, before the Adam update.
        for i in range { weights[i] = weights[i] - weights[i] * wd * lr }
        adam.update(range, of: arena)
    }

    /// The first and second moments of `parameter` (copies).
    public func moments(of parameter: Parameter<Scalar>) -> (m: [Scalar], v: [Scalar]) { adam.moments(of: parameter) }
}
