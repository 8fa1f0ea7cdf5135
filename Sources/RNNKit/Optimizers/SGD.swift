/// Stochastic gradient descent as Keras computes it (defaults lr 0.01, no momentum):
/// `w −= lr · g`, or with momentum `v = μv − lr · g; w += v` (Nesterov: `w += μv − lr · g`).
public final class SGD<Scalar: BLASScalar>: Optimizer {
    public var name: String { "sgd" }
    public var learningRate: Double
    public let momentum: Double
    public let nesterov: Bool
    public private(set) var iterations = 0
    private let state = OptimizerSlots<Scalar>(slotsPerParameter: 1)

    public init(learningRate: Double = 0.01, momentum: Double = 0, nesterov: Bool = false) {
        precondition(learningRate > 0 && (0..<1).contains(momentum), "SGD needs lr > 0 and momentum in [0, 1)")
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
    }

    public func apply(to parameters: [Parameter<Scalar>]) {
        iterations += 1
        for parameter in parameters {
            Scalar.sgdStep(
                weights: parameter.value.pointer, gradients: parameter.gradient.pointer,
                velocity: momentum > 0 ? state.slots(for: parameter)[0].pointer : nil,
                count: parameter.count, learningRate: Scalar(learningRate), momentum: Scalar(momentum), nesterov: nesterov)
        }
    }
}
