/// What a model's last layer looks like to a loss: its output shape and, when it is a `Dense`,
/// its activation (a loss fuses with a softmax or sigmoid head to differentiate through the logits).
public struct LossHead: Sendable, Equatable {
    /// The shape of one sample's output (the model's `outputShape`).
    public var outputShape: FeatureShape
    /// The activation of a `Dense` head; nil for any other layer.
    public var denseActivation: Activation?

    /// A head of `outputShape`; `denseActivation` nil unless the last layer is a `Dense`.
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
    /// The head's outputs, `[rows, columns]`.
    public var outputs: UnsafePointer<S>
    /// The head's pre-activation, for fused losses.
    public var preActivations: UnsafePointer<S>?
    /// One class index per row, `[rows]`, for a loss whose `targets` is `classIndices`; nil otherwise.
    public var labels: UnsafePointer<Int32>?
    /// One target per output element, `[rows, columns]`, for a loss whose `targets` is `values`; nil otherwise.
    public var targets: UnsafePointer<S>?
    /// Output rows in the batch: `rowsPerSample · samples`.
    public var rows: Int
    /// Outputs per row: the head's width.
    public var columns: Int
    /// Rows per sample: the steps of a sequence output, else 1.
    public var rowsPerSample: Int
    /// `[rows]`, 1 where a row counts and 0 where it is masked (a padded step of a sequence
    /// output), or nil when every row counts. Masked rows add nothing to the loss or the accuracy
    /// and get a zero gradient.
    public var mask: UnsafePointer<UInt8>?

    /// A batch over the given buffers, which the caller keeps alive while the batch is used.
    public init(
        outputs: UnsafePointer<S>, preActivations: UnsafePointer<S>?, labels: UnsafePointer<Int32>?,
        targets: UnsafePointer<S>?, rows: Int, columns: Int, rowsPerSample: Int, mask: UnsafePointer<UInt8>? = nil
    ) {
        self.outputs = outputs
        self.preActivations = preActivations
        self.labels = labels
        self.targets = targets
        self.rows = rows
        self.columns = columns
        self.rowsPerSample = rowsPerSample
        self.mask = mask
    }

    /// Calls `body(start, count)` for each run of consecutive rows that count (all of them,
    /// once, without a mask), and zeroes the gradient rows of the masked ones. A loss of your own
    /// computes its rows here and returns `finish(_:)` of their sums, and so honours masks.
    public func forEachCountedRun(zeroing gradient: UnsafeMutablePointer<S>?, _ body: (Int, Int) -> Void) {
        guard let mask else { return body(0, rows) }
        var row = 0
        while row < rows {
            if mask[row] == 0 {
                gradient.map { ($0 + row * columns).update(repeating: 0, count: columns) }
                row += 1
                continue
            }
            let start = row
            while row < rows && mask[row] != 0 { row += 1 }
            body(start, row - start)
        }
    }

    /// The batch restricted to `count` rows from `start` (same layout, no mask).
    public func slice(from start: Int, count: Int) -> LossBatch {
        let offset = start * columns
        return LossBatch(
            outputs: outputs + offset, preActivations: preActivations.map { $0 + offset },
            labels: labels.map { $0 + start }, targets: targets.map { $0 + offset },
            rows: count, columns: columns, rowsPerSample: 1)
    }
}

/// The summed figures of a batch (or a shard of one), as losses report them and reducers add
/// them up: Keras's mean loss is `lossSum / samples`, its accuracy `correct / counted`.
///
/// A masked loss (a sequence output whose padded steps are masked) is Keras's mean over the
/// steps that count, over the whole batch: its shards report the sum of those steps' losses in
/// `lossSum` and their number in `countedRows`, with `masked` set; `normalizeMaskedLoss()` turns
/// the batch's totals into the per-sample form above.
public struct BatchFigures: Sendable, Equatable {
    /// The sum over samples of each sample's loss (its mean over steps for sequence outputs);
    /// with `masked`, until normalised, the sum of the counted rows' losses.
    public var lossSum: Double = 0
    /// Elements the accuracy metric counts as right.
    public var correct: Double = 0
    /// Elements the accuracy metric looked at (0 for a loss without one).
    public var counted: Double = 0
    /// Samples in the batch or shard.
    public var samples: Int = 0
    /// Whether the loss and every gradient of the step were finite.
    public var finite: Bool = true
    /// Rows whose class label was outside the model's classes (skipped, never used as an index).
    public var invalidLabels: Int = 0
    /// Whether the loss was taken over a mask, and how many rows (sample steps) it counted.
    public var masked = false
    /// With `masked`, the rows (sample steps) the mask kept, over which `lossSum` is summed.
    public var countedRows: Double = 0

    /// Figures as given (by default an empty, finite total to add shards to), unmasked and with no invalid labels.
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
        total.masked = total.masked || other.masked
        total.countedRows += other.countedRows
    }

    /// Turns a whole batch's masked totals into the per-sample form: Keras's batch loss is the
    /// mean over the rows that count (0 when none does), weighted by the batch's samples when
    /// batches are added up. Returns the factor the gradient of the summed loss must be scaled
    /// by to become that of the mean (nil for a batch without a mask).
    public mutating func normalizeMaskedLoss() -> Double? {
        guard masked else { return nil }
        let scale = countedRows > 0 ? 1 / countedRows : 0
        lossSum *= scale * Double(samples)
        masked = false
        countedRows = 0
        return scale
    }
}

/// A training objective, with Keras's name and the head shapes it accepts. Its accuracy counts
/// (`BatchFigures.correct` of `counted`) are Keras's matching metric: categorical accuracy for
/// the cross-entropies, binary accuracy for binary cross-entropy, none (NaN) for mean squared error.
///
/// A loss is the mean over samples of each sample's loss; for sequence outputs a sample's loss
/// is its mean over steps (as Keras averages over every step). Over a masked batch
/// (`LossBatch.mask`) it is the sum over the rows that count, and the gradient that of
/// `gradientScale ·` that sum; the model divides by the counted rows of the whole batch.
/// `compile` asks `gradientEntry`, which refuses heads the loss cannot serve with a message naming what it needs.
public protocol Loss: Sendable {
    /// Keras's identifier (`categorical_crossentropy`).
    var name: String { get }
    /// What the loss compares the outputs with.
    var targets: LossTargets { get }
    /// Checks that the loss can serve `head`, and says where its gradient enters it.
    /// - Throws: `ModelError.lossDoesNotFitHead` naming what the loss needs.
    func gradientEntry(for head: LossHead) throws -> LossGradientEntry
    /// The batch's summed loss and accuracy counts; with a `gradientScale`, also writes the
    /// gradient of `gradientScale · Σ sample losses` (with respect to the pre-activation or the
    /// outputs, per `entry`) into `gradient [rows, columns]`.
    func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures
}

extension Loss {
    /// The rows of a class-label loss must be vectors of at least two classes.
    func requireClasses(_ head: LossHead) throws {
        guard head.outputShape.features >= 2 else {
            throw ModelError.lossDoesNotFitHead(
                loss: name, needs: "the last layer to output at least 2 class scores per row, got \(head.outputShape)")
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

    // Called through `any Loss` once per shard and step: unspecialised, each call looked up
    // `LossBatch<S>`'s generic metadata at run time, a visible share of a small model's step
    // (docs/PERFORMANCE-HISTORY.md has the measurement).
    @_specialize(where Self == CategoricalCrossentropy, S == Float)
    @_specialize(where Self == SparseCategoricalCrossentropy, S == Float)
    public func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures {
        let gradient = gradientScale == nil ? nil : gradient
        // A sample's loss is its mean over its rows (steps); a masked batch's, their sum.
        let scale = (gradientScale ?? 0) / S(batch.mask == nil ? batch.rowsPerSample : 1)
        var figures = BatchFigures()
        batch.forEachCountedRun(zeroing: gradient) { start, count in
            let run = batch.slice(from: start, count: count), offset = start * batch.columns
            let result =
                entry == .preActivation
                ? S.softmaxCrossEntropy(
                    logits: run.preActivations!, probabilities: run.outputs, labels: run.labels!,
                    rows: count, classes: batch.columns, gradientScale: scale,
                    logitGradient: gradient.map { $0 + offset })
                : S.probabilityCrossEntropy(
                    outputs: run.outputs, labels: run.labels!, rows: count, classes: batch.columns,
                    gradientScale: scale, outputGradient: gradient.map { $0 + offset })
            figures.lossSum += result.lossSum
            figures.correct += Double(result.correct)
            figures.counted += Double(count)
            figures.invalidLabels += result.invalidLabels
        }
        return batch.finish(figures)
    }
}

/// Keras's `categorical_crossentropy`, with class indices standing for the one-hot targets.
public struct CategoricalCrossentropy: ClassCrossEntropy {
    /// The loss; it has no settings.
    public init() {}
    public var name: String { "categorical_crossentropy" }
}

/// Keras's `sparse_categorical_crossentropy`: the same loss from integer labels.
public struct SparseCategoricalCrossentropy: ClassCrossEntropy {
    /// The loss; it has no settings.
    public init() {}
    public var name: String { "sparse_categorical_crossentropy" }
}

/// Keras's `binary_crossentropy` (mean over each row's outputs) against targets in [0, 1], with
/// `binary_accuracy` (threshold 0.5). Fused with a sigmoid `Dense` head (computed from the
/// logits); on any other head the outputs are read as probabilities.
public struct BinaryCrossentropy: Loss {
    /// The loss; it has no settings.
    public init() {}
    public var name: String { "binary_crossentropy" }
    public var targets: LossTargets { .values }

    public func gradientEntry(for head: LossHead) throws -> LossGradientEntry {
        if let activation = head.denseActivation, activation != .sigmoid, activation != .hardSigmoid {
            throw ModelError.lossDoesNotFitHead(
                loss: name, needs: "outputs in [0, 1]: end the model with Dense(…, activation: .sigmoid), not \(activation.rawValue)")
        }
        return head.denseActivation == .sigmoid ? .preActivation : .output
    }

    @_specialize(where S == Float)
    public func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures {
        let fused = entry == .preActivation, gradient = gradientScale == nil ? nil : gradient
        let scale = (gradientScale ?? 0) / S(batch.mask == nil ? batch.rowsPerSample : 1)
        var figures = BatchFigures()
        batch.forEachCountedRun(zeroing: gradient) { start, count in
            let run = batch.slice(from: start, count: count), offset = start * batch.columns
            let result = S.binaryCrossEntropy(
                values: fused ? run.preActivations! : run.outputs, fromLogits: fused, targets: run.targets!,
                rows: count, columns: batch.columns, gradientScale: scale, gradient: gradient.map { $0 + offset })
            figures.lossSum += result.lossSum
            figures.correct += Double(result.correct)
            figures.counted += Double(count * batch.columns)
        }
        return batch.finish(figures)
    }
}

/// Keras's `mean_squared_error`: the mean over each row's outputs of `(y − t)²`. Any head; no
/// accuracy metric.
public struct MeanSquaredError: Loss {
    /// The loss; it has no settings.
    public init() {}
    public var name: String { "mean_squared_error" }
    public var targets: LossTargets { .values }

    public func gradientEntry(for head: LossHead) throws -> LossGradientEntry { .output }

    @_specialize(where S == Float)
    public func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures {
        let gradient = gradientScale == nil ? nil : gradient
        let scale = (gradientScale ?? 0) / S(batch.mask == nil ? batch.rowsPerSample : 1)
        var figures = BatchFigures()
        batch.forEachCountedRun(zeroing: gradient) { start, count in
            let run = batch.slice(from: start, count: count)
            figures.lossSum += S.meanSquaredError(
                outputs: run.outputs, targets: run.targets!, rows: count, columns: batch.columns,
                gradientScale: scale, gradient: gradient.map { $0 + start * batch.columns })
        }
        figures.counted = 0
        return batch.finish(figures)
    }
}

extension LossBatch {
    /// A loss's figures for this batch from its sums over the rows that count (`lossSum` the sum
    /// of the rows' losses, `correct`/`counted` the accuracy's): the per-sample form without a
    /// mask, the masked form (summed rows, and how many) with one.
    public func finish(_ summed: BatchFigures) -> BatchFigures {
        var figures = summed
        figures.samples = rows / rowsPerSample
        if let mask {
            figures.masked = true
            var counted = 0
            for row in 0..<rows where mask[row] != 0 { counted += 1 }
            figures.countedRows = Double(counted)
        } else {
            figures.lossSum /= Double(rowsPerSample)
        }
        return figures
    }
}
