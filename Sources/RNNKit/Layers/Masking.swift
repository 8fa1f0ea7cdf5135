/// Keras's `Masking(mask_value)`: a step of a sequence whose features all equal `maskValue` is
/// masked. Its output is the input with masked steps zeroed, and it hands the mask `[T, B]` to the
/// recurrent layers after it, which carry their state over masked steps (and, returning sequences,
/// repeat the previous output there, or output zeros inside `Bidirectional`). The mask travels
/// through layers that keep the steps (recurrent layers returning sequences, Dense, Dropout) and
/// ends at the first recurrent layer that returns its last state only; when it reaches a sequence
/// output, the loss and its accuracy count only the steps it keeps (as Keras's).
public final class Masking<Scalar: BLASScalar>: Layer {
    /// The value every feature of a step must equal for the step to be masked.
    public let maskValue: Double
    public var typeName: String { "Masking" }
    public var nameStem: String { "masking" }
    public var name: String = "masking"
    public var parameters: [Parameter<Scalar>] { [] }
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var steps = 0, features = 0
    private var mask = Buffer<UInt8>(count: 0) // [T, B]: 1 keep, 0 masked
    private var output = Buffer<Scalar>(count: 0)
    private var inputGradient: Buffer<Scalar>?
    private var lastBatch = 0

    /// A masking layer for steps whose features all equal `maskValue` (0 by default, as Keras's).
    public init(maskValue: Double = 0) {
        self.maskValue = maskValue
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence(let steps, let features) = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence (None, steps, features)", got: inputShape)
        }
        self.steps = steps
        self.features = features
        outputShape = inputShape
        return inputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = Masking(maskValue: maskValue)
        copy.steps = steps
        copy.features = features
        copy.outputShape = outputShape
        copy.name = name
        return copy
    }

    /// A replica for pieces of `steps` steps (a `StreamingSession`'s).
    func streamingCopy(steps: Int) -> Masking<Scalar> {
        let copy = replica() as! Masking<Scalar>
        copy.steps = steps
        copy.outputShape = .sequence(steps: steps, features: features)
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        let rows = steps * batchCapacity
        if mask.count < rows {
            mask = Buffer(count: rows)
            output = Buffer(count: rows * features)
        }
        if needsInputGradient, (inputGradient?.count ?? 0) < rows * features {
            inputGradient = Buffer(count: rows * features)
        } else if !needsInputGradient {
            inputGradient = nil
        }
    }

    /// The mask of the last forward pass, `[T, B]` time-major: 1 where a step counts, 0 where masked.
    public var lastMask: UnsafePointer<UInt8> { UnsafePointer(mask.pointer) }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let rows = steps * batchSize
        precondition(rows <= mask.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        Scalar.maskSteps(input, rows: rows, features: features, maskValue: Scalar(maskValue), mask: mask.pointer, output: output.pointer)
        lastBatch = batchSize
        return UnsafePointer(output.pointer)
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let inputGradient else { return nil }
        for row in 0..<(steps * batchSize) {
            let d = inputGradient.pointer + row * features
            if mask.pointer[row] == 1 {
                d.update(from: outputGradient + row * features, count: features)
            } else {
                d.update(repeating: 0, count: features)
            }
        }
        return UnsafePointer(inputGradient.pointer)
    }
}

/// How a layer takes part in masking, worked out once per model so that no pass casts types.
enum MaskRole<Scalar: BLASScalar> {
    /// Starts a mask (a `Masking` layer, or an `Embedding` with `maskZero`): reads the mask of
    /// the layer's last forward pass.
    case source(() -> UnsafePointer<UInt8>)
    /// Reads the mask: a recurrent layer (also inside `Bidirectional`).
    case reader((UnsafePointer<UInt8>?) -> Void, endsMask: Bool)
    /// Keeps the steps and passes the mask on (Dense on sequences, Dropout), or ends it (a layer
    /// that outputs vectors).
    case other(endsMask: Bool)

    init(_ layer: any Layer<Scalar>) {
        let vectorOutput = { if case .vector = layer.outputShape { return true } else { return false } }()
        switch layer {
        case let masking as Masking<Scalar>: self = .source({ [unowned masking] in masking.lastMask })
        case let embedding as Embedding<Scalar> where embedding.maskZero:
            self = .source({ [unowned embedding] in embedding.lastMask })
        case let recurrent as RecurrentLayer<Scalar>:
            self = .reader({ [unowned recurrent] in recurrent.setMask($0) }, endsMask: vectorOutput)
        case let bidirectional as Bidirectional<Scalar>:
            self = .reader({ [unowned bidirectional] in bidirectional.setMask($0) }, endsMask: vectorOutput)
        default: self = .other(endsMask: vectorOutput)
        }
    }

    /// Runs `layers` forward in turn over `batchSize` samples, handing the mask a `Masking` layer
    /// computes (or `initialMask`, from per-sample lengths) to the recurrent layers after it, as a
    /// model does. `roles` are the layers' (`layers.map(MaskRole.init)`, made once). Returns the
    /// last layer's output and the mask that reaches it (`[T, B]`, nil when none does), which
    /// stays valid until the next pass.
    @discardableResult
    static func forward(
        _ layers: [any Layer<Scalar>], roles: [MaskRole<Scalar>], input: UnsafePointer<Scalar>,
        initialMask: UnsafePointer<UInt8>? = nil, batchSize: Int,
        backend: any Backend
    ) -> (output: UnsafePointer<Scalar>, mask: UnsafePointer<UInt8>?) {
        var activations = input, mask = initialMask
        for (layer, role) in zip(layers, roles) {
            if case .reader(let setMask, _) = role { setMask(mask) }
            activations = layer.forward(activations, batchSize: batchSize, backend: backend)
            switch role {
            case .source(let lastMask): mask = lastMask()
            case .reader(_, let ends), .other(let ends): if ends { mask = nil }
            }
        }
        return (activations, mask)
    }

    /// Whether a mask started by a `Masking` layer (or an `Embedding` with `maskZero`) in `layers` (or, `fromInput`, by per-sample
    /// lengths before the first layer) reaches the model's output.
    static func maskReachesOutput(_ layers: [any Layer<Scalar>], fromInput: Bool = false) -> Bool {
        var live = fromInput
        for layer in layers {
            switch MaskRole(layer) {
            case .source: live = true
            case .reader(_, let ends), .other(let ends): if ends { live = false }
            }
        }
        return live
    }
}
