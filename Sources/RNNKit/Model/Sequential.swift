import Foundation

/// The loss a model is compiled with.
public enum Loss: String, Sendable {
    /// Categorical cross-entropy on softmax outputs (Keras's `categorical_crossentropy`), with
    /// the mean over the batch. Labels are class indices: the one-hot targets are implicit.
    case categoricalCrossentropy = "categorical_crossentropy"
}

/// The loss and accuracy of a batch or a whole pass.
public struct Metrics: Equatable, Sendable {
    /// Mean loss per sample.
    public var loss: Double
    /// Fraction of samples whose arg-max prediction equals the label.
    public var accuracy: Double
    /// Samples counted.
    public var samples: Int
}

/// Layers in a line, as Keras's `Sequential`: build, summarise, train on batches, evaluate and
/// predict in batches. Not thread-safe: a model and its buffers belong to one thread at a time.
///
/// Inputs reach the model as `SequenceDataset`s, or as raw time-major batches through
/// `trainStep(x:labels:batchSize:)` for callers who lay out their own batches.
public final class Sequential<Scalar: BLASScalar> {
    public let name: String
    public let inputShape: FeatureShape
    public let layers: [any Layer<Scalar>]
    /// Which arithmetic runs the layers. May be changed between batches.
    public var backend: any Backend
    public private(set) var optimizer: (any Optimizer<Scalar>)?
    public private(set) var loss: Loss = .categoricalCrossentropy

    private var capacity = 0
    private var batchInput = Buffer<Scalar>(count: 0)       // [T, capacity, D]
    private var batchLabels = Buffer<Int32>(count: 0)       // [capacity]
    private var lossGradient = Buffer<Scalar>(count: 0)     // [capacity, classes]
    private var batchIndices = Buffer<Int>(count: 0)        // [capacity]

    /// Builds every layer in turn, naming them as Keras does (`simple_rnn`, `simple_rnn_1`, …)
    /// and drawing their initial weights from `seed`.
    ///
    /// - Throws: `ModelError.incompatibleInput` when a layer cannot take the shape the layer
    ///   before it produces, or `invalidConfiguration` for an empty model.
    public init(name: String = "sequential", inputShape: FeatureShape, layers: [any Layer<Scalar>],
                seed: UInt64 = 0, backend: any Backend = BLASBackend()) throws {
        guard !layers.isEmpty else { throw ModelError.invalidConfiguration("a Sequential model needs at least one layer") }
        guard inputShape.scalarCount > 0 else { throw ModelError.invalidConfiguration("input shape \(inputShape) is empty") }
        self.name = name
        self.inputShape = inputShape
        self.layers = layers
        self.backend = backend
        var generator = RandomGenerator(seed: seed)
        var shape = inputShape
        var used: [String: Int] = [:]
        for layer in layers {
            let n = used[layer.nameStem, default: 0]
            used[layer.nameStem] = n + 1
            layer.name = n == 0 ? layer.nameStem : "\(layer.nameStem)_\(n)"
            shape = try layer.build(inputShape: shape, generator: &generator)
        }
    }

    /// The shape of one sample's output.
    public var outputShape: FeatureShape { layers.last!.outputShape }

    /// Every trainable weight, layer by layer, in Keras's order.
    public var parameters: [Parameter<Scalar>] { layers.flatMap { $0.parameters } }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Chooses the optimiser and the loss.
    /// - Throws: `invalidConfiguration` when the loss does not fit the last layer
    ///   (categorical cross-entropy needs a softmax `Dense` producing one vector per sample).
    public func compile(optimizer: any Optimizer<Scalar>, loss: Loss = .categoricalCrossentropy) throws {
        guard let head = layers.last as? Dense<Scalar>, head.activation == .softmax, case .vector = outputShape else {
            throw ModelError.invalidConfiguration(
                "categorical_crossentropy needs the last layer to be Dense with softmax producing (None, classes)")
        }
        self.optimizer = optimizer
        self.loss = loss
    }

    private var head: Dense<Scalar> { layers.last as! Dense<Scalar> }
    private var classes: Int { outputShape.features }

    /// Sizes every buffer for batches of up to `batchCapacity` samples. Called by the batch
    /// methods as needed; call it yourself to keep the first batch free of allocation.
    public func reserve(batchCapacity: Int) {
        precondition(batchCapacity > 0, "batch capacity must be positive, not \(batchCapacity)")
        guard batchCapacity > capacity else { return }
        capacity = batchCapacity
        for (i, layer) in layers.enumerated() {
            layer.reserve(batchCapacity: batchCapacity, needsInputGradient: i > 0)
        }
        batchInput = Buffer(count: inputShape.scalarCount * batchCapacity)
        batchLabels = Buffer(count: batchCapacity)
        lossGradient = Buffer(count: outputShape.scalarCount * batchCapacity)
        batchIndices = Buffer(count: batchCapacity)
    }

    // MARK: Batches

    /// The forward pass over one time-major batch `x` (`[T, batchSize, D]`); returns the last
    /// layer's output (`[batchSize, classes]`), owned by the model until its next pass.
    public func forward(x: UnsafePointer<Scalar>, batchSize: Int) -> UnsafePointer<Scalar> {
        reserve(batchCapacity: batchSize)
        var activations = x
        for layer in layers { activations = layer.forward(activations, batchSize: batchSize, backend: backend) }
        return activations
    }

    /// Forward, loss and backward over one batch: fills every parameter's gradient (of the mean
    /// loss) and returns the batch's metrics. Does not update the weights.
    ///
    /// - Parameters: `x` time-major `[T, batchSize, D]`; `labels` `batchSize` class indices.
    @discardableResult
    public func computeGradients(x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, batchSize: Int) -> Metrics {
        precondition(optimizer != nil, "compile the model before training it")
        let probabilities = forward(x: x, batchSize: batchSize)
        let (lossSum, correct) = Scalar.softmaxCrossEntropy(
            logits: head.lastPreActivation, probabilities: probabilities, labels: labels,
            rows: batchSize, classes: classes, gradientScale: 1 / Scalar(batchSize),
            logitGradient: lossGradient.pointer)
        var gradient = head.backward(preActivationGradient: lossGradient.pointer, batchSize: batchSize, backend: backend)
        for layer in layers.dropLast().reversed() {
            gradient = layer.backward(gradient!, batchSize: batchSize, backend: backend)
        }
        return Metrics(loss: lossSum / Double(batchSize), accuracy: Double(correct) / Double(batchSize), samples: batchSize)
    }

    /// One training step: `computeGradients`, then the optimiser's update, unless the loss or a
    /// gradient is not finite, in which case the weights are left as they were and
    /// `TrainingError.nonFinite` is thrown.
    @discardableResult
    public func trainStep(x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, batchSize: Int) throws -> Metrics {
        let metrics = computeGradients(x: x, labels: labels, batchSize: batchSize)
        guard metrics.loss.isFinite, parameters.allSatisfy({ Scalar.allFinite($0.gradient.pointer, count: $0.count) }) else {
            throw TrainingError.nonFinite(epoch: nil, step: nil, history: nil)
        }
        optimizer!.apply(to: parameters)
        return metrics
    }

    /// Gathers the samples at `indices` of `data` into the model's batch buffer.
    func gatherBatch(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) {
        precondition(data.sampleShape == inputShape, "samples of shape \(data.sampleShape) fed to a model built for \(inputShape)")
        reserve(batchCapacity: indices.count)
        data.gather(indices, into: batchInput.pointer, labels: batchLabels.pointer)
    }

    /// Gathers the contiguous samples `range` of `data` (no more than the reserved capacity).
    private func gatherBatch(_ data: some SequenceDataset, range: Range<Int>) {
        reserve(batchCapacity: range.count)
        for (i, index) in range.enumerated() { batchIndices.pointer[i] = index }
        gatherBatch(data, indices: UnsafeBufferPointer(start: batchIndices.pointer, count: range.count))
    }

    /// Trains on the samples at `indices` of `data` as one batch.
    @discardableResult
    public func trainStep(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) throws -> Metrics {
        gatherBatch(data, indices: indices)
        return try trainStep(x: batchInput.pointer, labels: batchLabels.pointer, batchSize: indices.count)
    }

    // MARK: Whole datasets

    func checkData(_ data: some SequenceDataset, range: Range<Int>?, batchSize: Int) throws -> Range<Int> {
        guard data.sampleShape == inputShape else {
            throw ModelError.invalidConfiguration("the data's samples are \(data.sampleShape), the model takes \(inputShape)")
        }
        guard data.classCount == classes else {
            throw ModelError.invalidConfiguration("the data has \(data.classCount) classes, the model predicts \(classes)")
        }
        guard batchSize > 0 else { throw ModelError.invalidConfiguration("batch size must be positive, got \(batchSize)") }
        let range = range ?? 0..<data.count
        guard range.lowerBound >= 0, range.upperBound <= data.count else {
            throw ModelError.invalidConfiguration("samples \(range) are outside the dataset's 0..<\(data.count)")
        }
        return range
    }

    /// Loss and accuracy over `range` of `data` (all of it by default), in batches.
    public func evaluate(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int = 32) throws -> Metrics {
        let range = try checkData(data, range: range, batchSize: batchSize)
        var lossSum = 0.0, correct = 0
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batchSize) {
            let batch = start..<min(start + batchSize, range.upperBound)
            gatherBatch(data, range: batch)
            let probabilities = forward(x: batchInput.pointer, batchSize: batch.count)
            let result = Scalar.softmaxCrossEntropy(
                logits: head.lastPreActivation, probabilities: probabilities, labels: batchLabels.pointer,
                rows: batch.count, classes: classes, gradientScale: 0, logitGradient: nil)
            lossSum += result.lossSum
            correct += result.correct
        }
        let n = Double(max(range.count, 1))
        return Metrics(loss: lossSum / n, accuracy: Double(correct) / n, samples: range.count)
    }

    /// The model's outputs for `range` of `data`: `[range.count, classes]` probabilities.
    public func predict(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int = 32) throws -> Tensor<Scalar> {
        let range = try checkData(data, range: range, batchSize: batchSize)
        var result = Tensor<Scalar>(shape: [range.count, classes])
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batchSize) {
            let batch = start..<min(start + batchSize, range.upperBound)
            gatherBatch(data, range: batch)
            let output = forward(x: batchInput.pointer, batchSize: batch.count)
            let offset = (start - range.lowerBound) * classes
            for i in 0..<(batch.count * classes) { result.scalars[offset + i] = output[i] }
        }
        return result
    }

    /// The input buffer of the current batch, for `fit` and the benchmarks.
    var currentBatch: (x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>) {
        (UnsafePointer(batchInput.pointer), UnsafePointer(batchLabels.pointer))
    }
}

/// Training stopped.
public enum TrainingError: Error, CustomStringConvertible {
    /// The loss or a gradient became NaN or infinite at this (1-based) epoch and step; the weights
    /// are those before that step; `history` holds the epochs that completed.
    case nonFinite(epoch: Int?, step: Int?, history: History?)

    public var description: String {
        switch self {
        case .nonFinite(let epoch, let step, _):
            let place = [epoch.map { "epoch \($0)" }, step.map { "step \($0)" }].compactMap { $0 }.joined(separator: ", ")
            return "the loss or its gradient became NaN or infinite" + (place.isEmpty ? "" : " at \(place)")
                + "; training stopped and the weights from before that step are kept"
        }
    }
}
