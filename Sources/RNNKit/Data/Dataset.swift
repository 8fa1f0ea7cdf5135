import Foundation
/// Samples a model trains on, with their class labels (or, for losses of values, target values)
/// and optionally their true lengths, read a batch at a time.
///
/// A dataset hands samples over by writing them straight into the model's batch buffer in the
/// layout the first layer's GEMM wants (time-major), so no per-batch array is built.
///
/// With `workers > 1` the model calls `gather` from several threads at once, each for its own
/// shard of a batch (disjoint `indices` and destinations), hence `Sendable`: `gather` must be
/// safe to run concurrently. Labels outside `0..<classCount` are refused by the model (the batch
/// throws), never used as indices.
public protocol SequenceDataset: Sendable {
    /// The number of samples.
    var count: Int { get }
    /// The shape of one sample: `.sequence(steps:features:)` for recurrent models.
    var sampleShape: FeatureShape { get }
    /// The number of classes; labels are in `0..<classCount`.
    var classCount: Int { get }
    /// The class of sample `index`.
    func label(at index: Int) -> Int
    /// Writes the samples at `indices` into `x` laid out `[steps, indices.count, features]`
    /// (for vector samples, `[indices.count, features]`) and their labels into `labels`.
    func gather<S: BLASScalar>(_ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>)
    /// Sample `index`'s true number of steps, in `1...sampleShape.steps`; nil when every step is
    /// real (the default). The steps from the length on are padding: `fit`, `evaluate` and
    /// `predict` mask them for the recurrent layers exactly as the raw-batch `lengths:` argument
    /// does (as a `Masking` layer's mask would), on every worker's shard. A length outside
    /// `1...steps` makes the batch throw `ModelError.lengthOutOfRange` before any kernel runs.
    func length(at index: Int) -> Int?
    /// Whether `gather` writes one class label per step, `[steps, indices.count]` time-major
    /// (sequence labelling with a class loss, on a model returning sequences), instead of one per
    /// sample; false by default. A padded step's label is masked but must still be a class (0 will do).
    var labelsPerStep: Bool { get }
    /// What the dataset's targets are: class labels (`.classIndices`, the default, written by
    /// `gather` into `labels`) or values (`.values`, written by `gatherTargets`), for losses that
    /// compare with values (mean squared error, binary cross-entropy). `fit`, `evaluate` and
    /// `trainStep` refuse a dataset whose kind is not the compiled loss's.
    var targetKind: LossTargets { get }
    /// With `.values` targets, the shape of one sample's targets: the model's output shape
    /// (`.vector` for one target vector per sample, `.sequence` for one per step); nil otherwise.
    var targetShape: FeatureShape? { get }
    /// With `.values` targets, writes the targets of the samples at `indices` into `targets` in
    /// the outputs' layout: `[indices.count, F]`, or time-major `[steps, indices.count, F]` for
    /// one target per step (a padded step's target is masked, whatever its value). Called from
    /// several threads at once for disjoint shards, as `gather`.
    func gatherTargets<S: BLASScalar>(_ indices: UnsafeBufferPointer<Int>, into targets: UnsafeMutablePointer<S>)
}

extension SequenceDataset {
    /// Every step of every sample is real.
    public func length(at index: Int) -> Int? { nil }
    /// One label per sample.
    public var labelsPerStep: Bool { false }
    /// Class labels.
    public var targetKind: LossTargets { .classIndices }
    /// No target values.
    public var targetShape: FeatureShape? { nil }
    /// No target values: writes nothing.
    public func gatherTargets<S: BLASScalar>(_ indices: UnsafeBufferPointer<Int>, into targets: UnsafeMutablePointer<S>) {}
}

extension FeatureShape {
    /// Steps per sample as a time-major batch sees them (1 for vectors).
    var steps: Int {
        if case .sequence(let steps, _) = self { return steps }
        return 1
    }
}

/// Images kept as bytes, scaled to [0, 1] as each batch is gathered: a 28×28 image is 784 bytes
/// instead of 3 KiB of `Float`, and each image reads as `rows` steps of `columns` features.
///
/// The bytes live in memory the kernel is asked to back with 2 MiB pages: a shuffled batch reads
/// images from all over the set, and with 4 KiB pages each one costs a page-table walk on top of
/// the cache misses (a sixth of a small model's step went to gathering its batch).
public struct ImageDataset: SequenceDataset, Sendable {
    private let storage: PixelStorage
    /// One label per image.
    public let labels: [UInt8]
    /// Pixel rows per image: the steps of a sample.
    public let rows: Int
    /// Pixels per row: the features of a step.
    public let columns: Int
    public let classCount: Int

    /// Images of `rows × columns` bytes, image after image and row after row, one label each (10 classes by default).
    ///
    /// - Throws: `ModelError.invalidConfiguration` when `rows` or `columns` is below 1,
    ///   `classCount` is below 1 or above 256, or `pixels.count ≠ labels.count · rows · columns`;
    ///   `.labelOutOfRange` for the first label not below `classCount`. Thrown in release builds too.
    public init(pixels: [UInt8], labels: [UInt8], rows: Int, columns: Int, classCount: Int = 10) throws {
        guard rows > 0, columns > 0 else {
            throw ModelError.invalidConfiguration("images must be at least 1×1, got \(rows)×\(columns)")
        }
        guard classCount <= 256 else {
            throw ModelError.invalidConfiguration("byte labels allow at most 256 classes, got \(classCount)")
        }
        guard pixels.count == labels.count * rows * columns else {
            throw ModelError.invalidConfiguration("\(pixels.count) pixels do not make \(labels.count) images of \(rows)×\(columns)")
        }
        try checkLabels(labels.lazy.map { Int($0) }, classCount: classCount)
        self.init(checked: pixels, labels: labels, rows: rows, columns: columns, classCount: classCount)
    }

    /// Images already checked (a prefix of a dataset's).
    private init(checked pixels: [UInt8], labels: [UInt8], rows: Int, columns: Int, classCount: Int) {
        self.storage = PixelStorage(pixels)
        self.labels = labels
        self.rows = rows
        self.columns = columns
        self.classCount = classCount
    }

    /// Every pixel, image after image, row after row (a copy).
    public var pixels: [UInt8] { Array(storage.bytes) }

    /// Image `index`'s pixels, row after row (a copy).
    public func image(at index: Int) -> [UInt8] {
        precondition(index >= 0 && index < count, "image \(index) is outside 0..<\(count)")
        let size = rows * columns
        return Array(UnsafeBufferPointer(rebasing: storage.bytes[(index * size)..<((index + 1) * size)]))
    }

    public var count: Int { labels.count }
    public var sampleShape: FeatureShape { .sequence(steps: rows, features: columns) }
    public func label(at index: Int) -> Int { Int(labels[index]) }

    /// The first `n` images (all of them when `n ≥ count`).
    public func prefix(_ n: Int) -> ImageDataset {
        let kept = min(max(n, 0), count)
        return ImageDataset(
            checked: Array(storage.bytes[0..<(kept * rows * columns)]), labels: Array(labels[0..<kept]),
            rows: rows, columns: columns, classCount: classCount)
    }

    public func gather<S: BLASScalar>(
        _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
    ) {
        for (b, index) in indices.enumerated() { labels[b] = Int32(self.labels[index]) }
        do {
            S.gatherImages(
                UnsafePointer(storage.bytes.baseAddress!), indices: indices, rows: rows, columns: columns, scale: 1 / S(255), into: x)
        }
    }
}

/// Samples held as a tensor `[N, steps, features]` (or `[N, features]`), batch-major as Keras
/// takes them, with integer labels and, optionally, each sample's true length.
public struct TensorDataset<Scalar: BLASScalar>: SequenceDataset {
    /// The samples, `[N, steps, features]` or `[N, features]`.
    public let inputs: Tensor<Scalar>
    /// One class per sample, in `0..<classCount`.
    public let labels: [Int]
    public let classCount: Int
    /// Each sample's true number of steps, in `1...steps` (the steps after it are padding, masked);
    /// nil when every step of every sample is real.
    public let lengths: [Int]?

    /// Samples `inputs` (batch-major, as Keras takes them) with their `labels` and, for padded
    /// sequences, their `lengths`.
    ///
    /// - Throws: `ModelError.invalidConfiguration` when `inputs` is not rank 2 or 3, there is not
    ///   one label (and one length) per sample, or `classCount < 1`; `.labelOutOfRange` for the
    ///   first label outside `0..<classCount` (a 1-based label of `classCount` included);
    ///   `.lengthOutOfRange` for the first length outside `1...steps`. Thrown in release builds too.
    public init(inputs: Tensor<Scalar>, labels: [Int], classCount: Int, lengths: [Int]? = nil) throws {
        guard inputs.shape.count == 2 || inputs.shape.count == 3 else {
            throw ModelError.invalidConfiguration("inputs must be [N, steps, features] or [N, features], got shape \(inputs.shape)")
        }
        guard inputs.shape[0] == labels.count else {
            throw ModelError.invalidConfiguration("\(inputs.shape[0]) samples but \(labels.count) labels")
        }
        try checkLabels(labels, classCount: classCount)
        if let lengths {
            guard lengths.count == labels.count else {
                throw ModelError.invalidConfiguration("\(labels.count) samples but \(lengths.count) lengths")
            }
            try checkLengths(lengths, steps: inputs.shape.count == 3 ? inputs.shape[1] : 1)
        }
        self.inputs = inputs
        self.labels = labels
        self.classCount = classCount
        self.lengths = lengths
    }

    public func length(at index: Int) -> Int? { lengths?[index] }

    public var count: Int { labels.count }
    public var sampleShape: FeatureShape {
        inputs.shape.count == 3 ? .sequence(steps: inputs.shape[1], features: inputs.shape[2]) : .vector(features: inputs.shape[1])
    }
    public func label(at index: Int) -> Int { labels[index] }

    public func gather<S: BLASScalar>(
        _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
    ) {
        let batch = indices.count, steps = sampleShape.steps, features = sampleShape.features
        inputs.scalars.withUnsafeBufferPointer { source in
            for (b, index) in indices.enumerated() {
                labels[b] = Int32(self.labels[index])
                for t in 0..<steps {
                    let row = source.baseAddress! + (index * steps + t) * features
                    let destination = x + (t * batch + b) * features
                    if S.self == Scalar.self {
                        // Same type: a copy, not the generic conversion (slow; see `Float.gatherImages`).
                        destination.update(from: UnsafeRawPointer(row).assumingMemoryBound(to: S.self), count: features)
                    } else {
                        for i in 0..<features { destination[i] = S(row[i]) }
                    }
                }
            }
        }
    }
}

/// Refuses a class count below 1 and the first label outside `0..<classCount`.
func checkLabels(_ labels: some Collection<Int>, classCount: Int) throws {
    guard classCount >= 1 else { throw ModelError.invalidConfiguration("class count must be at least 1, got \(classCount)") }
    for (position, label) in labels.enumerated() where label < 0 || label >= classCount {
        throw ModelError.labelOutOfRange(label: label, position: position, classes: classCount)
    }
}

/// Refuses the first length outside `1...steps`.
func checkLengths(_ lengths: [Int], steps: Int) throws {
    for (position, length) in lengths.enumerated() where length < 1 || length > steps {
        throw ModelError.lengthOutOfRange(length: length, position: position, steps: steps)
    }
}

/// Bytes in an anonymous mapping rounded up to whole 2 MiB pages, with transparent huge pages
/// requested for it (`MADV_HUGEPAGE`) before it is filled; plain pages where the kernel declines.
final class PixelStorage: @unchecked Sendable {
    let bytes: UnsafeMutableBufferPointer<UInt8>
    private let mapped: UnsafeMutableRawPointer?
    private let mappedSize: Int

    init(_ pixels: [UInt8]) {
        let hugePage = 2 << 20
        let size = max(1, (pixels.count + hugePage - 1) / hugePage * hugePage)
        let region = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let region, region != MAP_FAILED {
            madvise(region, size, MADV_HUGEPAGE)
            mapped = region
            mappedSize = size
            bytes = UnsafeMutableBufferPointer(start: region.assumingMemoryBound(to: UInt8.self), count: pixels.count)
        } else {
            mapped = nil
            mappedSize = 0
            bytes = UnsafeMutableBufferPointer.allocate(capacity: max(pixels.count, 1))
        }
        // An empty array may have no base address (a dataset of no images).
        pixels.withUnsafeBufferPointer { source in
            if let start = source.baseAddress, !source.isEmpty { memcpy(bytes.baseAddress!, start, source.count) }
        }
    }

    deinit {
        if let mapped { munmap(mapped, mappedSize) } else { bytes.deallocate() }
    }
}
