/// Keras's `Embedding(input_dim, output_dim, mask_zero)`: each step's integer id picks a row of
/// `embeddings [inputDim, outputDim]`.
///
/// The input is a sequence of one float feature per step holding the id (as
/// `RaggedDataset(tokens:)` stores tokens), laid out `[T, B, 1]`; the output is `[T, B, outputDim]`.
/// An id that is not a whole number in `0..<inputDim` is refused by the model's raw-batch entry
/// points with `ModelError.idOutOfRange` naming the id and its (sample, step) before any
/// kernel runs; should one still reach the layer, its step reads as a vector of zeros, never
/// outside the matrix.
///
/// With `maskZero`, steps whose id is 0 are masked as a `Masking` layer's are: the mask `[T, B]`
/// reaches the recurrent layers after it and, through layers that keep the steps, the loss.
///
/// The gradient is written densely: every step the layer zeroes `embeddings`' gradient and adds
/// each used step's output gradient into its id's row, so rows the batch did not use are zero.
/// An optimiser then updates the whole matrix, as Keras's optimisers do on the dense gradient
/// its Embedding produces (Adam decays every row's moments each step).
public final class Embedding<Scalar: BLASScalar>: Layer {
    /// The number of distinct ids (Keras's `input_dim`): ids are `0..<inputDim`.
    public let inputDim: Int
    /// The length of each id's vector (Keras's `output_dim`).
    public let outputDim: Int
    /// Whether id 0 is padding, masked for every later layer and the loss (Keras's `mask_zero`).
    public let maskZero: Bool
    /// How `embeddings` is drawn when the layer is built (Keras's `uniform(-0.05, 0.05)` by default).
    public let embeddingsInitializer: Initializer

    public var typeName: String { "Embedding" }
    public var nameStem: String { "embedding" }
    public var name: String = "embedding" { didSet { parameters.first?.name = "\(name)/embeddings" } }
    public private(set) var parameters: [Parameter<Scalar>] = []
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var steps = 0
    private var mask = Buffer<UInt8>(count: 0) // [T, B]: 1 keep, 0 masked
    private var rows = Buffer<Int>(count: 0) // [T, B]: the id's row, or -1 for an id outside the matrix
    private var output = Buffer<Scalar>(count: 0)
    private var lastBatch = 0

    /// An embedding of `inputDim` ids into vectors of `outputDim`.
    ///
    /// - Parameters:
    ///   - inputDim: the number of ids (Keras's `input_dim`, at least 1).
    ///   - outputDim: the width of each id's vector (Keras's `output_dim`, at least 1).
    ///   - maskZero: mask the steps whose id is 0 (Keras's `mask_zero`, default false).
    ///   - embeddingsInitializer: draws `embeddings [inputDim, outputDim]` (uniform in ±0.05 by default, as Keras's).
    public init(
        inputDim: Int, outputDim: Int, maskZero: Bool = false,
        embeddingsInitializer: Initializer = .uniform(lower: -0.05, upper: 0.05)
    ) {
        precondition(inputDim > 0 && outputDim > 0, "Embedding needs inputDim and outputDim ≥ 1, not \(inputDim), \(outputDim)")
        self.inputDim = inputDim
        self.outputDim = outputDim
        self.maskZero = maskZero
        self.embeddingsInitializer = embeddingsInitializer
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence(let steps, 1) = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence of one id per step (None, steps, 1)", got: inputShape)
        }
        self.steps = steps
        outputShape = .sequence(steps: steps, features: outputDim)
        let embeddings = Parameter<Scalar>(name: "\(name)/embeddings", shape: [inputDim, outputDim])
        embeddingsInitializer.fill(embeddings.value, shape: embeddings.shape, generator: &generator)
        parameters = [embeddings]
        return outputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = Embedding(
            inputDim: inputDim, outputDim: outputDim, maskZero: maskZero, embeddingsInitializer: embeddingsInitializer)
        copy.steps = steps
        copy.outputShape = outputShape
        copy.parameters = parameters.map { Parameter(sharingValuesOf: $0) }
        copy.name = name
        return copy
    }

    /// A replica for pieces of `steps` steps (a `StreamingSession`'s).
    func streamingCopy(steps: Int) -> Embedding<Scalar> {
        let copy = replica() as! Embedding<Scalar>
        copy.steps = steps
        copy.outputShape = .sequence(steps: steps, features: outputDim)
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        let count = steps * batchCapacity
        if mask.count < count {
            mask = Buffer(count: count)
            rows = Buffer(count: count)
            output = Buffer(count: count * outputDim)
        }
    }

    /// The mask of the last forward pass, `[T, B]` time-major: 0 where the id is 0 (with
    /// `maskZero`), 1 elsewhere.
    public var lastMask: UnsafePointer<UInt8> { UnsafePointer(mask.pointer) }

    /// The row of `embeddings` that `id` selects, or nil when `id` is not a whole number in `0..<inputDim`.
    func row(of id: Scalar) -> Int? {
        let value = Double(id)
        guard value >= 0, value < Double(inputDim), value.rounded(.towardZero) == value else { return nil }
        return Int(value)
    }

    /// Refuses an id in time-major `x [T, batchSize, 1]` that is not a whole number in `0..<inputDim`.
    /// - Throws: `ModelError.idOutOfRange` naming the id, its sample and its step.
    func checkIDs(_ x: UnsafePointer<Scalar>, batchSize: Int) throws {
        for t in 0..<steps {
            for b in 0..<batchSize where row(of: x[t * batchSize + b]) == nil {
                throw ModelError.idOutOfRange(layer: name, id: Double(x[t * batchSize + b]), sample: b, step: t, inputDim: inputDim)
            }
        }
    }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let count = steps * batchSize
        precondition(count <= mask.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        let table = UnsafePointer(parameters[0].value.pointer)
        for i in 0..<count {
            let destination = output.pointer + i * outputDim
            if let row = row(of: input[i]) {
                rows.pointer[i] = row
                destination.update(from: table + row * outputDim, count: outputDim)
                mask.pointer[i] = maskZero && row == 0 ? 0 : 1
            } else {
                rows.pointer[i] = -1
                destination.update(repeating: 0, count: outputDim)
                mask.pointer[i] = 1
            }
        }
        lastBatch = batchSize
        return UnsafePointer(output.pointer)
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        let gradient = parameters[0].gradient.pointer
        gradient.update(repeating: 0, count: inputDim * outputDim)
        for i in 0..<(steps * batchSize) where rows.pointer[i] >= 0 {
            let d = gradient + rows.pointer[i] * outputDim, g = outputGradient + i * outputDim
            for j in 0..<outputDim { d[j] += g[j] }
        }
        return nil
    }
}
