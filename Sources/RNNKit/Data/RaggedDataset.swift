/// Sequences of different lengths made straight from Swift arrays, with their targets.
///
/// Each sample keeps its true length: the dataset pads every sequence with zeros to `steps` (the
/// longest by default) inside its own storage, and reports each sample's length through
/// ``SequenceDataset/length(at:)``, so `fit`, `evaluate` and `predict` mask the padded steps for
/// the recurrent layers exactly as the raw-batch `lengths:` argument does. The padding never
/// reaches a recurrent layer's state, whatever the number of workers.
///
/// Targets, matching what the compiled loss compares with (``LossTargets``):
/// - class ids in `0..<classCount` (`labels:`), or one-hot rows (`oneHot:`, turned into class ids),
///   for `CategoricalCrossentropy` / `SparseCategoricalCrossentropy` on a vector output;
/// - one float vector per sample (`targets:`) for `MeanSquaredError` or `BinaryCrossentropy` on
///   a vector output (regression);
/// - one float vector per step (`stepTargets:`, sequence labelling) for those losses on a model
///   that returns sequences: the padded steps are masked out of the loss, which is Keras's mean
///   over the steps that count.
///
/// - one class id per step (`stepLabels:`, sequence labelling) for those class losses on a model
///   returning sequences, the padded steps masked out of the loss as above.
public struct RaggedDataset: SequenceDataset {
    /// Every sample padded to `steps`, batch-major `[count, steps, features]`.
    private let padded: [Float]
    /// One class per sample, in `0..<classCount` (empty for target values and per-step labels).
    public let labels: [Int]
    /// Whether the labels are one per step (`stepLabels:`).
    public let labelsPerStep: Bool
    /// With per-step labels, each sample's padded to `steps` with 0s, `[count, steps]`.
    private let stepLabelIDs: [Int32]
    /// The number of classes (0 for a dataset of target values).
    public let classCount: Int
    /// Target values, `[count, width]` or, one per step, `[count, steps, width]` (padded steps 0).
    private let values: [Float]
    /// `.classIndices` for labels and one-hot rows, `.values` for `targets:` and `stepTargets:`.
    public let targetKind: LossTargets
    /// With target values, their shape per sample: `.vector` for `targets:`, `.sequence` for
    /// `stepTargets:`; nil for class labels.
    public let targetShape: FeatureShape?
    /// Each sample's true number of steps, in `1...steps`.
    public let lengths: [Int]
    /// The steps every sample is padded to: the model's input steps.
    public let steps: Int
    /// Features per step (1 for token sequences).
    public let features: Int

    /// Sequences of `[step][feature]` floats, every step of every sequence `features` wide, one
    /// class label each, padded with zeros to `steps` (the longest sequence's length by default).
    ///
    /// - Throws: `ModelError.invalidConfiguration` when there are no sequences, a sequence is
    ///   empty or longer than `steps`, a step's width differs from the first step's, or there is
    ///   not one label per sequence; `.labelOutOfRange` for a label outside `0..<classCount`.
    public init(sequences: [[[Float]]], labels: [Int], classCount: Int, steps: Int? = nil) throws {
        try self.init(sequences: sequences, targets: .labels(labels, classCount: classCount), steps: steps)
    }

    /// Sequences with one-hot class rows, read as the class ids of their 1s (`classCount` is the
    /// rows' width), as Keras's categorical cross-entropy reads them.
    ///
    /// - Throws: as ``init(sequences:labels:classCount:steps:)``, and
    ///   `ModelError.invalidConfiguration` for a row that is not all 0 but one 1.
    public init(sequences: [[[Float]]], oneHot: [[Float]], steps: Int? = nil) throws {
        let width = oneHot.first?.count ?? 0
        var labels: [Int] = []
        for (index, row) in oneHot.enumerated() {
            guard row.count == width, row.allSatisfy({ $0 == 0 || $0 == 1 }), row.filter({ $0 == 1 }).count == 1 else {
                throw ModelError.invalidConfiguration("target row \(index) is not one-hot over \(width) classes: \(row)")
            }
            labels.append(row.firstIndex(of: 1)!)
        }
        try self.init(sequences: sequences, labels: labels, classCount: width, steps: steps)
    }

    /// Sequences with one class id per step (sequence labelling) in `0..<classCount`, for a class
    /// loss on a model returning sequences; sequence `i` has `stepLabels[i].count` steps.
    ///
    /// - Throws: as ``init(sequences:labels:classCount:steps:)``, and
    ///   `ModelError.invalidConfiguration` for a sequence whose number of labels is not its number
    ///   of steps; `.labelOutOfRange` gives the label's position in the concatenated labels.
    public init(sequences: [[[Float]]], stepLabels: [[Int]], classCount: Int, steps: Int? = nil) throws {
        try self.init(sequences: sequences, targets: .stepLabels(stepLabels, classCount: classCount), steps: steps)
    }

    /// Sequences with one target vector each (regression), for a loss of target values on a
    /// vector output as wide as the vectors.
    ///
    /// - Throws: as ``init(sequences:labels:classCount:steps:)``, and
    ///   `ModelError.invalidConfiguration` for target vectors that are empty or of different widths.
    public init(sequences: [[[Float]]], targets: [[Float]], steps: Int? = nil) throws {
        try self.init(sequences: sequences, targets: .values(targets), steps: steps)
    }

    /// Sequences with one target vector per step (sequence labelling), for a loss of target
    /// values on a model returning sequences; sequence `i` has `stepTargets[i].count` steps.
    ///
    /// - Throws: as ``init(sequences:targets:steps:)``, and `ModelError.invalidConfiguration`
    ///   for a sequence whose number of targets is not its number of steps.
    public init(sequences: [[[Float]]], stepTargets: [[[Float]]], steps: Int? = nil) throws {
        try self.init(sequences: sequences, targets: .stepValues(stepTargets), steps: steps)
    }

    private init(sequences: [[[Float]]], targets: Targets, steps: Int?) throws {
        guard let width = sequences.first?.first?.count, width > 0 else {
            throw ModelError.invalidConfiguration("a ragged dataset needs at least one sequence with a step of at least one feature")
        }
        for (index, sequence) in sequences.enumerated() {
            for (step, row) in sequence.enumerated() where row.count != width {
                throw ModelError.invalidConfiguration(
                    "step \(step) of sequence \(index) has \(row.count) features; the first step of sequence 0 has \(width)")
            }
        }
        try self.init(lengths: sequences.map(\.count), targets: targets, steps: steps, features: width) {
            index, destination in
            for (t, row) in sequences[index].enumerated() {
                (destination + t * width).update(from: row, count: width)
            }
        }
    }

    /// Integer token sequences, one label each, stored as one float feature per step (a token id
    /// `k` reads as the value `k`) and padded with zeros to `steps` (the longest by default).
    ///
    /// The ids are kept exact (up to 2²⁴) so that an `Embedding` layer, when RNNKit has one, can
    /// read them; until then a model reads them as numbers, 1 feature wide.
    ///
    /// - Throws: as ``init(sequences:labels:classCount:steps:)``, and
    ///   `ModelError.invalidConfiguration` for a negative token or one above 2²⁴.
    public init(tokens: [[Int]], labels: [Int], classCount: Int, steps: Int? = nil) throws {
        try self.init(tokens: tokens, targets: .labels(labels, classCount: classCount), steps: steps)
    }

    /// Integer token sequences with one target vector each (see ``init(tokens:labels:classCount:steps:)``).
    public init(tokens: [[Int]], targets: [[Float]], steps: Int? = nil) throws {
        try self.init(tokens: tokens, targets: .values(targets), steps: steps)
    }

    /// Integer token sequences with one class id per step in `0..<classCount` (sequence
    /// labelling, e.g. a language model's next token), for a class loss on a model returning
    /// sequences; sequence `i` has `stepLabels[i].count` steps. Tokens are stored as in
    /// ``init(tokens:labels:classCount:steps:)``, and the padded steps (from each sequence's
    /// length, and from id 0 under an `Embedding` with `maskZero`) are masked out of the loss,
    /// which is the mean over the steps that count.
    ///
    /// - Parameters:
    ///   - tokens: the id sequences, each at least one step long, ids in `0...2²⁴`.
    ///   - stepLabels: one class id per step of each sequence, in `0..<classCount`.
    ///   - classCount: the number of classes, the width of the model's per-step output.
    ///   - steps: the steps every sequence is padded to (the longest sequence's length by default).
    /// - Throws: as ``init(tokens:labels:classCount:steps:)``, and `ModelError.invalidConfiguration`
    ///   for a sequence whose number of labels is not its number of steps; `.labelOutOfRange`
    ///   gives the label's position in the concatenated labels.
    public init(tokens: [[Int]], stepLabels: [[Int]], classCount: Int, steps: Int? = nil) throws {
        try self.init(tokens: tokens, targets: .stepLabels(stepLabels, classCount: classCount), steps: steps)
    }

    private init(tokens: [[Int]], targets: Targets, steps: Int?) throws {
        for (index, sequence) in tokens.enumerated() {
            for (step, token) in sequence.enumerated() where token < 0 || token > 1 << 24 {
                throw ModelError.invalidConfiguration(
                    "token \(token) at step \(step) of sequence \(index) is outside 0...\(1 << 24), the ids a Float holds exactly")
            }
        }
        try self.init(lengths: tokens.map(\.count), targets: targets, steps: steps, features: 1) {
            index, destination in
            for (t, token) in tokens[index].enumerated() { destination[t] = Float(token) }
        }
    }

    /// The targets an initialiser was given.
    private enum Targets {
        case labels([Int], classCount: Int)
        case values([[Float]])
        case stepValues([[[Float]]])
        case stepLabels([[Int]], classCount: Int)
    }

    private init(
        lengths: [Int], targets: Targets, steps: Int?, features: Int,
        write: (Int, UnsafeMutablePointer<Float>) -> Void
    ) throws {
        guard !lengths.isEmpty else { throw ModelError.invalidConfiguration("a ragged dataset needs at least one sequence") }
        let longest = lengths.max()!
        let steps = steps ?? longest
        guard steps >= 1 else { throw ModelError.invalidConfiguration("steps must be at least 1, got \(steps)") }
        for (index, length) in lengths.enumerated() where length < 1 || length > steps {
            throw ModelError.invalidConfiguration(
                length < 1
                    ? "sequence \(index) is empty; every sequence needs at least one step"
                    : "sequence \(index) has \(length) steps, more than the \(steps) the dataset pads to")
        }
        func checkWidths(_ rows: some Sequence<[Float]>, what: String) throws -> Int {
            var width: Int?
            for (index, row) in rows.enumerated() {
                guard !row.isEmpty, row.count == width ?? row.count else {
                    throw ModelError.invalidConfiguration(
                        "\(what) \(index) has \(row.count) values; every target needs the same number, at least 1")
                }
                width = row.count
            }
            return width!
        }
        switch targets {
        case .stepLabels(let stepLabels, let classCount):
            guard lengths.count == stepLabels.count else {
                throw ModelError.invalidConfiguration("\(lengths.count) sequences but \(stepLabels.count) label sequences")
            }
            for (index, sequence) in stepLabels.enumerated() where sequence.count != lengths[index] {
                throw ModelError.invalidConfiguration("sequence \(index) has \(lengths[index]) steps but \(sequence.count) step labels")
            }
            try checkLabels(stepLabels.joined(), classCount: classCount)
            var ids = [Int32](repeating: 0, count: lengths.count * steps)
            for (index, sequence) in stepLabels.enumerated() {
                for (t, label) in sequence.enumerated() { ids[index * steps + t] = Int32(label) }
            }
            labels = []
            labelsPerStep = true
            stepLabelIDs = ids
            self.classCount = classCount
            values = []
            targetKind = .classIndices
            targetShape = nil
        case .labels(let labels, let classCount):
            labelsPerStep = false
            stepLabelIDs = []
            guard lengths.count == labels.count else {
                throw ModelError.invalidConfiguration("\(lengths.count) sequences but \(labels.count) labels")
            }
            try checkLabels(labels, classCount: classCount)
            self.labels = labels
            self.classCount = classCount
            values = []
            targetKind = .classIndices
            targetShape = nil
        case .values(let targets):
            labelsPerStep = false
            stepLabelIDs = []
            guard lengths.count == targets.count else {
                throw ModelError.invalidConfiguration("\(lengths.count) sequences but \(targets.count) targets")
            }
            let width = try checkWidths(targets, what: "target")
            labels = []
            classCount = 0
            values = targets.flatMap { $0 }
            targetKind = .values
            targetShape = .vector(features: width)
        case .stepValues(let targets):
            labelsPerStep = false
            stepLabelIDs = []
            guard lengths.count == targets.count else {
                throw ModelError.invalidConfiguration("\(lengths.count) sequences but \(targets.count) target sequences")
            }
            for (index, sequence) in targets.enumerated() where sequence.count != lengths[index] {
                throw ModelError.invalidConfiguration(
                    "sequence \(index) has \(lengths[index]) steps but \(sequence.count) step targets")
            }
            let width = try checkWidths(targets.joined(), what: "step target")
            var values = [Float](repeating: 0, count: lengths.count * steps * width)
            for (index, sequence) in targets.enumerated() {
                for (t, row) in sequence.enumerated() {
                    values.replaceSubrange(((index * steps + t) * width)..<((index * steps + t + 1) * width), with: row)
                }
            }
            labels = []
            classCount = 0
            self.values = values
            targetKind = .values
            targetShape = .sequence(steps: steps, features: width)
        }
        let size = steps * features
        var padded = [Float](repeating: 0, count: lengths.count * size)
        padded.withUnsafeMutableBufferPointer { padded in
            for index in lengths.indices { write(index, padded.baseAddress! + index * size) }
        }
        self.padded = padded
        self.lengths = lengths
        self.steps = steps
        self.features = features
    }

    public var count: Int { lengths.count }
    public var sampleShape: FeatureShape { .sequence(steps: steps, features: features) }
    /// Sample `index`'s class (its first step's with per-step labels; 0 for target values).
    public func label(at index: Int) -> Int {
        labelsPerStep ? Int(stepLabelIDs[index * steps]) : labels.isEmpty ? 0 : labels[index]
    }
    public func length(at index: Int) -> Int? { lengths[index] }

    /// Sample `index` as given, `[length][features]` (without its padding).
    public func sequence(at index: Int) -> [[Float]] {
        let size = steps * features
        return (0..<lengths[index]).map { t in Array(padded[(index * size + t * features)..<(index * size + (t + 1) * features)]) }
    }

    public func gather<S: BLASScalar>(
        _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
    ) {
        let batch = indices.count
        padded.withUnsafeBufferPointer { source in
            for (b, index) in indices.enumerated() {
                if labelsPerStep {
                    for t in 0..<steps { labels[t * batch + b] = stepLabelIDs[index * steps + t] }
                } else {
                    labels[b] = self.labels.isEmpty ? 0 : Int32(self.labels[index])
                }
                for t in 0..<steps {
                    let row = source.baseAddress! + (index * steps + t) * features
                    let destination = x + (t * batch + b) * features
                    if S.self == Float.self {
                        destination.update(from: UnsafeRawPointer(row).assumingMemoryBound(to: S.self), count: features)
                    } else {
                        for i in 0..<features { destination[i] = S(row[i]) }
                    }
                }
            }
        }
    }

    public func gatherTargets<S: BLASScalar>(_ indices: UnsafeBufferPointer<Int>, into targets: UnsafeMutablePointer<S>) {
        guard let targetShape else { return }
        let batch = indices.count, rows = targetShape.steps, width = targetShape.features
        for (b, index) in indices.enumerated() {
            for t in 0..<rows {
                let source = (index * rows + t) * width, destination = (t * batch + b) * width
                for i in 0..<width { targets[destination + i] = S(values[source + i]) }
            }
        }
    }
}
