import Foundation

/// The loss and accuracy of a batch or a whole pass.
public struct Metrics: Equatable, Sendable {
    /// Mean loss per sample.
    public var loss: Double
    /// The loss's accuracy metric (e.g. the fraction of samples whose arg-max prediction equals
    /// the label); NaN for a loss without one.
    public var accuracy: Double
    /// Samples counted.
    public var samples: Int

    /// Figures as given: `loss` a mean per sample, `accuracy` a fraction (or NaN), over `samples` samples.
    public init(loss: Double, accuracy: Double, samples: Int) {
        self.loss = loss
        self.accuracy = accuracy
        self.samples = samples
    }

    init(_ figures: BatchFigures) {
        self.init(
            loss: figures.lossSum / Double(max(figures.samples, 1)),
            accuracy: figures.counted > 0 ? figures.correct / figures.counted : .nan, samples: figures.samples)
    }
}

/// Layers in a line, as Keras's `Sequential`: build, summarise, train on batches, evaluate and
/// predict in batches. Not thread-safe: a model and its buffers belong to one thread at a time
/// (which may hand shards of each batch to `workers` threads of its own).
///
/// Inputs reach the model as `SequenceDataset`s, or as raw time-major batches through
/// `trainStep(x:labels:batchSize:)` for callers who lay out their own batches.
public final class Sequential<Scalar: BLASScalar> {
    /// The model's name (`sequential` by default), as the summary and Keras files show it.
    public let name: String
    /// The shape of one input sample, without the batch axis (Keras's `input_shape`).
    public let inputShape: FeatureShape
    /// The layers in order, built and named (`simple_rnn`, `simple_rnn_1`, …).
    public let layers: [any Layer<Scalar>]
    /// Which arithmetic runs the layers. May be changed between batches.
    public var backend: any Backend
    /// The optimiser `compile` chose; nil until then.
    public private(set) var optimizer: (any Optimizer<Scalar>)?
    /// The loss `compile` chose; nil until then (`predict` needs none).
    public private(set) var loss: (any Loss)?
    /// Combines each step's shard gradients and figures (the in-process sum by default).
    public var reducer: any GradientReducer<Scalar> = InProcessReducer<Scalar>()
    /// Every weight and gradient of the model, contiguous.
    public let arena: ParameterArena<Scalar>

    /// How many threads share each batch (data parallelism): the batch is cut into this many
    /// shards, each run forward and backward on its own thread against the same weights, and
    /// their gradients summed before one optimiser step. The result is the same as one thread's
    /// up to float rounding, and reproducible for a given number of workers. Small models need it
    /// most: OpenBLAS cannot split their tiny GEMMs across cores, but the shards of a batch run
    /// side by side. Keep OpenBLAS at one thread when using more than one worker
    /// (`BLASConfiguration.threads = 1`), so the two kinds of threads do not compete.
    /// A recurrent layer's encoder–decoder states (`setInitialState`, `setFinalCellGradient`,
    /// `finalState`, `initialStateGradient`) stay the whole batch's: each worker's replica of the
    /// layer reads and writes its shard's rows of them.
    public var workers: Int = 1 {
        didSet {
            precondition(workers >= 1, "workers must be 1 or more, not \(workers)")
            while replicas.count < workers {
                let layers = self.layers.map { $0.replica() }
                let arena = ParameterArena(gradientsOf: layers.flatMap { $0.parameters }, sharingValuesWith: self.arena)
                let replica = Replica(layers: layers, arena: arena, inputShape: inputShape)
                if let loss { replica.compile(loss: loss, entry: lossEntry) }
                replicas.append(replica)
            }
            replicas.removeLast(replicas.count - workers)
            gradientArenas = replicas.map { $0.arena.gradients.pointer }
            shardFigures = Array(repeating: BatchFigures(), count: workers)
            pool = workers > 1 ? WorkerPool(threads: workers - 1) : nil
            let capacity = self.capacity
            self.capacity = 0
            if capacity > 0 { reserve(batchCapacity: capacity) }
        }
    }

    private var replicas: [Replica<Scalar>]
    private var gradientArenas: [UnsafeMutablePointer<Scalar>]
    private var shardFigures = [BatchFigures()]
    private var lossEntry = LossGradientEntry.output
    private var pool: WorkerPool?
    private var capacity = 0
    private var indexBuffer = Buffer<Int>(count: 0)

    /// Builds every layer in turn, naming them as Keras does (`simple_rnn`, `simple_rnn_1`, …)
    /// and drawing their initial weights from `seed`, then moves every weight into the arena.
    ///
    /// - Parameters:
    ///   - name: the model's name.
    ///   - inputShape: the shape of one sample.
    ///   - layers: the layers, unbuilt.
    ///   - batchSize: the one batch size the model takes (Keras's `batch_shape`), needed by
    ///     stateful layers; nil (the default) for any.
    ///   - seed: draws the initial weights.
    ///   - backend: which arithmetic runs the layers.
    /// - Throws: `ModelError.incompatibleInput` when a layer cannot take the shape the layer
    ///   before it produces, or `invalidConfiguration` for an empty model or an empty input shape,
    ///   a batch size outside `1...65536`, or a stateful layer without a batch size, inside
    ///   `Bidirectional` or reading backwards.
    public init(
        name: String = "sequential", inputShape: FeatureShape, layers: [any Layer<Scalar>], batchSize: Int? = nil,
        seed: UInt64 = 0, backend: any Backend = BLASBackend()
    ) throws {
        guard !layers.isEmpty else { throw ModelError.invalidConfiguration("a Sequential model needs at least one layer") }
        statefulLayers = try Self.statefulLayers(layers, batchSize: batchSize)
        if case .sequence(let steps, let features) = inputShape {
            // Checked before any product of the two is formed: a shape read from a file can be anything.
            guard steps > 0, features > 0, !steps.multipliedReportingOverflow(by: features).overflow else {
                throw ModelError.invalidConfiguration("input shape \(inputShape) is empty or too large to count")
            }
        }
        guard inputShape.scalarCount > 0 else { throw ModelError.invalidConfiguration("input shape \(inputShape) is empty") }
        self.name = name
        self.inputShape = inputShape
        self.layers = layers
        self.batchSize = batchSize
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
        outputShape = shape
        lengthsReachOutput = MaskRole.maskReachesOutput(layers, fromInput: true)
        maskingReachesOutput = MaskRole.maskReachesOutput(layers)
        firstEmbedding = layers.first as? Embedding<Scalar>
        arena = ParameterArena(layers.flatMap { $0.parameters })
        replicas = [Replica(layers: layers, arena: arena, inputShape: inputShape)]
        gradientArenas = [arena.gradients.pointer]
        if let batchSize { for layer in statefulLayers { layer.reserveCarriedState(batchSize: batchSize) } }
    }

    /// The model's stateful layers, once every one is known to be one a model can carry.
    private static func statefulLayers(_ layers: [any Layer<Scalar>], batchSize: Int?) throws -> [RecurrentLayer<Scalar>] {
        if let batchSize, !(1...(1 << 16)).contains(batchSize) {
            throw ModelError.invalidConfiguration("a model's fixed batch size must be in 1...65536, not \(batchSize)")
        }
        var stateful: [RecurrentLayer<Scalar>] = []
        for layer in layers {
            if let bidirectional = layer as? Bidirectional<Scalar>, bidirectional.forwardLayer.stateful {
                throw ModelError.invalidConfiguration(
                    "\(bidirectional.forwardLayer.typeName) in a Bidirectional layer cannot be stateful: its backward half starts from the sequence's end"
                )
            }
            guard let recurrent = layer as? RecurrentLayer<Scalar>, recurrent.stateful else { continue }
            guard !recurrent.goBackwards else {
                throw ModelError.invalidConfiguration(
                    "\(recurrent.typeName) cannot be both stateful and goBackwards: a state carried forward does not continue a sequence read backwards"
                )
            }
            guard batchSize != nil else {
                throw ModelError.invalidConfiguration(
                    "a stateful \(recurrent.typeName) carries row b of each batch into row b of the next, so the model needs a fixed batch size: pass batchSize:"
                )
            }
            stateful.append(recurrent)
        }
        return stateful
    }

    /// The one batch size the model takes (Keras's fixed `batch_shape`), or nil for any. Set when
    /// the model has stateful layers: every batch, of training, evaluation or prediction, is then
    /// this many samples, and a dataset's sample count a multiple of it.
    public let batchSize: Int?

    /// The recurrent layers that carry their state from batch to batch (Keras's `stateful`).
    let statefulLayers: [RecurrentLayer<Scalar>]

    /// Whether any layer is stateful: batches then continue the sequences of the one before.
    public var isStateful: Bool { !statefulLayers.isEmpty }

    /// Starts every stateful layer's sequences from zeros again (Keras's `reset_states()`), as
    /// `fit` does at the start of each epoch and of its validation.
    public func resetStates() {
        for layer in statefulLayers { layer.resetStates() }
    }

    /// After a batch: its final states become those the next batch starts from.
    private func commitStates() {
        for layer in statefulLayers { layer.commitCarriedState() }
    }

    /// Refuses a stateful model whose batches processes would share: each process would carry
    /// only its own rows of the state.
    func checkStatefulProcesses() throws {
        guard isStateful, reducer.processCount > 1 else { return }
        throw ModelError.invalidConfiguration(
            "a stateful model runs in one process: its batches continue each other row by row, which processes sharing the batches would break"
        )
    }

    /// Refuses a batch of another size than a fixed-batch model's.
    func checkFixedBatch(_ count: Int) throws {
        try checkStatefulProcesses()
        guard let batchSize, count != batchSize else { return }
        throw ModelError.invalidConfiguration(
            "the model takes batches of exactly \(batchSize) sample\(batchSize == 1 ? "" : "s") (its fixed batchSize\(isStateful ? ", for its stateful layers" : "")), not \(count)"
        )
    }

    /// The shape of one sample's output.
    public let outputShape: FeatureShape

    /// Whether per-sample lengths, or a `Masking` layer's mask, reach the model's output, making
    /// the loss a mean over the steps they keep (worked out once: read every step).
    private let lengthsReachOutput: Bool
    private let maskingReachesOutput: Bool
    /// The first layer when it is an `Embedding`, whose ids are checked before every pass; found
    /// once here, as a cast in every step would allocate.
    let firstEmbedding: Embedding<Scalar>?
    /// A stateful model's session for pieces of another length than its steps (`predict(_:)`),
    /// made at the first such piece.
    var piecesSession: StreamingSession<Scalar>?

    /// Every trainable weight, layer by layer, in Keras's order.
    public var parameters: [Parameter<Scalar>] { arena.parameters }

    /// The number of trainable scalars.
    public var parameterCount: Int { arena.count }

    /// Chooses the optimiser and the loss (Keras's `compile`).
    /// - Throws: `ModelError.lossDoesNotFitHead` when the loss cannot serve the last layer, naming what it needs.
    ///
    /// When a mask reaches a sequence output (a `Masking` layer, or per-sample `lengths:`, before
    /// recurrent layers that return sequences), the loss and its accuracy count only the steps the
    /// mask keeps: the batch's loss is their mean, as Keras's.
    public func compile(optimizer: any Optimizer<Scalar>, loss: any Loss = CategoricalCrossentropy()) throws {
        let head = LossHead(outputShape: outputShape, denseActivation: denseHead(layers.last)?.activation)
        let entry = try loss.gradientEntry(for: head)
        self.optimizer = optimizer
        self.loss = loss
        lossEntry = entry
        for replica in replicas { replica.compile(loss: loss, entry: entry) }
    }

    /// Sizes every buffer for batches of up to `batchCapacity` samples. Called by the batch
    /// methods as needed; call it yourself to keep the first batch free of allocation.
    public func reserve(batchCapacity: Int) {
        precondition(batchCapacity > 0, "batch capacity must be positive, not \(batchCapacity)")
        guard batchCapacity > capacity else { return }
        capacity = batchCapacity
        let perShard = (batchCapacity + workers - 1) / workers
        for replica in replicas { replica.reserve(perShard, batchCapacity: batchCapacity, backend: backend) }
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

    // MARK: Batches

    /// Refuses a raw batch whose labels or targets do not fit the compiled loss, before any kernel runs.
    private func checkTargets(labels: UnsafePointer<Int32>?, targets: UnsafePointer<Scalar>?, batchSize: Int) throws {
        guard let loss, optimizer != nil else { throw ModelError.notCompiled(action: "training") }
        guard batchSize > 0 else { throw ModelError.invalidConfiguration("batch size must be positive, got \(batchSize)") }
        switch loss.targets {
        case .classIndices:
            guard let labels else { throw ModelError.targetsMismatch(loss: loss.name, needs: .classIndices, fromDataset: false) }
            let classes = outputShape.features, rows = outputShape.steps * batchSize
            for i in 0..<rows where labels[i] < 0 || Int(labels[i]) >= classes {
                throw ModelError.labelOutOfRange(label: Int(labels[i]), position: i, classes: classes)
            }
        case .values:
            guard targets != nil else { throw ModelError.targetsMismatch(loss: loss.name, needs: .values, fromDataset: false) }
        }
    }

    /// Refuses lengths outside `1…steps`.
    private func checkLengths(_ lengths: UnsafePointer<Int32>?, batchSize: Int) throws {
        guard let lengths else { return }
        let steps = inputShape.steps
        for b in 0..<batchSize where lengths[b] < 1 || Int(lengths[b]) > steps {
            throw ModelError.lengthOutOfRange(length: Int(lengths[b]), position: b, steps: steps)
        }
    }

    /// Whether this batch's loss is a mean over masked steps: the shards then return the
    /// gradient of the summed loss, scaled once the batch's counted steps are known.
    private func lossIsMasked(lengthsGiven: Bool) -> Bool {
        maskingReachesOutput || (lengthsGiven && lengthsReachOutput)
    }

    /// The whole batch's figures with a masked loss made Keras's mean over the counted steps,
    /// the arena's gradient scaled to match.
    private func finishBatch(_ reduced: BatchFigures) -> BatchFigures {
        var figures = reduced
        if let scale = figures.normalizeMaskedLoss() { Scalar.scale(arena.gradients.pointer, by: Scalar(scale), count: arena.count) }
        return regularized(figures)
    }

    /// The weights' regularisation penalties (Keras's `model.losses`, summed), added to a training
    /// step's loss.
    public var regularizationPenalty: Double {
        var total = 0.0
        for parameter in arena.parameters {
            if let regularizer = parameter.regularizer {
                total += regularizer.penalty(parameter.value.pointer, count: parameter.count)
            }
        }
        return total
    }

    /// The whole batch's figures (a mean over samples) with the regularisation penalties added to
    /// the loss and their gradients to the arena's. Called once per step, after the shards' (and
    /// processes') gradients are summed and scaled, so the penalty counts once whatever the
    /// number of workers: every process holds the same weights, so each adds the same term.
    private func regularized(_ figures: BatchFigures) -> BatchFigures {
        var figures = figures, penalty = 0.0
        let parameters = arena.parameters
        // An index loop: iterators from unspecialised generic code can allocate, and this runs every step.
        for i in 0..<parameters.count {
            let parameter = parameters[i]
            guard let regularizer = parameter.regularizer else { continue }
            penalty += regularizer.penalty(parameter.value.pointer, count: parameter.count)
            regularizer.addGradient(parameter.value.pointer, into: parameter.gradient.pointer, count: parameter.count)
        }
        guard penalty != 0 else { return figures }
        figures.lossSum += penalty * Double(max(figures.samples, 1))
        figures.finite = figures.finite && figures.lossSum.isFinite
        return figures
    }

    /// Forward, loss and backward over one batch: fills every parameter's gradient (of the mean
    /// loss) and returns the batch's metrics. Does not update the weights; a stateful model's
    /// states move on to the batch's end, as in a training step.
    ///
    /// - Parameters: `x` time-major `[T, batchSize, D]`; `labels` one class index per output row
    ///   (`[batchSize]`, or `[T, batchSize]` for sequence outputs) for class losses.
    /// - Throws: `ModelError.notCompiled`; `.labelOutOfRange` for a label outside the classes,
    ///   `.lengthOutOfRange` for a length outside `1...T`, `.targetsMismatch` when the loss compares
    ///   with target values; `.invalidConfiguration` for an id that is not a whole number in
    ///   `0..<inputDim` when the first layer is an `Embedding`; all before any kernel runs.
    @discardableResult
    public func computeGradients(
        x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>? = nil,
        batchSize: Int
    ) throws -> Metrics {
        try rawBatch(x: x, labels: labels, targets: nil, lengths: lengths, batchSize: batchSize, update: false)
    }

    /// As `computeGradients(x:labels:batchSize:)`, for losses that compare with values (mean
    /// squared error, binary cross-entropy): `targets` in the outputs' layout (`[batchSize, F]`,
    /// or time-major `[T, batchSize, F]` for sequence outputs).
    @discardableResult
    public func computeGradients(
        x: UnsafePointer<Scalar>, targets: UnsafePointer<Scalar>, lengths: UnsafePointer<Int32>? = nil,
        batchSize: Int
    ) throws -> Metrics {
        try rawBatch(x: x, labels: nil, targets: targets, lengths: lengths, batchSize: batchSize, update: false)
    }

    /// Every raw-batch entry point: checks the labels or targets, then, holding the BLAS gate,
    /// computes the gradients and (with `update`) applies the optimiser step.
    private func rawBatch(
        x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>?, targets: UnsafePointer<Scalar>?,
        lengths: UnsafePointer<Int32>? = nil, batchSize: Int, update: Bool
    ) throws -> Metrics {
        try checkTargets(labels: labels, targets: targets, batchSize: batchSize)
        try checkFixedBatch(batchSize)
        try checkLengths(lengths, batchSize: batchSize)
        try firstEmbedding?.checkIDs(x, batchSize: batchSize)
        return try BLASConfiguration.passGate.shared {
            reserve(batchCapacity: batchSize)
            setTrainingStep()
            let figures: BatchFigures
            let scale = lossIsMasked(lengthsGiven: lengths != nil) ? 1 : 1 / Scalar(batchSize)
            if shards(batchSize) == 1, reducer.processCount == 1 {
                // One shard reads the caller's batch where it lies.
                replicas[0].setLengths(lengths, count: batchSize)
                replicas[0].run(
                    x: x, labels: labels, targets: targets, batchSize: batchSize,
                    gradientScale: scale, backend: backend)
                shardFigures[0] = replicas[0].figures
                figures = try finishBatch(reducer.reduce(gradients: gradientArenas, figures: shardFigures, shards: 1, count: arena.count))
            } else {
                figures = try finishBatch(
                    trainShards(batchSize: batchSize, gradientScale: scale) { replica, samples in
                        replica.pack(
                            x: x, labels: labels, targets: targets, batch: batchSize, start: samples.lowerBound, count: samples.count)
                        replica.setLengths(lengths.map { $0 + samples.lowerBound }, count: samples.count)
                    })
            }
            // A refused step (not finite, or labels outside the classes) leaves the states too.
            if update {
                let metrics = try applyUpdate(figures)
                commitStates()
                return metrics
            }
            if figures.finite, figures.invalidLabels == 0 { commitStates() }
            return Metrics(figures)
        }
    }

    /// Tells every replica which update comes next, so dropout's masks follow from the step
    /// (and a resumed run draws the masks an uninterrupted one would have). Each process of an MPI
    /// job counts its own steps apart (step · processes + process), so ranks draw different masks.
    private func setTrainingStep() {
        let step = (optimizer?.iterations ?? 0) &* reducer.processCount &+ reducer.processIndex
        for replica in replicas { replica.trainingStep = step }
    }

    /// This process's contiguous share of a batch of `batchSize` that every process of the
    /// reducer was handed (all of it in one process).
    private func processShare(_ batchSize: Int) -> Range<Int> {
        let processes = reducer.processCount
        return processes == 1 ? 0..<batchSize : shard(reducer.processIndex, of: processes, batchSize: batchSize)
    }

    /// Loads each shard of this process's share of the batch with `load` (given the samples'
    /// positions in the whole batch), runs forward, loss and backward on every shard at once, and
    /// reduces the gradients (of `gradientScale ·` the whole batch's summed loss) into the model's
    /// arena; returns the batch's figures. A process whose share is empty (a batch smaller than
    /// the processes) still takes part in the reduction, with zero gradients.
    @_specialize(where Scalar == Float)
    private func trainShards(
        batchSize: Int, gradientScale scale: Scalar,
        load: (Replica<Scalar>, Range<Int>) -> Void
    ) throws -> BatchFigures {
        setTrainingStep()
        let share = processShare(batchSize), count = min(workers, share.count)
        guard count > 0 else {
            gradientArenas[0].update(repeating: 0, count: arena.count)
            shardFigures[0] = BatchFigures()
            return try reducer.reduce(gradients: gradientArenas, figures: shardFigures, shards: 1, count: arena.count)
        }
        forEachShard(count) { i in
            let part = shard(i, of: count, batchSize: share.count)
            let samples = (share.lowerBound + part.lowerBound)..<(share.lowerBound + part.upperBound)
            load(replicas[i], samples)
            replicas[i].setShard(offset: samples.lowerBound, of: batchSize)
            replicas[i].run(batchSize: samples.count, gradientScale: scale, backend: backend)
        }
        for i in 0..<count { shardFigures[i] = replicas[i].figures }
        return try reducer.reduce(gradients: gradientArenas, figures: shardFigures, shards: count, count: arena.count)
    }

    /// One training step: the gradients, then the optimiser's update, unless the loss or a
    /// gradient is not finite, in which case the weights are left as they were and
    /// `TrainingError.nonFinite` is thrown.
    @discardableResult
    public func trainStep(
        x: UnsafePointer<Scalar>, labels: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>? = nil,
        batchSize: Int
    ) throws -> Metrics {
        try rawBatch(x: x, labels: labels, targets: nil, lengths: lengths, batchSize: batchSize, update: true)
    }

    /// One training step against target values (see `computeGradients(x:targets:batchSize:)`).
    @discardableResult
    public func trainStep(
        x: UnsafePointer<Scalar>, targets: UnsafePointer<Scalar>, lengths: UnsafePointer<Int32>? = nil,
        batchSize: Int
    ) throws -> Metrics {
        try rawBatch(x: x, labels: nil, targets: targets, lengths: lengths, batchSize: batchSize, update: true)
    }

    /// Trains on the samples at `indices` of `data` as one batch, each shard gathering its own
    /// samples straight into its time-major buffer.
    /// The dataset's lengths (``SequenceDataset/length(at:)``) mask padded steps as the raw-batch
    /// `lengths:` do, and its targets are its labels or, for a loss of values, its target values.
    /// - Throws: `ModelError.notCompiled`, `.sampleShapeMismatch` or `.classCountMismatch` for data
    ///   that does not fit the model, `.targetsMismatch` or `.invalidConfiguration` for targets of the
    ///   other kind than the loss's (or of another shape than the output), `.indexOutOfRange` for an
    ///   index outside the dataset, `.lengthOutOfRange` for one of the samples' lengths outside
    ///   `1...steps`, and `.labelsOutOfRange` (the weights unchanged) when the dataset gave labels
    ///   outside the classes.
    @discardableResult
    public func trainStep(_ data: some SequenceDataset, indices: UnsafeBufferPointer<Int>) throws -> Metrics {
        guard optimizer != nil else { throw ModelError.notCompiled(action: "training") }
        guard !indices.isEmpty else { throw ModelError.invalidConfiguration("a batch needs at least one sample index") }
        try checkFixedBatch(indices.count)
        _ = try checkData(data, range: nil, batchSize: indices.count, needsLabels: true, checkingLengths: false)
        for (position, index) in indices.enumerated() where index < 0 || index >= data.count {
            throw ModelError.indexOutOfRange(index: index, position: position, count: data.count)
        }
        let lengthsGiven = try checkLengths(of: data, at: indices)
        try checkIDs(of: data, at: indices)
        reserve(batchCapacity: indices.count)
        let scale = lossIsMasked(lengthsGiven: lengthsGiven) ? 1 : 1 / Scalar(indices.count)
        return try BLASConfiguration.passGate.shared {
            let figures = try finishBatch(
                trainShards(batchSize: indices.count, gradientScale: scale) { replica, samples in
                    replica.gather(data, indices: UnsafeBufferPointer(rebasing: indices[samples]))
                })
            let metrics = try applyUpdate(figures)
            commitStates()
            return metrics
        }
    }

    /// Refuses, when the first layer is an `Embedding`, an id of the samples at `indices` of
    /// `data` that is not a whole number in `0..<inputDim`, naming the dataset's sample index and the step.
    private func checkIDs(of data: some SequenceDataset, at indices: some Collection<Int>) throws {
        guard let embedding = firstEmbedding else { return }
        let steps = inputShape.steps
        var x = [Scalar](repeating: 0, count: steps), labels = [Int32](repeating: 0, count: steps)
        for index in indices {
            var one = index
            x.withUnsafeMutableBufferPointer { xs in
                labels.withUnsafeMutableBufferPointer { ls in
                    withUnsafePointer(to: &one) {
                        data.gather(UnsafeBufferPointer(start: $0, count: 1), into: xs.baseAddress!, labels: ls.baseAddress!)
                    }
                }
            }
            for t in 0..<steps where embedding.row(of: x[t]) == nil {
                throw ModelError.idOutOfRange(layer: embedding.name, id: Double(x[t]), sample: index, step: t, inputDim: embedding.inputDim)
            }
        }
    }

    /// Refuses a dataset's length outside `1...steps` for the samples at `indices` (`position`
    /// is the sample's place among them); returns whether any sample has a length.
    private func checkLengths(of data: some SequenceDataset, at indices: some Collection<Int>) throws -> Bool {
        var any = false
        let steps = inputShape.steps
        for (position, index) in indices.enumerated() {
            guard let length = data.length(at: index) else { continue }
            guard length >= 1, length <= steps else {
                throw ModelError.lengthOutOfRange(length: length, position: position, steps: steps)
            }
            any = true
        }
        return any
    }

    /// Arenas at least this large have their optimiser step split over the workers; below it the
    /// hand-off costs more than the arithmetic.
    private static var parallelUpdateThreshold: Int { 1 << 16 }

    /// A user's dataset can yield labels the kernels cannot index with; they skip such rows and
    /// count them, and the batch is refused here.
    private func checkLabels(_ figures: BatchFigures) throws {
        guard figures.invalidLabels == 0 else {
            throw ModelError.labelsOutOfRange(count: figures.invalidLabels, classes: outputShape.features)
        }
    }

    @_specialize(where Scalar == Float)
    private func applyUpdate(_ figures: BatchFigures) throws -> Metrics {
        try checkLabels(figures)
        guard figures.finite else { throw TrainingError.nonFinite(epoch: nil, step: nil, history: nil) }
        let optimizer = optimizer!
        optimizer.clipping.apply(to: arena)
        optimizer.beginStep(arena)
        if workers > 1, arena.count >= Self.parallelUpdateThreshold {
            let count = workers, total = arena.count
            forEachShard(count) { i in
                let range = shard(i, of: count, batchSize: total)
                optimizer.update(range, of: arena)
            }
        } else {
            optimizer.update(0..<arena.count, of: arena)
        }
        return Metrics(figures)
    }

    /// The model's outputs for one time-major batch `x [T, batchSize, D]`, written batch-major to
    /// `output` (`[batchSize, F]`, or `[batchSize, T, F]` for sequence outputs). Needs no `compile`.
    ///
    /// With `lengths` (`[batchSize]`, each in `1…T`), sample b's steps from `lengths[b]` on are padding,
    /// masked for the recurrent layers as a `Masking` layer's mask would be.
    ///
    /// A model with a fixed `batchSize` takes exactly that many samples; a stateful one starts
    /// from the state the last batch ended in and carries this one's into the next.
    public func predict(
        x: UnsafePointer<Scalar>, lengths: UnsafePointer<Int32>? = nil, batchSize: Int, into output: UnsafeMutablePointer<Scalar>
    ) {
        precondition(
            self.batchSize == nil || self.batchSize == batchSize,
            "the model takes batches of exactly \(self.batchSize ?? 0) samples, not \(batchSize)")
        if let lengths {
            precondition(
                (0..<batchSize).allSatisfy { lengths[$0] >= 1 && Int(lengths[$0]) <= inputShape.steps },
                "every length must be in 1...\(inputShape.steps)")
        }
        BLASConfiguration.passGate.shared { unguardedPredict(x: x, lengths: lengths, batchSize: batchSize, into: output) }
    }

    private func unguardedPredict(
        x: UnsafePointer<Scalar>, lengths: UnsafePointer<Int32>? = nil, batchSize: Int,
        into output: UnsafeMutablePointer<Scalar>
    ) {
        reserve(batchCapacity: batchSize)
        let count = shards(batchSize), perSample = outputShape.scalarCount
        forEachShard(count) { i in
            let samples = shard(i, of: count, batchSize: batchSize)
            let replica = replicas[i]
            replica.setLengths(lengths.map { $0 + samples.lowerBound }, count: samples.count)
            if count == 1 {
                replica.predict(x: x, batchSize: batchSize, backend: backend)
            } else {
                replica.pack(x: x, labels: nil, targets: nil, batch: batchSize, start: samples.lowerBound, count: samples.count)
                replica.setShard(offset: samples.lowerBound, of: batchSize)
                replica.predict(batchSize: samples.count, backend: backend)
            }
            replica.copyOutputBatchMajor(to: output + samples.lowerBound * perSample)
        }
        commitStates()
    }

    // MARK: Whole datasets

    /// Refuses `data` that does not fit the model, a bad batch size or range, and (unless
    /// `checkingLengths` is false: the caller checks its own samples') a length outside `1...steps`
    /// in the range.
    func checkData(
        _ data: some SequenceDataset, range: Range<Int>?, batchSize: Int, needsLabels: Bool, checkingLengths: Bool = true
    ) throws -> Range<Int> {
        guard data.sampleShape == inputShape else {
            throw ModelError.sampleShapeMismatch(data: data.sampleShape, model: inputShape)
        }
        if needsLabels {
            guard let loss else { throw ModelError.notCompiled(action: "evaluating or fitting") }
            switch (loss.targets, data.targetKind) {
            case (.classIndices, .classIndices) where data.labelsPerStep:
                guard case .sequence(let steps, let classes) = outputShape, steps == inputShape.steps else {
                    throw ModelError.invalidConfiguration(
                        "the data gives one label per step; the model's output \(outputShape) is not a sequence of its \(inputShape.steps) steps"
                    )
                }
                guard data.classCount == classes else { throw ModelError.classCountMismatch(data: data.classCount, model: outputShape) }
            case (.classIndices, .classIndices):
                guard case .vector(let classes) = outputShape, data.classCount == classes else {
                    throw ModelError.classCountMismatch(data: data.classCount, model: outputShape)
                }
            case (.values, .values):
                guard data.targetShape == outputShape else {
                    throw ModelError.invalidConfiguration(
                        "the data's targets are \(data.targetShape.map { "\($0)" } ?? "missing"), the model outputs \(outputShape)")
                }
            case (.values, .classIndices):
                throw ModelError.targetsMismatch(loss: loss.name, needs: .values, fromDataset: true)
            case (.classIndices, .values):
                throw ModelError.invalidConfiguration("\(loss.name) needs class labels; the data gives target values")
            }
        }
        guard batchSize > 0 else { throw ModelError.invalidConfiguration("batch size must be positive, got \(batchSize)") }
        try checkFixedBatch(batchSize)
        let range = range ?? 0..<data.count
        guard range.lowerBound >= 0, range.upperBound <= data.count else {
            throw ModelError.rangeOutOfRange(range, count: data.count)
        }
        if let fixed = self.batchSize, range.count % fixed != 0 {
            throw ModelError.invalidConfiguration(
                "the model takes batches of exactly \(fixed) samples; \(range.count) samples do not make whole batches (drop \(range.count % fixed) or pad)"
            )
        }
        if checkingLengths {
            _ = try checkLengths(of: data, at: range)
            try checkIDs(of: data, at: range)
        }
        return range
    }

    /// Runs `range` of `data` through the model in batches, shards in parallel, calling
    /// `visit(start, shard)` for each shard after its forward pass (and loss, with `withLoss`).
    private func sweep(
        _ data: some SequenceDataset, range: Range<Int>, batchSize: Int, withLoss: Bool,
        batchEnded: () -> Void = {}, visit: (Int, Replica<Scalar>) -> Void
    ) {
        reserve(batchCapacity: batchSize)
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batchSize) {
            let size = min(batchSize, range.upperBound - start)
            for i in 0..<size { indexBuffer.pointer[i] = start + i }
            let count = shards(size)
            BLASConfiguration.passGate.shared {
                forEachShard(count) { i in
                    let samples = shard(i, of: count, batchSize: size)
                    let replica = replicas[i]
                    replica.gather(
                        data, indices: UnsafeBufferPointer(start: indexBuffer.pointer + samples.lowerBound, count: samples.count))
                    replica.setShard(offset: samples.lowerBound, of: size)
                    if withLoss {
                        replica.run(batchSize: samples.count, gradientScale: nil, backend: backend)
                    } else {
                        replica.predict(batchSize: samples.count, backend: backend)
                    }
                }
            }
            commitStates()
            for i in 0..<count { visit(start + shard(i, of: count, batchSize: size).lowerBound, replicas[i]) }
            batchEnded()
        }
    }

    /// Loss and accuracy over `range` of `data` (all of it by default), in batches of `batchSize`
    /// (by default the model's fixed batch size, else 32); the loss
    /// includes the weights' regularisation penalties, as Keras's. With a reducer
    /// across processes, every process must call it with the same range: each evaluates its share
    /// and all return the totals.
    /// A masked loss (per-step targets with lengths) is each batch's mean over its counted steps,
    /// as in training, weighted by the batch's samples.
    /// A stateful model reads the batches in order, each continuing the one before from the
    /// states the model holds, and keeps the last batch's.
    /// - Throws: `ModelError.notCompiled`, `.sampleShapeMismatch`, `.classCountMismatch`,
    ///   `.targetsMismatch` (target kinds that differ), `.rangeOutOfRange`, `.lengthOutOfRange`,
    ///   `.labelsOutOfRange`; `.invalidConfiguration` for a batch size below 1 or target values of
    ///   another shape than the output, and, for a model with a fixed batch size, another batch
    ///   size or a range that is not whole batches (or a stateful model with several processes).
    public func evaluate(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int? = nil) throws -> Metrics {
        let batchSize = batchSize ?? self.batchSize ?? 32
        let range = try checkData(data, range: range, batchSize: batchSize, needsLabels: true)
        // Each process evaluates its contiguous share of the range; the reducer adds the figures.
        let share = processShare(range.count)
        var total = BatchFigures(), batch = BatchFigures()
        sweep(
            data, range: (range.lowerBound + share.lowerBound)..<(range.lowerBound + share.upperBound),
            batchSize: batchSize, withLoss: true,
            batchEnded: {
                // A masked loss is the mean over the batch's counted steps, as in training.
                _ = batch.normalizeMaskedLoss()
                total += batch
                batch = BatchFigures()
            }
        ) { _, replica in batch += replica.figures }
        total = try reducer.reduce(figures: total)
        try checkLabels(total)
        // Keras's evaluate adds the weights' penalties to the loss too (every batch's, the same weights).
        var metrics = Metrics(total)
        metrics.loss += regularizationPenalty
        return metrics
    }

    /// The model's outputs for `range` of `data`: `[range.count, F]` (or `[range.count, T, F]`
    /// for sequence outputs), e.g. class probabilities. Needs no `compile`. Computed whole in this
    /// process, whatever the reducer.
    /// Padded steps (the dataset's lengths) are masked as in training. Batches of `batchSize`
    /// (by default the model's fixed batch size, else 32); a stateful model reads them in order, as
    /// `evaluate` does.
    /// - Throws: `ModelError.sampleShapeMismatch`, `.rangeOutOfRange`, `.lengthOutOfRange`, or
    ///   `.invalidConfiguration` for a batch size below 1 (for a model with a fixed batch size:
    ///   another, or a range that is not whole batches).
    public func predict(_ data: some SequenceDataset, range: Range<Int>? = nil, batchSize: Int? = nil) throws -> Tensor<Scalar> {
        let batchSize = batchSize ?? self.batchSize ?? 32
        let range = try checkData(data, range: range, batchSize: batchSize, needsLabels: false)
        let perSample = outputShape.scalarCount
        let shape: [Int] =
            switch outputShape {
            case .vector(let features): [range.count, features]
            case .sequence(let steps, let features): [range.count, steps, features]
            }
        var result = Tensor<Scalar>(shape: shape)
        result.scalars.withUnsafeMutableBufferPointer { result in
            sweep(data, range: range, batchSize: batchSize, withLoss: false) { start, replica in
                replica.copyOutputBatchMajor(to: result.baseAddress! + (start - range.lowerBound) * perSample)
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
    /// `FitOptions.stopRequested` said stop after this (1-based) epoch and step; the weights are
    /// those after it; `history` holds the epochs that completed before.
    case interrupted(epoch: Int, step: Int, history: History)

    /// One line: why training stopped, and where.
    public var description: String {
        switch self {
        case .interrupted(let epoch, let step, _):
            return "training was interrupted after epoch \(epoch), step \(step)"
        case .nonFinite(let epoch, let step, _):
            let place = [epoch.map { "epoch \($0)" }, step.map { "step \($0)" }].compactMap { $0 }.joined(separator: ", ")
            return "the loss or its gradient became NaN or infinite" + (place.isEmpty ? "" : " at \(place)")
                + "; training stopped and the weights from before that step are kept"
        }
    }
}
