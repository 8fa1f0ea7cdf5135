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
    /// The scalar type of its weights and buffers (`Float` or `Double`): the model's.
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

/// A model's structure does not fit together, or does not fit the data, weights or calls it is given.
///
/// Each case names one thing a caller can react to, with its figures as typed payloads;
/// `description` is the one-line message (several lines for `weightsMismatch`) a person reads.
/// Data errors (labels, lengths, sample indices, shapes of the data) are thrown, never trapped on:
/// they come from files and users. Mistakes in how the model is put together or called that no
/// other case names are `invalidConfiguration`.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// `layer` cannot take the shape the layer (or input) before it produces.
    case incompatibleInput(layer: String, expected: String, got: FeatureShape)
    /// The weights given (a file's, or another model's) differ from the model's: one line per difference.
    case weightsMismatch([String])
    /// The model was asked to train or evaluate before `compile` chose its loss and optimiser;
    /// `action` is what was asked (`training`, `fitting`, `evaluating or fitting`).
    case notCompiled(action: String)
    /// A raw batch's class label (at `position` of the labels array) is outside `0..<classes`.
    case labelOutOfRange(label: Int, position: Int, classes: Int)
    /// A dataset gave `count` labels outside `0..<classes`, which the kernels skipped; the batch
    /// is refused (a dataset's labels are not read one by one, so which ones is not known).
    case labelsOutOfRange(count: Int, classes: Int)
    /// A sequence length (at `position` of the lengths array) is outside `1...steps`.
    case lengthOutOfRange(length: Int, position: Int, steps: Int)
    /// A sample index (at `position` of the indices) is outside the dataset's `0..<count`.
    case indexOutOfRange(index: Int, position: Int, count: Int)
    /// A range of samples reaches outside the dataset's `0..<count`.
    case rangeOutOfRange(Range<Int>, count: Int)
    /// An `Embedding`'s input `id` (at `sample` of the batch or dataset, and `step`) is not a whole
    /// number in `0..<inputDim`, the rows of its table.
    case idOutOfRange(layer: String, id: Double, sample: Int, step: Int, inputDim: Int)
    /// The loss cannot serve the model's last layer; `needs` says what it needs (and what it got).
    /// A custom `Loss` throws this from `gradientEntry(for:)` too.
    case lossDoesNotFitHead(loss: String, needs: String)
    /// The loss compares outputs with `needs` (class labels or target values) and was given the
    /// other kind; `fromDataset` when a dataset (which always gives class labels) was.
    case targetsMismatch(loss: String, needs: LossTargets, fromDataset: Bool)
    /// The data's samples have another shape than the model's input.
    case sampleShapeMismatch(data: FeatureShape, model: FeatureShape)
    /// The data's class count is not the model's output width (or the model's output is no vector).
    case classCountMismatch(data: Int, model: FeatureShape)
    /// Saved optimiser state does not fit the model: `slotLengths` are the saved slots' lengths,
    /// the model needs `neededSlots` of `neededLength` values each (and `iterations` ≥ 0).
    case optimizerStateMismatch(optimizer: String, slotLengths: [Int], iterations: Int, neededSlots: Int, neededLength: Int)
    /// A setting or argument that cannot work (an empty model, a batch size of 0, a validation
    /// split of 1, a layer a file format cannot hold), said in a sentence.
    case invalidConfiguration(String)

    /// The message a person reads: one line (the differences on lines of their own for `weightsMismatch`).
    public var description: String {
        switch self {
        case .incompatibleInput(let layer, let expected, let got):
            "layer \(layer) expects \(expected) input, got \(got)"
        case .weightsMismatch(let differences):
            "the weights do not fit the model:\n" + differences.map { "  - \($0)" }.joined(separator: "\n")
        case .notCompiled(let action):
            "compile the model before \(action) it"
        case .labelOutOfRange(let label, let position, let classes):
            "label \(label) at position \(position) is outside 0..<\(classes), the classes the model predicts"
        case .labelsOutOfRange(let count, let classes):
            "the data gave \(count) label\(count == 1 ? "" : "s") outside 0..<\(classes), the classes the model predicts"
        case .lengthOutOfRange(let length, let position, let steps):
            "length \(length) at position \(position) is outside 1...\(steps), the steps the model reads"
        case .indexOutOfRange(let index, let position, let count):
            "sample index \(index) at position \(position) is outside the dataset's 0..<\(count)"
        case .rangeOutOfRange(let range, let count):
            "samples \(range) are outside the dataset's 0..<\(count)"
        case .idOutOfRange(let layer, let id, let sample, let step, let inputDim):
            "\(layer): id \(id) at sample \(sample), step \(step) is not a whole number in 0..<\(inputDim)"
        case .lossDoesNotFitHead(let loss, let needs):
            "\(loss) needs \(needs)"
        case .targetsMismatch(let loss, let needs, let fromDataset):
            fromDataset
                ? "\(loss) needs target values; this dataset gives class labels (RaggedDataset(targets:) gives values)"
                : needs == .classIndices
                    ? "\(loss) needs class labels, not target values"
                    : "\(loss) needs target values, not class labels"
        case .sampleShapeMismatch(let data, let model):
            "the data's samples are \(data), the model takes \(model)"
        case .classCountMismatch(let data, let model):
            "the data has \(data) classes, the model predicts \(model)"
        case .optimizerStateMismatch(let optimizer, let slotLengths, let iterations, let neededSlots, let neededLength):
            "\(optimizer) state has \(slotLengths.count) slots of \(slotLengths) values; the model needs \(neededSlots) of \(neededLength)"
                + (iterations < 0 ? ", and an update count ≥ 0, not \(iterations)" : "")
        case .invalidConfiguration(let message):
            message
        }
    }
}
