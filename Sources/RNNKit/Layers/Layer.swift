/// A layer of a `Sequential` model: it owns its weights, its gradients and the buffers of its
/// last forward pass. The built-in layers (`SimpleRNN`, `LSTM`, `GRU`, `Dense`) conform, and so
/// can a user's own (docs/GUIDE.md's "Data, your own layers and losses, threads" and `Tests/RNNKitPublicAPITests` show one).
///
/// **Parameters.** A layer declares its trainable weights by creating `Parameter`s in `build`
/// (named by the weight alone, `kernel`; the model prefixes the layer's name when it sets
/// `name`) and drawing their initial values into `parameter.value`. The model then moves them
/// into its `ParameterArena`, so a layer must read `parameter.value.pointer` and
/// `parameter.gradient.pointer` each time it runs rather than keep them. `backward` writes (not
/// adds) every parameter's gradient.
///
/// **Buffers and pointers.** `forward` reads `input` (laid out as the input shape says, for
/// `batchSize` samples; sequences time-major `[T, B, F]`) and returns a pointer to its output,
/// owned by the layer and valid until its next `forward`. The layer may keep `input` for
/// `backward`, so the caller keeps that memory unchanged until then. `backward` takes d loss /
/// d output in the output's layout and returns d loss / d input (owned by the layer) when
/// `reserve` asked for it. Nothing should allocate in `forward` or `backward` for batches that
/// fit the reserved capacity.
///
/// **Threads.** With `workers > 1` a model runs `replica()` copies of each layer on other
/// threads, each on its own shard of the batch: a replica shares the weights' values and has
/// its own gradients and buffers.
public protocol Layer<Scalar>: AnyObject {
    associatedtype Scalar: BLASScalar

    /// The class name the summary prints (`SimpleRNN`, `Dense`).
    var typeName: String { get }
    /// The stem of Keras's automatic names (`simple_rnn`, `dense`).
    var nameStem: String { get }
    /// The layer's name (`simple_rnn_1`); renaming renames its parameters (`simple_rnn_1/kernel`).
    var name: String { get set }
    /// The trainable weights, in Keras's order.
    var parameters: [Parameter<Scalar>] { get }
    /// The output shape; valid after `build`.
    var outputShape: FeatureShape { get }

    /// Checks that the layer accepts `inputShape`, creates its weights and draws their initial
    /// values. Throws `ModelError.incompatibleInput` otherwise.
    func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape

    /// A built copy whose parameters share this layer's values (`Parameter(sharingValuesOf:)`),
    /// with gradients and buffers of its own, for computing another shard of a batch on another thread.
    func replica() -> any Layer<Scalar>

    /// Sizes the layer's buffers for batches of up to `batchCapacity` samples run on `backend`.
    /// Nothing is allocated afterwards for any batch that fits.
    func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend)

    /// The forward pass over `batchSize ≤ batchCapacity` samples.
    func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>

    /// The backward pass for the last forward: fills every parameter's gradient and, when
    /// `needsInputGradient` was reserved, returns d loss / d input.
    @discardableResult
    func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>?

    /// Whether the next forward pass trains (dropout drops) or infers (it does not), and which
    /// training step it is (the updates applied so far), from which dropout draws its masks. The
    /// model sets it before every pass; a layer with no training-only behaviour ignores it (the default).
    func setTraining(_ training: Bool, step: Int)
}

extension Layer {
    public func setTraining(_ training: Bool, step: Int) {}
    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
}

/// A model's structure does not fit together, or does not fit the data or weights it is given.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case incompatibleInput(layer: String, expected: String, got: FeatureShape)
    case invalidConfiguration(String)
    case weightsMismatch([String])

    public var description: String {
        switch self {
        case .incompatibleInput(let layer, let expected, let got):
            "layer \(layer) expects \(expected) input, got \(got)"
        case .invalidConfiguration(let message):
            message
        case .weightsMismatch(let differences):
            "the weights do not fit the model:\n" + differences.map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}
