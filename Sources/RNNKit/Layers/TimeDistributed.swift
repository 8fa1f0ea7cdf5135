/// Keras's `TimeDistributed(Dense(…))`: the wrapped `Dense` applied to every step of a sequence,
/// `[T, B, inputs] → [T, B, units]`, as one GEMM over all `T·B` rows.
///
/// A `Dense` given a sequence computes the same; this wrapper exists so a model read from a Keras
/// file keeps Keras's structure and names (`time_distributed/kernel`) and is written back as it came.
public final class TimeDistributed<Scalar: BLASScalar>: Layer {
    /// The layer applied at every step.
    public let layer: Dense<Scalar>

    public var typeName: String { "TimeDistributed" }
    public var nameStem: String { "time_distributed" }
    public var name: String = "time_distributed" { didSet { layer.name = name } }
    public var parameters: [Parameter<Scalar>] { layer.parameters }
    public var outputShape: FeatureShape { layer.outputShape }

    /// Wraps `layer` (unbuilt), which takes the wrapper's name.
    public init(_ layer: Dense<Scalar>) {
        self.layer = layer
        layer.name = name
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence (None, steps, features)", got: inputShape)
        }
        let shape = try layer.build(inputShape: inputShape, generator: &generator)
        layer.name = name
        return shape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = TimeDistributed(layer.replica() as! Dense<Scalar>)
        copy.name = name
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        layer.reserve(batchCapacity: batchCapacity, needsInputGradient: needsInputGradient, backend: backend)
    }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        layer.forward(input, batchSize: batchSize, backend: backend)
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        layer.backward(outputGradient, batchSize: batchSize, backend: backend)
    }
}

/// The `Dense` a model ends with, bare or inside `TimeDistributed`: the loss fuses its softmax or
/// sigmoid with the cross-entropy.
func denseHead<Scalar>(_ layer: (any Layer<Scalar>)?) -> Dense<Scalar>? {
    (layer as? Dense<Scalar>) ?? (layer as? TimeDistributed<Scalar>)?.layer
}
