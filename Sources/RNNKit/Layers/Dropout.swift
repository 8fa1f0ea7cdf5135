/// Inverted dropout masks, as Keras draws them: each element kept with probability `1 − rate`
/// and then scaled by `1 / (1 − rate)`, so that inference needs no rescaling.
///
/// A step's mask is a function of the layer's seed and the training step (the updates applied
/// before it), so a run is reproducible for a given configuration and a resumed run draws what an
/// uninterrupted one would; each replica of a layer (one per worker) has a seed of its own.
struct DropoutMask<Scalar: BLASScalar> {
    let rate: Double
    let seed: UInt64
    private(set) var values = Buffer<Scalar>(count: 0)
    /// How many replicas have been made from this mask, to seed each differently.
    private var replicas: UInt64 = 0

    init(rate: Double, seed: UInt64) {
        precondition((0..<1).contains(rate), "a dropout rate must be in [0, 1), not \(rate)")
        self.rate = rate
        self.seed = seed
    }

    /// The mask of a replica: the same rate, its own stream.
    mutating func replica() -> DropoutMask {
        replicas += 1
        return DropoutMask(rate: rate, seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* replicas)
    }

    mutating func reserve(_ count: Int) {
        if values.count < count { values = Buffer(count: count) }
    }

    /// Draws step `step`'s `count` mask values: 0 with probability `rate`, else `1 / (1 − rate)`.
    func draw(_ count: Int, step: Int) {
        precondition(count <= values.count, "dropout mask of \(count) exceeds the reserved \(values.count)")
        var generator = RandomGenerator(seed: seed ^ (UInt64(truncatingIfNeeded: step) &* 0xD1B5_4A32_D192_ED03))
        Scalar.drawDropoutMask(values.pointer, count: count, rate: rate, generator: &generator)
    }
}

/// Keras's `Dropout(rate)`: while training, each input element is zeroed with probability `rate`
/// and the others scaled by `1 / (1 − rate)`; at inference the input passes unchanged.
/// Any shape; the output has the input's.
public final class Dropout<Scalar: BLASScalar>: Layer {
    /// The fraction of inputs dropped while training, in [0, 1).
    public let rate: Double
    /// The seed the masks' stream started from.
    public var seed: UInt64 { mask.seed }
    public var typeName: String { "Dropout" }
    public var nameStem: String { "dropout" }
    public var name: String = "dropout"
    public var parameters: [Parameter<Scalar>] { [] }
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    var mask: DropoutMask<Scalar>
    private var training = false, step = 0
    private var dropping = false
    private var output = Buffer<Scalar>(count: 0)
    private var inputGradient: Buffer<Scalar>?

    /// A dropout layer; a rate outside [0, 1) is a precondition failure.
    ///
    /// - Parameters:
    ///   - rate: the fraction of inputs dropped while training, in [0, 1).
    ///   - seed: the masks' stream, for reproducible runs.
    public init(rate: Double, seed: UInt64 = 0) {
        precondition((0..<1).contains(rate), "Dropout's rate must be in [0, 1), not \(rate)")
        self.rate = rate
        mask = DropoutMask(rate: rate, seed: seed)
    }

    public func setTraining(_ training: Bool, step: Int) {
        self.training = training
        self.step = step
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        outputShape = inputShape
        return inputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = Dropout(rate: rate)
        copy.mask = mask.replica()
        copy.outputShape = outputShape
        copy.name = name
        return copy
    }

    /// A replica for pieces of `steps` steps (a `StreamingSession`'s, which never trains).
    func streamingCopy(steps: Int) -> Dropout<Scalar> {
        let saved = mask // as RecurrentLayer's: the model's replica count stays as it was
        let copy = replica() as! Dropout<Scalar>
        mask = saved
        if case .sequence(_, let features) = outputShape { copy.outputShape = .sequence(steps: steps, features: features) }
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        let count = outputShape.scalarCount * batchCapacity
        if output.count < count { output = Buffer(count: count) }
        mask.reserve(count)
        if needsInputGradient, (inputGradient?.count ?? 0) < count {
            inputGradient = Buffer(count: count)
        } else if !needsInputGradient {
            inputGradient = nil
        }
    }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let count = outputShape.scalarCount * batchSize
        precondition(count <= output.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        dropping = training && rate > 0
        if dropping {
            mask.draw(count, step: step)
            Scalar.combine(input, mask.values.pointer, into: output.pointer, count: count, multiply: true, scale: 1)
        } else {
            output.pointer.update(from: input, count: count)
        }
        return UnsafePointer(output.pointer)
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let inputGradient else { return nil }
        let count = outputShape.scalarCount * batchSize
        if dropping {
            Scalar.combine(outputGradient, mask.values.pointer, into: inputGradient.pointer, count: count, multiply: true, scale: 1)
        } else {
            inputGradient.pointer.update(from: outputGradient, count: count)
        }
        return UnsafePointer(inputGradient.pointer)
    }
}
