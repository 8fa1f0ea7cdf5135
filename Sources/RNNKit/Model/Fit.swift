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
    /// Ignored when ``validationData`` is set, as Keras's `validation_data` overrides it.
    public var validationSplit: Double
    /// Samples that validate after each epoch instead of a split of the training data (Keras's
    /// `validation_data`); nil by default. Its sample shape and class count must be the model's, as
    /// the training data's (with `ModelError` thrown before the first epoch otherwise); its
    /// lengths, if any, mask as the training data's do. The History then records `val_loss`
    /// and `val_accuracy`, as with a split; every sample of it trains nothing.
    public var validationData: (any SequenceDataset)?
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
    /// `TrainingError.interrupted` (how a Ctrl-C handler ends training cleanly). To end training
    /// normally instead, returning the history so far, a ``Callback`` sets
    /// ``TrainingControl/stopTraining``.
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
    /// Trains on `data` as Keras's `fit` does: the last `validationSplit` of the samples held out
    /// (or `validationData` validating instead), the rest shuffled every epoch and fed in batches of `batchSize` (the last one smaller),
    /// per-epoch means of the training loss and accuracy, validation after each epoch.
    /// `onEvent` hears of every batch and epoch (a ``FitEventCallback``).
    ///
    /// - Throws: `ModelError` for data that does not fit the model or bad options;
    ///   `TrainingError.nonFinite` when the loss or a gradient stops being finite (weights as
    ///   before that step, the history of the finished epochs attached).
    @discardableResult
    public func fit(
        _ data: some SequenceDataset, options: FitOptions = FitOptions(),
        onEvent: (FitEvent) -> Void = { _ in }
    ) throws -> History {
        try withoutActuallyEscaping(onEvent) { onEvent in
            try fit(data, options: options, callbacks: [FitEventCallback(onEvent)])
        }
    }

    /// Trains on `data` as ``fit(_:options:onEvent:)`` does, calling `callbacks` in order at each
    /// point of the run, as Keras's `fit(…, callbacks=[…])`.
    ///
    /// A callback that sets ``TrainingControl/stopTraining`` ends the epoch after the current
    /// batch (its validation and `epochEnded` still run, and History records it, as Keras's
    /// does); `trainingEnded` follows and `fit` returns the history so far. A learning rate a
    /// callback sets stays the optimiser's after `fit`. ``FitOptions/stopRequested`` still ends
    /// training by throwing `TrainingError.interrupted`, without `trainingEnded`.
    ///
    /// - Throws: as ``fit(_:options:onEvent:)``, `CallbackError` from a callback that cannot
    ///   serve this run (a monitored key it will not log), and whatever a callback throws.
    @discardableResult
    public func fit(
        _ data: some SequenceDataset, options: FitOptions = FitOptions(), callbacks: [any Callback]
    ) throws -> History {
        guard options.epochs >= 0 else { throw ModelError.invalidConfiguration("epochs must be ≥ 0, got \(options.epochs)") }
        guard (0...max(options.epochs, 0)).contains(options.initialEpoch) else {
            throw ModelError.invalidConfiguration("initial epoch \(options.initialEpoch) is outside 0…\(options.epochs)")
        }
        guard optimizer != nil else { throw ModelError.notCompiled(action: "fitting") }
        _ = try checkData(data, range: nil, batchSize: options.batchSize, needsLabels: true)
        if let validationData = options.validationData {
            _ = try checkData(validationData, range: nil, batchSize: options.batchSize, needsLabels: true)
            guard validationData.count > 0 else { throw ModelError.invalidConfiguration("validation data has no samples") }
        }
        let split = try ValidationSplit(
            count: data.count, fraction: options.validationData == nil ? options.validationSplit : 0)
        try checkStatefulOptions(options, split: split)
        let validates = options.validationData != nil || !split.validation.isEmpty
        reserve(batchCapacity: options.batchSize)
        var order = Array(split.training)
        var generator = RandomGenerator(seed: options.seed)
        var history = History()
        let steps = (split.training.count + options.batchSize - 1) / options.batchSize
        let control = TrainingControl(
            model: self, learningRate: optimizer!.learningRate, epochs: options.epochs, initialEpoch: options.initialEpoch,
            stepsPerEpoch: steps, validation: validates)
        // The schedule sets the rate for each step from the control's; the optimiser is left at
        // the control's rate (the initial one unless a callback changed it).
        defer { optimizer!.learningRate = control.learningRate }
        for callback in callbacks { try callback.trainingBegan(control) }
        for epoch in stride(from: 1, through: options.epochs, by: 1) {
            if options.shuffle { order.shuffle(using: &generator) }
            guard epoch > options.initialEpoch else { continue }
            for callback in callbacks { try callback.epochBegan(epoch, control: control) }
            // Each epoch reads the sequences from their start again.
            resetStates()
            let logs = try trainEpoch(
                epoch, data, order: order, steps: steps, options: options, control: control, callbacks: callbacks, history: history)
            // The validation sequences are others, read from their start (stateful models).
            resetStates()
            let validation: Metrics? =
                if let validationData = options.validationData {
                    try evaluate(validationData, batchSize: options.batchSize)
                } else {
                    split.validation.isEmpty ? nil : try evaluate(data, range: split.validation, batchSize: options.batchSize)
                }
            let epochLogs = EpochLogs(
                epoch: epoch, steps: logs.steps, training: logs.training, validation: validation, seconds: logs.seconds)
            history.append(training: logs.training, validation: validation, seconds: logs.seconds)
            for callback in callbacks { try callback.epochEnded(epoch, logs: epochLogs, control: control) }
            if control.stopTraining { break }
        }
        for callback in callbacks { try callback.trainingEnded(control) }
        return history
    }

    /// Refuses options a model with a fixed batch size cannot train with: shuffling a stateful
    /// model's batches, or a split that is not whole batches.
    private func checkStatefulOptions(_ options: FitOptions, split: ValidationSplit) throws {
        guard let fixed = batchSize else { return }
        if isStateful, options.shuffle {
            throw ModelError.invalidConfiguration(
                "a stateful model trains its batches in order, each continuing the sequences of the one before: pass shuffle: false")
        }
        for (part, count) in [("training", split.training.count), ("validation", split.validation.count)] where count % fixed != 0 {
            throw ModelError.invalidConfiguration(
                "the model takes batches of exactly \(fixed) samples; the \(part) part's \(count) samples do not make whole batches")
        }
    }

    /// One epoch's batches, in `order`: its training means, steps run and seconds. Stops early
    /// when a callback sets `stopTraining`.
    private func trainEpoch(
        _ epoch: Int, _ data: some SequenceDataset, order: [Int], steps: Int, options: FitOptions,
        control: TrainingControl, callbacks: [any Callback], history: History
    ) throws -> (training: Metrics, steps: Int, seconds: Double) {
        var lossSum = 0.0, correctSum = 0.0, seen = 0, stepsRun = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try order.withUnsafeBufferPointer { order in
            for step in 0..<steps {
                let lower = step * options.batchSize, upper = min(lower + options.batchSize, order.count)
                let indices = UnsafeBufferPointer(rebasing: order[lower..<upper])
                let metrics: Metrics
                optimizer!.learningRate = options.learningRateSchedule.rate(
                    initial: control.learningRate, step: (epoch - 1) * steps + step, totalSteps: options.epochs * steps)
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
                stepsRun = step + 1
                let logs = BatchLogs(
                    epoch: epoch, step: step + 1, steps: steps,
                    running: Metrics(loss: lossSum / Double(seen), accuracy: correctSum / Double(seen), samples: seen),
                    elapsed: elapsed)
                for callback in callbacks { try callback.batchEnded(logs, control: control) }
                // Keras's loop checks `stop_training` after every batch too.
                if control.stopTraining { break }
            }
        }
        let training = Metrics(loss: lossSum / Double(seen), accuracy: correctSum / Double(seen), samples: seen)
        return (training, stepsRun, elapsed)
    }
}
