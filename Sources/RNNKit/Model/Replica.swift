/// One copy of a model's layers with its own batch buffers: the unit of work of one thread.
///
/// Replica 0 holds the model's own layers and arena; the others share their weight values and
/// keep their own activations and gradient arena, so shards of a batch run at once without locks.
final class Replica<Scalar: BLASScalar> {
    let layers: [any Layer<Scalar>]
    let arena: ParameterArena<Scalar>
    let inputShape: FeatureShape
    private(set) var capacity = 0
    private(set) var input = Buffer<Scalar>(count: 0) // [T, capacity, D]
    private(set) var labels = Buffer<Int32>(count: 0) // [rowsPerSample, capacity]
    private(set) var targets = Buffer<Scalar>(count: 0) // outputs' layout, for value losses
    private var lossGradient = Buffer<Scalar>(count: 0) // outputs' layout
    /// The last pass's figures and its output (the last layer's, time-major for sequences).
    private(set) var figures = BatchFigures()
    private(set) var output: UnsafePointer<Scalar>?
    /// The mask `[T, B]` that reached the last output (a sequence with padded steps), if one did.
    private(set) var outputMask: UnsafePointer<UInt8>?
    private(set) var lastBatchSize = 0

    /// The `Dense` that ends the model, if one does, kept typed (a cast per batch allocates).
    private let denseHead: Dense<Scalar>?
    private var loss: (any Loss)?
    private var entry = LossGradientEntry.output

    init(layers: [any Layer<Scalar>], arena: ParameterArena<Scalar>, inputShape: FeatureShape) {
        self.layers = layers
        recurrentLayers = layers.flatMap { layer -> [RecurrentLayer<Scalar>] in
            switch layer {
            case let recurrent as RecurrentLayer<Scalar>: [recurrent]
            case let bidirectional as Bidirectional<Scalar>: [bidirectional.forwardLayer, bidirectional.backwardLayer]
            default: []
            }
        }
        maskRoles = layers.map { MaskRole($0) }
        firstTrainable = layers.firstIndex { !$0.parameters.isEmpty } ?? layers.count
        masked = maskRoles.contains { if case .source = $0 { return true } else { return false } }
        self.arena = arena
        self.denseHead = RNNKit.denseHead(layers.last)
        self.outputShape = layers.last!.outputShape
        self.inputShape = inputShape
    }

    /// The recurrent layers (also inside `Bidirectional`), which read and write their rows of
    /// the whole batch's initial and final states (`setShard`).
    private let recurrentLayers: [RecurrentLayer<Scalar>]

    /// The next pass runs samples `offset..<offset + count` of a batch of `batch` samples: the
    /// recurrent layers use those rows of the states they share with the other replicas'.
    func setShard(offset: Int, of batch: Int) {
        for layer in recurrentLayers { layer.setShard(offset: offset, of: batch) }
    }

    /// The first layer with weights: the backward pass ends there, and only the layers after it
    /// compute d loss / d their input (Masking or Dropout in front need none).
    private let firstTrainable: Int

    /// Each layer's part in masking, and whether any layer masks.
    private let maskRoles: [MaskRole<Scalar>]
    /// Whether a pass set the recurrent layers' masks, which a pass without one must clear.
    private var readersHoldAMask = false
    private let masked: Bool

    /// Per-sample lengths of the next pass, as a mask `[T, B]` (a step masked from its sample's
    /// length on), read by the recurrent layers as a Masking layer's would be; used once.
    private var lengthMask = Buffer<UInt8>(count: 0)
    private var lengthsGiven = false
    /// The lengths a dataset gave for the samples `gather` last wrote, `[capacity]`.
    private var gatheredLengths = Buffer<Int32>(count: 0)

    /// The next pass's sequences have `lengths[b]` steps (the rest padding); nil: every step counts.
    func setLengths(_ lengths: UnsafePointer<Int32>?, count: Int) {
        guard let lengths else { return lengthsGiven = false }
        let steps = inputShape.steps
        for t in 0..<steps {
            for b in 0..<count { lengthMask.pointer[t * count + b] = t < Int(lengths[b]) ? 1 : 0 }
        }
        lengthsGiven = true
    }

    /// The updates applied before this pass: dropout masks are a function of it and the seeds.
    var trainingStep = 0

    /// Kept, not read from `layers.last` per batch: that allocates from unspecialised generic code.
    private let outputShape: FeatureShape
    /// Output rows per sample: the steps of a sequence output, else 1.
    private var rowsPerSample: Int { outputShape.steps }

    /// Sets the loss `compile` chose, with where its gradient enters the head.
    func compile(loss: any Loss, entry: LossGradientEntry) {
        self.loss = loss
        self.entry = entry
    }

    /// Sizes the buffers for shards of up to `newCapacity` samples of batches of up to `batchCapacity`.
    func reserve(_ newCapacity: Int, batchCapacity: Int, backend: any Backend) {
        for layer in recurrentLayers { layer.reserveSharedStates(batchCapacity: batchCapacity) }
        guard newCapacity > capacity else { return }
        capacity = newCapacity
        for (i, layer) in layers.enumerated() {
            layer.reserve(batchCapacity: newCapacity, needsInputGradient: i > firstTrainable, backend: backend)
        }
        input = Buffer(count: inputShape.scalarCount * newCapacity)
        lengthMask = Buffer(count: inputShape.steps * newCapacity)
        gatheredLengths = Buffer(count: newCapacity)
        labels = Buffer(count: rowsPerSample * newCapacity)
        targets = Buffer(count: outputShape.scalarCount * newCapacity)
        lossGradient = Buffer(count: outputShape.scalarCount * newCapacity)
    }

    /// Gathers the samples at `indices` into this replica's batch buffers, and sets the next
    /// pass's lengths to the dataset's (a sample without one counts every step; none: no mask).
    /// The model has checked the lengths are in `1...steps`.
    func gather(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) {
        data.gather(indices, into: input.pointer, labels: labels.pointer)
        if data.targetKind == .values { data.gatherTargets(indices, into: targets.pointer) }
        var any = false
        let steps = inputShape.steps
        for (b, index) in indices.enumerated() {
            if let length = data.length(at: index) {
                gatheredLengths.pointer[b] = Int32(length)
                any = true
            } else {
                gatheredLengths.pointer[b] = Int32(steps)
            }
        }
        setLengths(any ? UnsafePointer(gatheredLengths.pointer) : nil, count: indices.count)
    }

    /// Copies samples `start..<start + count` of time-major batches (`[steps, batch, width]`)
    /// into this replica's buffer of the same layout for `count` samples.
    private static func copyShard<T>(
        _ source: UnsafePointer<T>, into destination: UnsafeMutablePointer<T>,
        steps: Int, width: Int, batch: Int, start: Int, count: Int
    ) {
        for t in 0..<steps {
            (destination + t * count * width).update(from: source + (t * batch + start) * width, count: count * width)
        }
    }

    /// Copies samples `start..<start + count` of a time-major batch `x [T, batch, D]`, and of its
    /// labels (one per output row) or targets (the outputs' layout) when given, into this replica.
    func pack(
        x: UnsafePointer<Scalar>, labels sourceLabels: UnsafePointer<Int32>?, targets sourceTargets: UnsafePointer<Scalar>?,
        batch: Int, start: Int, count: Int
    ) {
        Self.copyShard(
            x, into: input.pointer, steps: inputShape.steps, width: inputShape.features,
            batch: batch, start: start, count: count)
        if let sourceLabels {
            Self.copyShard(sourceLabels, into: labels.pointer, steps: rowsPerSample, width: 1, batch: batch, start: start, count: count)
        }
        if let sourceTargets {
            Self.copyShard(
                sourceTargets, into: targets.pointer, steps: rowsPerSample, width: outputShape.features,
                batch: batch, start: start, count: count)
        }
    }

    /// Forward over `batchSize` samples of `x` (this replica's own buffer unless given), then the
    /// loss against the labels or targets (this replica's unless given); with a `gradientScale`,
    /// also the backward pass, leaving in the arena's gradients those of `gradientScale · Σ loss`.
    @_specialize(where Scalar == Float)
    func run(
        x: UnsafePointer<Scalar>? = nil, labels givenLabels: UnsafePointer<Int32>? = nil,
        targets givenTargets: UnsafePointer<Scalar>? = nil, batchSize: Int,
        gradientScale: Scalar?, backend: any Backend
    ) {
        guard let loss else { preconditionFailure("compile the model before computing a loss") }
        // Training (dropout active) exactly when the pass computes gradients.
        for layer in layers { layer.setTraining(gradientScale != nil, step: trainingStep) }
        let outputs = forward(x ?? UnsafePointer(input.pointer), batchSize: batchSize, backend: backend)
        let rows = rowsPerSample * batchSize
        let batch = LossBatch(
            outputs: outputs, preActivations: entry == .preActivation ? denseHead!.lastPreActivation : nil,
            labels: loss.targets == .classIndices ? givenLabels ?? UnsafePointer(labels.pointer) : nil,
            targets: loss.targets == .values ? givenTargets ?? UnsafePointer(targets.pointer) : nil,
            rows: rows, columns: outputShape.features, rowsPerSample: rowsPerSample, mask: outputMask)
        figures = loss.evaluate(
            batch, entry: entry, gradientScale: gradientScale,
            gradient: gradientScale == nil ? nil : lossGradient.pointer)
        guard gradientScale != nil else { return }
        var gradient: UnsafePointer<Scalar>?
        if entry == .preActivation {
            gradient = denseHead!.backward(preActivationGradient: lossGradient.pointer, batchSize: batchSize, backend: backend)
        } else {
            gradient = layers[layers.count - 1].backward(lossGradient.pointer, batchSize: batchSize, backend: backend)
        }
        for index in stride(from: layers.count - 2, through: firstTrainable, by: -1) {
            gradient = layers[index].backward(gradient!, batchSize: batchSize, backend: backend)
        }
    }

    /// Forward only, for prediction: no labels, no loss.
    func predict(x: UnsafePointer<Scalar>? = nil, batchSize: Int, backend: any Backend) {
        for layer in layers { layer.setTraining(false, step: trainingStep) }
        forward(x ?? UnsafePointer(input.pointer), batchSize: batchSize, backend: backend)
    }

    @discardableResult
    private func forward(_ x: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        var activations = x
        defer { lengthsGiven = false }
        outputMask = nil
        if masked || lengthsGiven {
            // The mask a Masking layer computes (or the lengths give) travels to the recurrent layers after it.
            readersHoldAMask = true
            (activations, outputMask) = MaskRole.forward(
                layers, roles: maskRoles, input: x,
                initialMask: lengthsGiven ? UnsafePointer(lengthMask.pointer) : nil,
                batchSize: batchSize, backend: backend)
        } else {
            // The recurrent layers still hold the mask of the last pass that had lengths.
            if readersHoldAMask { clearMasks() }
            for layer in layers { activations = layer.forward(activations, batchSize: batchSize, backend: backend) }
        }
        output = activations
        lastBatchSize = batchSize
        return activations
    }

    /// Hands every recurrent layer no mask.
    private func clearMasks() {
        for role in maskRoles { if case .reader(let setMask, _) = role { setMask(nil) } }
        readersHoldAMask = false
    }

    /// Writes the last output batch-major (`[batch, steps, features]` for sequences, as Keras
    /// returns it) at `destination`.
    func copyOutputBatchMajor(to destination: UnsafeMutablePointer<Scalar>) {
        let rows = rowsPerSample, width = outputShape.features, batch = lastBatchSize
        guard let output else { return }
        if rows == 1 { return destination.update(from: output, count: batch * width) }
        for t in 0..<rows {
            for b in 0..<batch {
                (destination + (b * rows + t) * width).update(from: output + (t * batch + b) * width, count: width)
            }
        }
    }
}
