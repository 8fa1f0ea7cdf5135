/// Updates a model's weights from their gradients. One optimiser serves one model: it keeps
/// per-weight state (moments, velocities) keyed by the parameter objects it is given.
public protocol Optimizer<Scalar>: AnyObject {
    associatedtype Scalar: BLASScalar
    /// The Keras name (`adam`, `sgd`, `rmsprop`).
    var name: String { get }
    /// The step size.
    var learningRate: Double { get set }
    /// How many updates have been applied.
    var iterations: Int { get }
    /// Applies one update to every parameter from its `gradient`.
    func apply(to parameters: [Parameter<Scalar>])
}

/// Per-parameter optimiser state: `slotsPerParameter` zero-initialised buffers shaped like
/// each parameter, created on first use.
final class OptimizerSlots<Scalar: BLASScalar> {
    private var slots: [ObjectIdentifier: [Buffer<Scalar>]] = [:]
    let slotsPerParameter: Int

    init(slotsPerParameter: Int) { self.slotsPerParameter = slotsPerParameter }

    func slots(for parameter: Parameter<Scalar>) -> [Buffer<Scalar>] {
        if let existing = slots[ObjectIdentifier(parameter)] { return existing }
        let created = (0..<slotsPerParameter).map { _ in Buffer<Scalar>(count: parameter.count) }
        slots[ObjectIdentifier(parameter)] = created
        return created
    }

    /// The state of `parameter` (a copy), for tests and inspection.
    func values(for parameter: Parameter<Scalar>) -> [[Scalar]] { slots(for: parameter).map(\.array) }
}
