import Foundation

/// What `fit` reports as it goes, for progress bars and logs.
public enum FitEvent: Sendable {
    /// A batch was trained: 1-based epoch and step, the steps in the epoch, and the running means
    /// of the epoch so far.
    case batchEnded(epoch: Int, step: Int, steps: Int, running: Metrics, elapsed: Double)
    /// An epoch ended: its training means, the validation figures (if any) and its training time.
    case epochEnded(epoch: Int, steps: Int, training: Metrics, validation: Metrics?, seconds: Double)
}

/// `fit`'s settings, with Keras's defaults where Keras has them.
public struct FitOptions: Sendable {
    /// The number of passes over the training samples, counting any before `initialEpoch` (1 by default).
    public var epochs: Int
    /// Samples per training step (32 by default, as Keras's); the last batch of an epoch may be smaller.
    public var batchSize: Int
    /// The last fraction of the data, before shuffling, that validates (Keras's `validation_split`).
    public var validationSplit: Double
    /// Reshuffle the training samples every epoch.
    public var shuffle: Bool
    /// Seeds the shuffling.
    public var seed: UInt64
    /// How the optimiser's learning rate moves from step to step (constant by default).
    public var learningRateSchedule: LearningRateSchedule
    /// Keras's `initial_epoch`: the epochs before it count as done (a resumed run); their shuffles
    /// are still drawn, so the run continues exactly as an uninterrupted one would. `epochs` stays
    /// the total.
    public var initialEpoch: Int = 0
    /// Asked after every step; when it returns true, `fit` stops there and throws
    /// `TrainingError.interrupted` (how a Ctrl-C handler ends training cleanly).
    public var stopRequested: (@Sendable () -> Bool)?

    /// Settings with Keras's defaults: one epoch, batches of 32, no validation, shuffled, constant learning rate.
    public init(
        epochs: Int = 1, batchSize: Int = 32, validationSplit: Double = 0, shuffle: Bool = true, seed: UInt64 = 0,
        learningRateSchedule: LearningRateSchedule = .constant
    ) {
        self.learningRateSchedule = learningRateSchedule
        self.epochs = epochs
        self.batchSize = batchSize
        self.validationSplit = validationSplit
        self.shuffle = shuffle
        self.seed = seed
    }
}

extension Sequential {
    /// Trains on `data` as Keras's `fit` does: the last `validationSplit` of the samples held out,
    /// the rest shuffled every epoch and fed in batches of `batchSize` (the last one smaller),
    /// per-epoch means of the training loss and accuracy, validation after each epoch.
    ///
    /// - Throws: `ModelError` for data that does not fit the model or bad options;
    ///   `TrainingError.nonFinite` when the loss or a gradient stops being finite (weights as
    ///   before that step, the history of the finished epochs attached).
    @discardableResult
    public func fit(
        _ data: some SequenceDataset, options: FitOptions = FitOptions(),
        onEvent: (FitEvent) -> Void = { _ in }
    ) throws -> History {
        guard options.epochs >= 0 else { throw ModelError.invalidConfiguration("epochs must be ≥ 0, got \(options.epochs)") }
        guard (0...max(options.epochs, 0)).contains(options.initialEpoch) else {
            throw ModelError.invalidConfiguration("initial epoch \(options.initialEpoch) is outside 0…\(options.epochs)")
        }
        guard optimizer != nil else { throw ModelError.notCompiled(action: "fitting") }
        _ = try checkData(data, range: nil, batchSize: options.batchSize, needsLabels: true)
        let split = try ValidationSplit(count: data.count, fraction: options.validationSplit)
        reserve(batchCapacity: options.batchSize)
        var order = Array(split.training)
        var generator = RandomGenerator(seed: options.seed)
        var history = History()
        let steps = (split.training.count + options.batchSize - 1) / options.batchSize
        let initialRate = optimizer!.learningRate
        // The schedule sets the rate for each step and leaves the optimiser at its initial rate.
        defer { optimizer!.learningRate = initialRate }
        for epoch in stride(from: 1, through: options.epochs, by: 1) {
            if options.shuffle { order.shuffle(using: &generator) }
            guard epoch > options.initialEpoch else { continue }
            var lossSum = 0.0, correctSum = 0.0, seen = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
            try order.withUnsafeBufferPointer { order in
                for step in 0..<steps {
                    let lower = step * options.batchSize, upper = min(lower + options.batchSize, order.count)
                    let indices = UnsafeBufferPointer(rebasing: order[lower..<upper])
                    let metrics: Metrics
                    optimizer!.learningRate = options.learningRateSchedule.rate(
                        initial: initialRate, step: (epoch - 1) * steps + step, totalSteps: options.epochs * steps)
                    do {
                        metrics = try trainStep(data, indices: indices)
                    } catch TrainingError.nonFinite {
                        throw TrainingError.nonFinite(epoch: epoch, step: step + 1, history: history)
                    }
                    if options.stopRequested?() == true {
                        throw TrainingError.interrupted(epoch: epoch, step: step + 1, history: history)
                    }
                    lossSum += metrics.loss * Double(indices.count)
                    correctSum += metrics.accuracy * Double(indices.count)
                    seen += indices.count
                    onEvent(
                        .batchEnded(
                            epoch: epoch, step: step + 1, steps: steps,
                            running: Metrics(loss: lossSum / Double(seen), accuracy: correctSum / Double(seen), samples: seen),
                            elapsed: elapsed))
                }
            }
            let seconds = elapsed
            let training = Metrics(loss: lossSum / Double(seen), accuracy: correctSum / Double(seen), samples: seen)
            let validation = split.validation.isEmpty ? nil : try evaluate(data, range: split.validation, batchSize: options.batchSize)
            history.append(training: training, validation: validation, seconds: seconds)
            onEvent(.epochEnded(epoch: epoch, steps: steps, training: training, validation: validation, seconds: seconds))
        }
        return history
    }
}
