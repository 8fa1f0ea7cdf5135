/// Keras's `SimpleRNN`: `h_t = f(x_t · W + h_{t−1} · U + b)` with `h_0 = 0`.
///
/// Weights in Keras's layout: `kernel` `W [inputs, units]`, `recurrent_kernel` `U [units, units]`,
/// `bias` `b [units]` (one bias, as Keras). Input: a sequence `[T, B, D]` (time-major). Output:
/// every state `[T, B, units]` with `returnSequences`, otherwise the last state `[B, units]`.
public final class SimpleRNN<Scalar: BLASScalar>: Layer {
    public let units: Int
    public let returnSequences: Bool
    public let activation: Activation
    public let kernelInitializer: Initializer
    public let recurrentInitializer: Initializer
    public let biasInitializer: Initializer

    public var typeName: String { "SimpleRNN" }
    public var nameStem: String { "simple_rnn" }
    public var name: String = "simple_rnn" { didSet { renameParameters() } }
    public private(set) var parameters: [Parameter<Scalar>] = []
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var steps = 0, inputs = 0
    private var states = Buffer<Scalar>(count: 0)         // [T, B, H]
    private var workspace = Buffer<Scalar>(count: 0)      // backend scratch
    private var inputGradient: Buffer<Scalar>?            // [T, B, D]
    private var lastInput: UnsafePointer<Scalar>?
    private var lastBatch = 0

    /// - Parameters:
    ///   - units: the size of the state, at least 1.
    ///   - returnSequences: output every step's state (for stacking) or only the last.
    ///   - activation: `tanh` (Keras's default) or another elementwise activation, e.g. `relu`.
    public init(
        units: Int, returnSequences: Bool = false, activation: Activation = .tanh,
        kernelInitializer: Initializer = .glorotUniform,
        recurrentInitializer: Initializer = .orthogonal(),
        biasInitializer: Initializer = .zeros
    ) {
        precondition(units > 0, "SimpleRNN needs at least one unit, not \(units)")
        precondition(activation.isElementwise, "SimpleRNN's activation must be elementwise, not softmax")
        self.units = units
        self.returnSequences = returnSequences
        self.activation = activation
        self.kernelInitializer = kernelInitializer
        self.recurrentInitializer = recurrentInitializer
        self.biasInitializer = biasInitializer
    }

    private var kernel: Parameter<Scalar> { parameters[0] }
    private var recurrentKernel: Parameter<Scalar> { parameters[1] }
    private var bias: Parameter<Scalar> { parameters[2] }

    private func renameParameters() {
        for (parameter, leaf) in zip(parameters, ["kernel", "recurrent_kernel", "bias"]) {
            parameter.name = "\(name)/\(leaf)"
        }
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence(let steps, let features) = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence (None, steps, features)", got: inputShape)
        }
        self.steps = steps
        self.inputs = features
        parameters = [
            Parameter(name: "kernel", shape: [features, units]),
            Parameter(name: "recurrent_kernel", shape: [units, units]),
            Parameter(name: "bias", shape: [units]),
        ]
        renameParameters()
        kernelInitializer.fill(kernel.value, shape: kernel.shape, generator: &generator)
        recurrentInitializer.fill(recurrentKernel.value, shape: recurrentKernel.shape, generator: &generator)
        biasInitializer.fill(bias.value, shape: bias.shape, generator: &generator)
        outputShape = returnSequences ? .sequence(steps: steps, features: units) : .vector(features: units)
        return outputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = SimpleRNN(units: units, returnSequences: returnSequences, activation: activation,
                             kernelInitializer: kernelInitializer, recurrentInitializer: recurrentInitializer,
                             biasInitializer: biasInitializer)
        copy.steps = steps
        copy.inputs = inputs
        copy.outputShape = outputShape
        copy.parameters = parameters.map { Parameter(sharingValuesOf: $0) }
        copy.name = name
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool) {
        precondition(!parameters.isEmpty, "build \(name) before reserving buffers")
        let dims = RNNDimensions(batch: batchCapacity, steps: steps, inputs: inputs, units: units)
        if states.count < steps * batchCapacity * units {
            states = Buffer(count: steps * batchCapacity * units)
        }
        let scratch = max(BLASBackend().simpleRNNWorkspaceCount(dims), NaiveBackend().simpleRNNWorkspaceCount(dims))
        if workspace.count < scratch { workspace = Buffer(count: scratch) }
        if needsInputGradient, (inputGradient?.count ?? 0) < steps * batchCapacity * inputs {
            inputGradient = Buffer(count: steps * batchCapacity * inputs)
        } else if !needsInputGradient {
            inputGradient = nil
        }
    }

    private func dimensions(_ batchSize: Int) -> RNNDimensions {
        precondition(batchSize * steps * units <= states.count,
                     "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        return RNNDimensions(batch: batchSize, steps: steps, inputs: inputs, units: units)
    }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let dims = dimensions(batchSize)
        backend.simpleRNNForward(
            dims, activation: activation, x: input, kernel: kernel.value.pointer,
            recurrentKernel: recurrentKernel.value.pointer, bias: bias.value.pointer, states: states.pointer)
        lastInput = input
        lastBatch = batchSize
        return UnsafePointer(returnSequences ? states.pointer : states.pointer + (steps - 1) * batchSize * units)
    }

    /// Every state of the last forward pass, batch-major as Keras returns sequences:
    /// `[batch, steps, units]` (a copy, for inspection and tests).
    public func lastStateSequence() -> Tensor<Scalar> {
        var result = Tensor<Scalar>(shape: [lastBatch, steps, units])
        for t in 0..<steps {
            for b in 0..<lastBatch {
                for j in 0..<units {
                    result.scalars[(b * steps + t) * units + j] = states.pointer[(t * lastBatch + b) * units + j]
                }
            }
        }
        return result
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let input = lastInput, batchSize == lastBatch else {
            preconditionFailure("\(name).backward must follow a forward pass over the same batch")
        }
        backend.simpleRNNBackward(
            dimensions(batchSize), activation: activation, x: input, states: states.pointer,
            kernel: kernel.value.pointer, recurrentKernel: recurrentKernel.value.pointer,
            stateGradient: outputGradient, sequenceGradient: returnSequences,
            kernelGradient: kernel.gradient.pointer, recurrentKernelGradient: recurrentKernel.gradient.pointer,
            biasGradient: bias.gradient.pointer, inputGradient: inputGradient?.pointer,
            workspace: workspace.pointer)
        return inputGradient.map { UnsafePointer($0.pointer) }
    }
}
