/// Keras's `Dense`: `y = f(x · V + c)`, applied to the last axis.
///
/// Weights: `kernel` `V [inputs, units]`, `bias` `c [units]`. Input `[B, inputs]`, or a sequence
/// `[T, B, inputs]`, which is treated as `T·B` rows (as Keras applies Dense to every step).
public final class Dense<Scalar: BLASScalar>: Layer {
    /// The output width (Keras's `units`).
    public let units: Int
    /// `f`, applied to `x · V + c`.
    public let activation: Activation
    /// How `kernel` is drawn when the layer is built.
    public let kernelInitializer: Initializer
    /// How `bias` is drawn when the layer is built.
    public let biasInitializer: Initializer
    /// Whether the layer has a `bias` weight (Keras's `use_bias`); without one, `y = f(x · V)`.
    public let useBias: Bool
    /// The penalty on `kernel` added to the training loss (Keras's `kernel_regularizer`).
    public let kernelRegularizer: Regularizer?
    /// The penalty on `bias` (Keras's `bias_regularizer`); ignored without `useBias`.
    public let biasRegularizer: Regularizer?

    public var typeName: String { "Dense" }
    public var nameStem: String { "dense" }
    public var name: String = "dense" { didSet { renameParameters() } }
    public private(set) var parameters: [Parameter<Scalar>] = [] {
        // Held apart as well (see RecurrentLayer.parameters).
        didSet {
            kernel = parameters.first
            bias = parameters.count > 1 ? parameters[1] : nil
        }
    }
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var inputs = 0, rowsPerSample = 1
    private var preActivation = Buffer<Scalar>(count: 0) // [rows, units]: x · V + c (the logits, for softmax)
    private var output = Buffer<Scalar>(count: 0) // [rows, units]: f(x · V + c)
    private var gradientScratch = Buffer<Scalar>(count: 0)
    // Without `useBias` the backend adds a bias of zeros (which changes no value) and writes a
    // bias gradient nobody reads: as the recurrent layers do, rather than a second Dense path.
    private var zeroBias = Buffer<Scalar>(count: 0)
    private var unusedBiasGradient = Buffer<Scalar>(count: 0)
    private var inputGradient: Buffer<Scalar>?
    private var lastInput: UnsafePointer<Scalar>?
    private var lastBatch = 0

    /// A layer of `units` outputs (at least one); by default linear, its kernel Glorot uniform and its bias zeros,
    /// as Keras's.
    ///
    /// - Parameters:
    ///   - units: the outputs per sample.
    ///   - activation: applied to `x · kernel + bias` (Keras's `activation`; `linear` by default).
    ///   - kernelInitializer: draws `kernel [inputs, units]` (Glorot uniform by default).
    ///   - biasInitializer: draws `bias [units]` (zeros by default).
    ///   - useBias: give the layer a `bias` weight (Keras's `use_bias`, default true).
    ///   - kernelRegularizer: the penalty on `kernel` added to the loss (Keras's `kernel_regularizer`).
    ///   - biasRegularizer: the penalty on `bias` (Keras's `bias_regularizer`).
    public init(
        units: Int, activation: Activation = .linear,
        kernelInitializer: Initializer = .glorotUniform, biasInitializer: Initializer = .zeros,
        useBias: Bool = true, kernelRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil
    ) {
        precondition(units > 0, "Dense needs at least one unit, not \(units)")
        self.units = units
        self.activation = activation
        self.kernelInitializer = kernelInitializer
        self.biasInitializer = biasInitializer
        self.useBias = useBias
        self.kernelRegularizer = kernelRegularizer
        self.biasRegularizer = biasRegularizer
        if !useBias {
            zeroBias = Buffer(count: units)
            unusedBiasGradient = Buffer(count: units)
        }
    }

    private var kernel: Parameter<Scalar>!
    private var bias: Parameter<Scalar>?

    private func renameParameters() {
        for (parameter, leaf) in zip(parameters, ["kernel", "bias"]) { parameter.name = "\(name)/\(leaf)" }
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard !useBias || biasInitializer.accepts(shape: [units]) else {
            throw ModelError.invalidConfiguration("\(name)'s bias initializer \(biasInitializer) needs a matrix; the bias is a vector")
        }
        inputs = inputShape.features
        switch inputShape {
        case .vector:
            rowsPerSample = 1
            outputShape = .vector(features: units)
        case .sequence(let steps, _):
            rowsPerSample = steps
            outputShape = .sequence(steps: steps, features: units)
        }
        parameters = [Parameter(name: "kernel", shape: [inputs, units])] + (useBias ? [Parameter(name: "bias", shape: [units])] : [])
        renameParameters()
        kernel.regularizer = kernelRegularizer
        bias?.regularizer = biasRegularizer
        kernelInitializer.fill(kernel.value, shape: kernel.shape, generator: &generator)
        if let bias { biasInitializer.fill(bias.value, shape: bias.shape, generator: &generator) }
        return outputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = Dense(
            units: units, activation: activation, kernelInitializer: kernelInitializer, biasInitializer: biasInitializer,
            useBias: useBias, kernelRegularizer: kernelRegularizer, biasRegularizer: biasRegularizer)
        copy.inputs = inputs
        copy.rowsPerSample = rowsPerSample
        copy.outputShape = outputShape
        copy.parameters = parameters.map { Parameter(sharingValuesOf: $0) }
        copy.name = name
        return copy
    }

    /// A replica for pieces of `steps` steps (a `StreamingSession`'s), when the layer reads sequences.
    func streamingCopy(steps: Int) -> Dense<Scalar> {
        let copy = replica() as! Dense<Scalar>
        if case .sequence = outputShape {
            copy.rowsPerSample = steps
            copy.outputShape = .sequence(steps: steps, features: units)
        }
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        precondition(!parameters.isEmpty, "build \(name) before reserving buffers")
        let count = rowsPerSample * batchCapacity * units
        if output.count < count {
            output = Buffer(count: count)
            preActivation = Buffer(count: count)
            gradientScratch = Buffer(count: count)
        }
        if needsInputGradient, (inputGradient?.count ?? 0) < rowsPerSample * batchCapacity * inputs {
            inputGradient = Buffer(count: rowsPerSample * batchCapacity * inputs)
        } else if !needsInputGradient {
            inputGradient = nil
        }
    }

    @_specialize(where Scalar == Float)
    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let rows = rowsPerSample * batchSize
        precondition(rows * units <= output.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        backend.denseForward(
            rows: rows, inputs: inputs, units: units, activation: activation, x: input,
            kernel: kernel.value.pointer, bias: bias?.value.pointer ?? zeroBias.pointer,
            preActivation: preActivation.pointer, output: output.pointer)
        lastInput = input
        lastBatch = batchSize
        return UnsafePointer(output.pointer)
    }

    /// The pre-activation values `x · V + c` of the last forward pass (the logits, for softmax).
    public var lastPreActivation: UnsafePointer<Scalar> { UnsafePointer(preActivation.pointer) }

    @discardableResult
    @_specialize(where Scalar == Float)
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        let rows = rowsPerSample * batchSize
        gradientScratch.pointer.update(from: outputGradient, count: rows * units)
        if activation == .softmax {
            Scalar.softmaxBackward(outputs: output.pointer, gradient: gradientScratch.pointer, rows: rows, columns: units)
        } else {
            Scalar.multiplyByActivationDerivative(
                activation, outputs: output.pointer, gradient: gradientScratch.pointer, count: rows * units)
        }
        return backward(preActivationGradient: gradientScratch.pointer, batchSize: batchSize, backend: backend)
    }

    /// The backward pass from d loss / d (x · V + c) directly: how softmax with cross-entropy
    /// is differentiated, as `(p − y) / B`, without the Jacobian's cancellation.
    @discardableResult
    @_specialize(where Scalar == Float)
    public func backward(preActivationGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let input = lastInput, batchSize == lastBatch else {
            preconditionFailure("\(name).backward must follow a forward pass over the same batch")
        }
        backend.denseBackward(
            rows: rowsPerSample * batchSize, inputs: inputs, units: units, x: input, kernel: kernel.value.pointer,
            preActivationGradient: preActivationGradient, kernelGradient: kernel.gradient.pointer,
            biasGradient: bias?.gradient.pointer ?? unusedBiasGradient.pointer, inputGradient: inputGradient?.pointer)
        return inputGradient.map { UnsafePointer($0.pointer) }
    }
}
