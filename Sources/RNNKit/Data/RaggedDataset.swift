/// Sequences of different lengths made straight from Swift arrays, with one class label each.
///
/// Each sample keeps its true length: the dataset pads every sequence with zeros to `steps` (the
/// longest by default) inside its own storage, and reports each sample's length through
/// ``SequenceDataset/length(at:)``, so `fit`, `evaluate` and `predict` mask the padded steps for
/// the recurrent layers exactly as the raw-batch `lengths:` argument does. The padding never
/// reaches a recurrent layer's state, whatever the number of workers.
///
/// Targets are class ids in `0..<classCount` (for a `CategoricalCrossentropy` or
/// `SparseCategoricalCrossentropy` model ending in a vector). Datasets do not yet carry target
/// values: regression targets, one-hot rows and one target per step train through the raw-batch
/// `trainStep(x:targets:lengths:batchSize:)` and `trainStep(x:labels:lengths:batchSize:)`.
public struct RaggedDataset: SequenceDataset {
    /// Every sample padded to `steps`, batch-major `[count, steps, features]`.
    private let padded: [Float]
    /// One class per sample, in `0..<classCount`.
    public let labels: [Int]
    public let classCount: Int
    /// Each sample's true number of steps, in `1...steps`.
    public let lengths: [Int]
    /// The steps every sample is padded to: the model's input steps.
    public let steps: Int
    /// Features per step (1 for token sequences).
    public let features: Int

    /// Sequences of `[step][feature]` floats, every step of every sequence `features` wide, one
    /// label each, padded with zeros to `steps` (the longest sequence's length by default).
    ///
    /// - Throws: `ModelError.invalidConfiguration` when there are no sequences, a sequence is
    ///   empty or longer than `steps`, a step's width differs from the first step's, or there is
    ///   not one label per sequence; `.labelOutOfRange` for a label outside `0..<classCount`.
    public init(sequences: [[[Float]]], labels: [Int], classCount: Int, steps: Int? = nil) throws {
        guard let width = sequences.first?.first?.count, width > 0 else {
            throw ModelError.invalidConfiguration("a ragged dataset needs at least one sequence with a step of at least one feature")
        }
        for (index, sequence) in sequences.enumerated() {
            for (step, row) in sequence.enumerated() where row.count != width {
                throw ModelError.invalidConfiguration(
                    "step \(step) of sequence \(index) has \(row.count) features; the first step of sequence 0 has \(width)")
            }
        }
        try self.init(lengths: sequences.map(\.count), labels: labels, classCount: classCount, steps: steps, features: width) {
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
        for (index, sequence) in tokens.enumerated() {
            for (step, token) in sequence.enumerated() where token < 0 || token > 1 << 24 {
                throw ModelError.invalidConfiguration(
                    "token \(token) at step \(step) of sequence \(index) is outside 0...\(1 << 24), the ids a Float holds exactly")
            }
        }
        try self.init(lengths: tokens.map(\.count), labels: labels, classCount: classCount, steps: steps, features: 1) {
            index, destination in
            for (t, token) in tokens[index].enumerated() { destination[t] = Float(token) }
        }
    }

    private init(
        lengths: [Int], labels: [Int], classCount: Int, steps: Int?, features: Int,
        write: (Int, UnsafeMutablePointer<Float>) -> Void
    ) throws {
        guard !lengths.isEmpty else { throw ModelError.invalidConfiguration("a ragged dataset needs at least one sequence") }
        guard lengths.count == labels.count else {
            throw ModelError.invalidConfiguration("\(lengths.count) sequences but \(labels.count) labels")
        }
        try checkLabels(labels, classCount: classCount)
        let longest = lengths.max()!
        let steps = steps ?? longest
        guard steps >= 1 else { throw ModelError.invalidConfiguration("steps must be at least 1, got \(steps)") }
        for (index, length) in lengths.enumerated() where length < 1 || length > steps {
            throw ModelError.invalidConfiguration(
                length < 1
                    ? "sequence \(index) is empty; every sequence needs at least one step"
                    : "sequence \(index) has \(length) steps, more than the \(steps) the dataset pads to")
        }
        let size = steps * features
        var padded = [Float](repeating: 0, count: lengths.count * size)
        padded.withUnsafeMutableBufferPointer { padded in
            for index in lengths.indices { write(index, padded.baseAddress! + index * size) }
        }
        self.padded = padded
        self.labels = labels
        self.classCount = classCount
        self.lengths = lengths
        self.steps = steps
        self.features = features
    }

    public var count: Int { labels.count }
    public var sampleShape: FeatureShape { .sequence(steps: steps, features: features) }
    public func label(at index: Int) -> Int { labels[index] }
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
                labels[b] = Int32(self.labels[index])
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
}
