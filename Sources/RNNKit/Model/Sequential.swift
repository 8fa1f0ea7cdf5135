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
/// predict in batches. Not thread-safe: a model and its buffers belong to one thread at a time
/// (which may hand shards of each batch to `workers` threads of its own).
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

    /// How many threads share each batch (data parallelism): the batch is cut into this many
    /// shards, each run forward and backward on its own thread against the same weights, and
    /// their gradients summed before one optimiser step. The result is the same as one thread's
    /// up to float rounding, and reproducible for a given number of workers. Small models need it
    /// most: OpenBLAS cannot split their tiny GEMMs across cores, but the shards of a batch run
    /// side by side (how far that scales is limited by a lock OpenBLAS takes in every call; see
    /// the README's performance notes). Keep OpenBLAS at one thread when using more than one
    /// worker (`BLASConfiguration.threads = 1`), so the two kinds of threads do not compete.
    public var workers: Int = 1 {
        didSet {
            precondition(workers >= 1, "workers must be 1 or more, not \(workers)")
            while replicas.count < workers {
                replicas.append(Replica(layers: layers.map { $0.replica() }, inputShape: inputShape))
            }
            replicas.removeLast(replicas.count - workers)
            pool = workers > 1 ? WorkerPool(threads: workers - 1) : nil
            let capacity = self.capacity
            self.capacity = 0
            if capacity > 0 { reserve(batchCapacity: capacity) }
        }
    }

    private var replicas: [Replica<Scalar>]
    private var pool: WorkerPool?
    private var capacity = 0
    private var indexBuffer = Buffer<Int>(count: 0)

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
        parameters = layers.flatMap { $0.parameters }
        replicas = [Replica(layers: layers, inputShape: inputShape)]
    }

    /// The shape of one sample's output.
    public var outputShape: FeatureShape { layers.last!.outputShape }

    /// Every trainable weight, layer by layer, in Keras's order.
    public let parameters: [Parameter<Scalar>]

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

    private var classes: Int { outputShape.features }

    /// Sizes every buffer for batches of up to `batchCapacity` samples. Called by the batch
    /// methods as needed; call it yourself to keep the first batch free of allocation.
    public func reserve(batchCapacity: Int) {
        precondition(batchCapacity > 0, "batch capacity must be positive, not \(batchCapacity)")
        guard batchCapacity > capacity else { return }
        capacity = batchCapacity
        let perShard = (batchCapacity + workers - 1) / workers
        for replica in replicas { replica.reserve(perShard) }
        indexBuffer = Buffer(count: batchCapacity)
    }

    // MARK: Sharding

    /// How many shards a batch of `batchSize` is cut into, and shard `i`'s samples.
    private func shards(_ batchSize: Int) -> Int { min(workers, batchSize) }

    private func shard(_ i: Int, of count: Int, batchSize: Int) -> Range<Int> {
        let base = batchSize / count, extra = batchSize % count
        let start = i * base + min(i, extra)
        return start..<(start + base + (i < extra ? 1 : 0))
    }

    /// Runs `body(i)` for every shard, on `count` threads when there is more than one. Sound
    /// because each shard touches only its own replica and its own slice of the batch, and the
    /// weights they share are only read until every shard has finished.
    private func forEachShard(_ count: Int, _ body: (Int) -> Void) {
        if count == 1 { body(0) } else { pool!.run(count, body) }
    }

    /// The summed figures of the shards of the last pass.
    private func metrics(shards: Int, batchSize: Int) -> Metrics {
        var lossSum = 0.0, correct = 0
        for replica in replicas.prefix(shards) {
            lossSum += replica.lossSum
            correct += replica.correct
        }
        return Metrics(loss: lossSum / Double(batchSize), accuracy: Double(correct) / Double(batchSize), samples: batchSize)
    }

    /// Adds the other shards' gradients into the model's own.
    private func reduceGradients(shards: Int) {
        // Index loops: `zip` from unspecialised generic code allocates on every step.
        for shard in stride(from: 1, to: shards, by: 1) {
            let theirs = replicas[shard].parameters
            for k in 0..<parameters.count {
                Scalar.add(theirs[k].gradient.pointer, into: parameters[k].gradient.pointer, count: parameters[k].count)
            }
        }
    }

    // MARK: Batches

    /// Forward, loss and backward over one batch: fills every parameter's gradient (of the mean
    /// loss) and returns the batch's metrics. Does not update the weights.
    ///
    /// - Parameters: `x` time-major `[T, batchSize, D]`; `labels` `batchSize` class indices.
    @discardableResult
    public func computeGradients(x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, batchSize: Int) -> Metrics {
        precondition(optimizer != nil, "compile the model before training it")
        reserve(batchCapacity: batchSize)
        if shards(batchSize) == 1 {
            // One shard reads the caller's batch where it lies.
            replicas[0].run(x: x, labels: labels, batchSize: batchSize, gradientScale: 1 / Scalar(batchSize), backend: backend)
            return metrics(shards: 1, batchSize: batchSize)
        }
        return trainShards(batchSize: batchSize) { replica, samples in
            replica.pack(x: x, labels: labels, batch: batchSize, start: samples.lowerBound, count: samples.count)
        }
    }

    /// Loads each shard's samples with `load`, runs forward, loss and backward on every shard at
    /// once, and sums the gradients into the model's own; returns the batch's metrics.
    private func trainShards(batchSize: Int, load: (Replica<Scalar>, Range<Int>) -> Void) -> Metrics {
        let count = shards(batchSize), scale = 1 / Scalar(batchSize)
        forEachShard(count) { i in
            let samples = shard(i, of: count, batchSize: batchSize)
            load(replicas[i], samples)
            replicas[i].run(batchSize: samples.count, gradientScale: scale, backend: backend)
        }
        reduceGradients(shards: count)
        return metrics(shards: count, batchSize: batchSize)
    }

    /// One training step: `computeGradients`, then the optimiser's update, unless the loss or a
    /// gradient is not finite, in which case the weights are left as they were and
    /// `TrainingError.nonFinite` is thrown.
    @discardableResult
    public func trainStep(x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, batchSize: Int) throws -> Metrics {
        try applyUpdate(computeGradients(x: x, labels: labels, batchSize: batchSize))
    }

    /// Trains on the samples at `indices` of `data` as one batch, each shard gathering its own
    /// samples straight into its time-major buffer.
    @discardableResult
    public func trainStep(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) throws -> Metrics {
        precondition(optimizer != nil, "compile the model before training it")
        precondition(data.sampleShape == inputShape, "samples of shape \(data.sampleShape) fed to a model built for \(inputShape)")
        reserve(batchCapacity: indices.count)
        return try applyUpdate(trainShards(batchSize: indices.count) { replica, samples in
            replica.gather(data, indices: UnsafeBufferPointer(rebasing: indices[samples]))
        })
    }

    private func applyUpdate(_ metrics: Metrics) throws -> Metrics {
        // A plain loop: `allSatisfy` from unspecialised generic code allocates for every element.
        var finite = metrics.loss.isFinite
        for parameter in parameters where finite {
            finite = Scalar.allFinite(parameter.gradient.pointer, count: parameter.count)
        }
        guard finite else { throw TrainingError.nonFinite(epoch: nil, step: nil, history: nil) }
        optimizer!.apply(to: parameters)
        return metrics
    }

    /// The model's outputs for one time-major batch `x [T, batchSize, D]`, written to
    /// `output [batchSize, classes]`.
    public func predict(x: UnsafePointer<Scalar>, batchSize: Int, into output: UnsafeMutablePointer<Scalar>) {
        reserve(batchCapacity: batchSize)
        let count = shards(batchSize)
        forEachShard(count) { i in
            let samples = shard(i, of: count, batchSize: batchSize)
            let replica = replicas[i]
            replica.pack(x: x, labels: nil, batch: batchSize, start: samples.lowerBound, count: samples.count)
            replica.predict(batchSize: samples.count, backend: backend)
            (output + samples.lowerBound * classes).update(from: replica.output!, count: samples.count * classes)
        }
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

    /// Runs `range` of `data` through the model in batches, shards in parallel, calling
    /// `visit(start, shard)` for each shard after its forward pass (and loss, with `withLoss`).
    private func sweep(_ data: some SequenceDataset, range: Range<Int>, batchSize: Int, withLoss: Bool,
                       visit: (Int, Replica<Scalar>) -> Void) {
        reserve(batchCapacity: batchSize)
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batchSize) {
            let size = min(batchSize, range.upperBound - start)
            for i in 0..<size { indexBuffer.pointer[i] = start + i }
            let count = shards(size)
            forEachShard(count) { i in
                let samples = shard(i, of: count, batchSize: size)
                let replica = replicas[i]
                replica.gather(data, indices: UnsafeBufferPointer(start: indexBuffer.pointer + samples.lowerBound, count: samples.count))
                if withLoss {
                    replica.run(batchSize: samples.count, gradientScale: nil, backend: backend)
                } else {
                    replica.predict(batchSize: samples.count, backend: backend)
                }
            }
            for i in 0..<count { visit(start + shard(i, of: count, batchSize: size).lowerBound, replicas[i]) }
        }
    }

    /// Loss and accuracy over `range` of `data` (all of it by default), in batches.
    public func evaluate(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int = 32) throws -> Metrics {
        let range = try checkData(data, range: range, batchSize: batchSize)
        var lossSum = 0.0, correct = 0
        sweep(data, range: range, batchSize: batchSize, withLoss: true) { _, replica in
            lossSum += replica.lossSum
            correct += replica.correct
        }
        let n = Double(max(range.count, 1))
        return Metrics(loss: lossSum / n, accuracy: Double(correct) / n, samples: range.count)
    }

    /// The model's outputs for `range` of `data`: `[range.count, classes]` probabilities.
    public func predict(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int = 32) throws -> Tensor<Scalar> {
        let range = try checkData(data, range: range, batchSize: batchSize)
        var result = Tensor<Scalar>(shape: [range.count, classes])
        let classes = self.classes
        result.scalars.withUnsafeMutableBufferPointer { result in
            sweep(data, range: range, batchSize: batchSize, withLoss: false) { start, replica in
                let rows = replica.lastBatchSize
                (result.baseAddress! + (start - range.lowerBound) * classes).update(from: replica.output!, count: rows * classes)
            }
        }
        return result
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
