/// One copy of a model's layers with its own batch buffers: the unit of work of one thread.
///
/// Replica 0 holds the model's own layers; the others share their weight values and keep their
/// own activations and gradients, so shards of a batch run at once without locks.
final class Replica<Scalar: BLASScalar> {
    let layers: [any Layer<Scalar>]
    /// The layers' parameters in order: the model's own for replica 0, gradient-private copies otherwise.
    let parameters: [Parameter<Scalar>]
    let inputShape: FeatureShape
    private(set) var capacity = 0
    private(set) var input = Buffer<Scalar>(count: 0)        // [T, capacity, D]
    private(set) var labels = Buffer<Int32>(count: 0)        // [capacity]
    private var lossGradient = Buffer<Scalar>(count: 0)      // [capacity, classes]
    /// The last pass's summed loss and correct count, and its output `[batch, classes]`.
    private(set) var lossSum = 0.0
    private(set) var correct = 0
    private(set) var output: UnsafePointer<Scalar>?
    private(set) var lastBatchSize = 0

    /// The `Dense` that ends the model, kept typed (a cast per batch allocates). Nil only for
    /// models `compile` refuses, which never run a batch.
    private let softmaxHead: Dense<Scalar>?

    init(layers: [any Layer<Scalar>], inputShape: FeatureShape) {
        self.layers = layers
        self.softmaxHead = layers.last as? Dense<Scalar>
        self.parameters = layers.flatMap { $0.parameters }
        self.inputShape = inputShape
    }

    private var head: Dense<Scalar> { softmaxHead! }
    private var classes: Int { head.units }

    func reserve(_ newCapacity: Int) {
        guard newCapacity > capacity else { return }
        capacity = newCapacity
        for (i, layer) in layers.enumerated() { layer.reserve(batchCapacity: newCapacity, needsInputGradient: i > 0) }
        input = Buffer(count: inputShape.scalarCount * newCapacity)
        labels = Buffer(count: newCapacity)
        lossGradient = Buffer(count: head.outputShape.scalarCount * newCapacity)
    }

    /// Gathers the samples at `indices` into this replica's batch buffers.
    func gather(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) {
        data.gather(indices, into: input.pointer, labels: labels.pointer)
    }

    /// Copies samples `start..<start + count` of a time-major batch `x [T, batch, D]` (and of
    /// its labels, when given) into this replica's buffers.
    func pack(x: UnsafePointer<Scalar>, labels source: UnsafePointer<Int32>?, batch: Int, start: Int, count: Int) {
        let steps = inputShape.steps, features = inputShape.features
        for t in 0..<steps {
            (input.pointer + t * count * features).update(from: x + (t * batch + start) * features, count: count * features)
        }
        if let source { labels.pointer.update(from: source + start, count: count) }
    }

    /// Forward over `batchSize` samples of `x` (this replica's own buffer unless given), then the
    /// loss against `labels`; with a `gradientScale`, also the backward pass, leaving each
    /// parameter's gradient of `gradientScale · Σ loss`.
    func run(x: UnsafePointer<Scalar>? = nil, labels given: UnsafePointer<Int32>? = nil, batchSize: Int,
             gradientScale: Scalar?, backend: any Backend) {
        let activations = forward(x ?? UnsafePointer(input.pointer), batchSize: batchSize, backend: backend)
        (lossSum, correct) = Scalar.softmaxCrossEntropy(
            logits: head.lastPreActivation, probabilities: activations, labels: given ?? UnsafePointer(labels.pointer),
            rows: batchSize, classes: classes, gradientScale: gradientScale ?? 0,
            logitGradient: gradientScale == nil ? nil : lossGradient.pointer)
        guard gradientScale != nil else { return }
        var gradient = head.backward(preActivationGradient: lossGradient.pointer, batchSize: batchSize, backend: backend)
        for layer in layers.dropLast().reversed() {
            gradient = layer.backward(gradient!, batchSize: batchSize, backend: backend)
        }
    }

    /// Forward only over this replica's own batch, for prediction: no labels, no loss.
    func predict(batchSize: Int, backend: any Backend) {
        forward(UnsafePointer(input.pointer), batchSize: batchSize, backend: backend)
    }

    @discardableResult
    private func forward(_ x: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        var activations = x
        for layer in layers { activations = layer.forward(activations, batchSize: batchSize, backend: backend) }
        output = activations
        lastBatchSize = batchSize
        return activations
    }
}
