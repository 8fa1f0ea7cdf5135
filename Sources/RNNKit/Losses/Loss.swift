/// What a model's last layer looks like to a loss: its output shape and, when it is a `Dense`,
/// its activation (a loss fuses with a softmax or sigmoid head to differentiate through the logits).
public struct LossHead: Sendable, Equatable {
    public var outputShape: FeatureShape
    /// The activation of a `Dense` head; nil for any other layer.
    public var denseActivation: Activation?

    public init(outputShape: FeatureShape, denseActivation: Activation?) {
        self.outputShape = outputShape
        self.denseActivation = denseActivation
    }
}

/// What a loss compares the model's outputs with.
public enum LossTargets: Sendable, Equatable {
    /// One class index per output row (per sample, or per step of a sequence output).
    case classIndices
    /// One value per output element, laid out as the outputs.
    case values
}

/// Where a loss's gradient enters the head.
public enum LossGradientEntry: Sendable, Equatable {
    /// d loss / d the head's pre-activation (logits): the loss is fused with the head's activation.
    case preActivation
    /// d loss / d the head's outputs.
    case output
}

/// One batch as a loss sees it. Rows are the head's output rows, time-major for sequences
/// (`rows = rowsPerSample · samples`); `labels` (class indices, one per row) or `targets` (one per
/// output element) as the loss's `targets` says.
public struct LossBatch<S: BLASScalar> {
    public var outputs: UnsafePointer<S>
    /// The head's pre-activation, for fused losses.
    public var preActivations: UnsafePointer<S>?
    public var labels: UnsafePointer<Int32>?
    public var targets: UnsafePointer<S>?
    public var rows: Int
    public var columns: Int
    public var rowsPerSample: Int
}

/// The summed figures of a batch (or a shard of one), as losses report them and reducers add
/// them up: Keras's mean loss is `lossSum / samples`, its accuracy `correct / counted`.
public struct BatchFigures: Sendable, Equatable {
    /// The sum over samples of each sample's loss (its mean over steps for sequence outputs).
    public var lossSum: Double = 0
    /// Elements the accuracy metric counts as right, and how many it looked at.
    public var correct: Double = 0
    public var counted: Double = 0
    public var samples: Int = 0
    /// Whether the loss and every gradient of the step were finite.
    public var finite: Bool = true
    /// Rows whose class label was outside the model's classes (skipped, never used as an index).
    public var invalidLabels: Int = 0

    public init(lossSum: Double = 0, correct: Double = 0, counted: Double = 0, samples: Int = 0, finite: Bool = true) {
        self.lossSum = lossSum
        self.correct = correct
        self.counted = counted
        self.samples = samples
        self.finite = finite
    }

    /// Adds another shard's figures.
    public static func += (total: inout BatchFigures, other: BatchFigures) {
        total.lossSum += other.lossSum
        total.correct += other.correct
        total.counted += other.counted
        total.samples += other.samples
        total.finite = total.finite && other.finite
        total.invalidLabels += other.invalidLabels
    }
}

/// A training objective, with Keras's name and the head shapes it accepts. Its accuracy counts
/// (`BatchFigures.correct` of `counted`) are Keras's matching metric: categorical accuracy for
/// the cross-entropies, binary accuracy for binary cross-entropy, none (NaN) for mean squared error.
///
/// A loss is the mean over samples of each sample's loss; for sequence outputs a sample's loss
/// is its mean over steps (as Keras averages over every step). `compile` asks `gradientEntry`,
/// which refuses heads the loss cannot serve with a message naming what it needs.
public protocol Loss: Sendable {
    /// Keras's identifier (`categorical_crossentropy`).
    var name: String { get }
    /// What the loss compares the outputs with.
    var targets: LossTargets { get }
    /// Checks that the loss can serve `head`, and says where its gradient enters it.
    /// - Throws: `ModelError.invalidConfiguration` naming what the loss needs.
    func gradientEntry(for head: LossHead) throws -> LossGradientEntry
    /// The batch's summed loss and accuracy counts; with a `gradientScale`, also writes the
    /// gradient of `gradientScale · Σ sample losses` (with respect to the pre-activation or the
    /// outputs, per `entry`) into `gradient [rows, columns]`.
    func evaluate<S: BLASScalar>(_ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
                                 gradient: UnsafeMutablePointer<S>?) -> BatchFigures
}

extension Loss {
    /// The rows of a class-label loss must be vectors of at least two classes.
    func requireClasses(_ head: LossHead) throws {
        guard head.outputShape.features >= 2 else {
            throw ModelError.invalidConfiguration(
                "\(name) needs the last layer to output at least 2 class scores per row, got \(head.outputShape)")
        }
    }
}

/// The cross-entropy of class scores against class indices, shared by the categorical and
/// sparse categorical forms (which differ in Keras only by how targets are written). Fused with a
/// softmax `Dense` head (the gradient `(p − y)/B` taken at the logits); on any other head the
/// outputs are read as probabilities, as Keras does.
public protocol ClassCrossEntropy: Loss {}

extension ClassCrossEntropy {
    public var targets: LossTargets { .classIndices }

    public func gradientEntry(for head: LossHead) throws -> LossGradientEntry {
        try requireClasses(head)
        return head.denseActivation == .softmax ? .preActivation : .output
    }

    public func evaluate<S: BLASScalar>(_ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
                                        gradient: UnsafeMutablePointer<S>?) -> BatchFigures {
        // A sample's loss is its mean over its rows (steps).
        let scale = (gradientScale ?? 0) / S(batch.rowsPerSample)
        let result = entry == .preActivation
            ? S.softmaxCrossEntropy(logits: batch.preActivations!, probabilities: batch.outputs, labels: batch.labels!,
                                    rows: batch.rows, classes: batch.columns, gradientScale: scale,
                                    logitGradient: gradientScale == nil ? nil : gradient)
            : S.probabilityCrossEntropy(outputs: batch.outputs, labels: batch.labels!, rows: batch.rows, classes: batch.columns,
                                        gradientScale: scale, outputGradient: gradientScale == nil ? nil : gradient)
        var figures = BatchFigures(lossSum: result.lossSum / Double(batch.rowsPerSample), correct: Double(result.correct),
                                   counted: Double(batch.rows), samples: batch.rows / batch.rowsPerSample)
        figures.invalidLabels = result.invalidLabels
        return figures
    }
}

/// Keras's `categorical_crossentropy`, with class indices standing for the one-hot targets.
public struct CategoricalCrossentropy: ClassCrossEntropy {
    public init() {}
    public var name: String { "categorical_crossentropy" }
}

/// Keras's `sparse_categorical_crossentropy`: the same loss from integer labels.
public struct SparseCategoricalCrossentropy: ClassCrossEntropy {
    public init() {}
    public var name: String { "sparse_categorical_crossentropy" }
}

/// Keras's `binary_crossentropy` (mean over each row's outputs) against targets in [0, 1], with
/// `binary_accuracy` (threshold 0.5). Fused with a sigmoid `Dense` head (computed from the
/// logits); on any other head the outputs are read as probabilities.
public struct BinaryCrossentropy: Loss {
    public init() {}
    public var name: String { "binary_crossentropy" }
    public var targets: LossTargets { .values }

    public func gradientEntry(for head: LossHead) throws -> LossGradientEntry {
        if let activation = head.denseActivation, activation != .sigmoid, activation != .hardSigmoid {
            throw ModelError.invalidConfiguration(
                "binary_crossentropy needs outputs in [0, 1]: end the model with Dense(…, activation: .sigmoid), not \(activation.rawValue)")
        }
        return head.denseActivation == .sigmoid ? .preActivation : .output
    }

    public func evaluate<S: BLASScalar>(_ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
                                        gradient: UnsafeMutablePointer<S>?) -> BatchFigures {
        let fused = entry == .preActivation
        let result = S.binaryCrossEntropy(
            values: fused ? batch.preActivations! : batch.outputs, fromLogits: fused, targets: batch.targets!,
            rows: batch.rows, columns: batch.columns, gradientScale: (gradientScale ?? 0) / S(batch.rowsPerSample),
            gradient: gradientScale == nil ? nil : gradient)
        return BatchFigures(lossSum: result.lossSum / Double(batch.rowsPerSample), correct: Double(result.correct),
                            counted: Double(batch.rows * batch.columns), samples: batch.rows / batch.rowsPerSample)
    }
}

/// Keras's `mean_squared_error`: the mean over each row's outputs of `(y − t)²`. Any head; no
/// accuracy metric.
public struct MeanSquaredError: Loss {
    public init() {}
    public var name: String { "mean_squared_error" }
    public var targets: LossTargets { .values }

    public func gradientEntry(for head: LossHead) throws -> LossGradientEntry { .output }

    public func evaluate<S: BLASScalar>(_ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
                                        gradient: UnsafeMutablePointer<S>?) -> BatchFigures {
        let lossSum = S.meanSquaredError(
            outputs: batch.outputs, targets: batch.targets!, rows: batch.rows, columns: batch.columns,
            gradientScale: (gradientScale ?? 0) / S(batch.rowsPerSample), gradient: gradientScale == nil ? nil : gradient)
        return BatchFigures(lossSum: lossSum / Double(batch.rowsPerSample), counted: 0, samples: batch.rows / batch.rowsPerSample)
    }
}
