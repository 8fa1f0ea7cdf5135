import Foundation

/// Whether a monitored quantity improves by falling or by rising (Keras's `mode`).
public enum MonitorMode: String, Sendable {
    /// From the key: a loss improves by falling, an accuracy by rising.
    case auto
    /// Improves by falling.
    case min
    /// Improves by rising.
    case max
}

/// A monitored key checked against what the run logs, and its direction.
struct Monitor {
    let key: String
    let mode: MonitorMode

    /// The resolved direction, checked when training begins: the key must be one the run logs.
    func minimises(for callback: String, control: TrainingControl, autoRule: (String) -> Bool) throws -> Bool {
        guard control.logKeys.contains(EpochLogs.canonicalKey(key)) else {
            throw CallbackError.unknownMonitor(callback: callback, monitor: key, available: control.logKeys)
        }
        switch mode {
        case .min: return true
        case .max: return false
        case .auto: return autoRule(key)
        }
    }

    /// Keras 3's `MonitorCallback._set_monitor_op` (keras/src/callbacks/monitor_callback.py) and
    /// `EarlyStopping._set_monitor_op`: `loss` (after stripping `val_`) is minimised, a metric
    /// whose direction is up (every accuracy) maximised. Every key RNNKit logs is one or the other.
    static func kerasAuto(_ key: String) -> Bool {
        let stem = key.hasPrefix("val_") ? String(key.dropFirst(4)) : key
        return stem == "loss"
    }
}

/// Stops training when a monitored quantity has stopped improving, as Keras 3's
/// `keras.callbacks.EarlyStopping`.
///
/// After each epoch from `startFromEpoch` on, the monitored value counts as an improvement when
/// it beats the best so far by more than `minDelta`; `patience` epochs in a row without one stop
/// training (never after the run's first epoch). With `baseline`, the wait restarts only on an
/// improvement that also beats the baseline. With `restoreBestWeights`, the weights of the best
/// epoch are put back when training ends, whether or not patience ran out (the first monitored
/// epoch's when none improved).
///
/// Follows `keras/src/callbacks/early_stopping.py` (Keras 3.x): `on_train_begin` resets
/// `wait`, `best` and `best_weights`; `on_epoch_end` counts `wait += 1` before comparing, then
/// stops when `wait >= patience and epoch > 0`; `on_train_end` restores `best_weights` when set.
public final class EarlyStopping: Callback {
    /// The History key watched (`val_loss` by default).
    public let monitor: String
    /// The least change that counts as an improvement (its magnitude is used).
    public let minDelta: Double
    /// Epochs without improvement after which training stops.
    public let patience: Int
    /// Whether the monitored value improves by falling or rising.
    public let mode: MonitorMode
    /// A value the monitored quantity must beat for the wait to restart, or nil.
    public let baseline: Double?
    /// Whether the best epoch's weights are restored when training ends.
    public let restoreBestWeights: Bool
    /// Epochs trained before monitoring begins (a warm-up without stopping).
    public let startFromEpoch: Int

    /// Epochs since the last improvement (Keras's `wait`).
    public private(set) var wait = 0
    /// The epoch (1-based) that set training's stop, or 0 when it did not stop it.
    public private(set) var stoppedEpoch = 0
    /// The best value seen this run, or nil before the first monitored epoch.
    public private(set) var best: Double?
    /// The epoch (1-based) of the best value, or 0.
    public private(set) var bestEpoch = 0
    private var bestWeights: ModelWeights?
    private var minimises = true

    /// Keras's defaults: `val_loss`, no delta, no patience, `auto`, no baseline, no restoring,
    /// monitoring from the first epoch.
    public init(
        monitor: String = "val_loss", minDelta: Double = 0, patience: Int = 0, mode: MonitorMode = .auto,
        baseline: Double? = nil, restoreBestWeights: Bool = false, startFromEpoch: Int = 0
    ) {
        self.monitor = monitor
        self.minDelta = abs(minDelta)
        self.patience = patience
        self.mode = mode
        self.baseline = baseline
        self.restoreBestWeights = restoreBestWeights
        self.startFromEpoch = startFromEpoch
    }

    /// Checks the monitored key and resets the state, so the callback can serve another `fit`.
    /// - Throws: `CallbackError.unknownMonitor` when the run does not log `monitor`.
    public func trainingBegan(_ control: TrainingControl) throws {
        minimises = try Monitor(key: monitor, mode: mode).minimises(for: "EarlyStopping", control: control, autoRule: Monitor.kerasAuto)
        wait = 0
        stoppedEpoch = 0
        best = nil
        bestWeights = nil
        bestEpoch = 0
    }

    /// Keras's `_is_improvement`: `monitor_op(value - min_delta, reference)` with `min_delta`
    /// negated when minimising; anything beats no reference.
    func isImprovement(_ value: Double, over reference: Double?) -> Bool {
        guard let reference else { return true }
        return minimises ? value + minDelta < reference : value - minDelta > reference
    }

    /// Counts the epoch and sets ``TrainingControl/stopTraining`` when patience has run out.
    public func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
        // Keras's epoch is 0-based: `epoch < start_from_epoch` is `epoch - 1 < startFromEpoch` here.
        guard let current = logs[monitor], epoch - 1 >= startFromEpoch else { return }
        if restoreBestWeights, bestWeights == nil {
            bestWeights = control.weights
            bestEpoch = epoch
        }
        wait += 1
        if isImprovement(current, over: best) {
            best = current
            bestEpoch = epoch
            if restoreBestWeights { bestWeights = control.weights }
            if baseline == nil || isImprovement(current, over: baseline) { wait = 0 }
            return
        }
        // Keras's `epoch > 0`: never on the run's first epoch.
        if wait >= patience, epoch > 1 {
            stoppedEpoch = epoch
            control.stopTraining = true
        }
    }

    /// Restores the best epoch's weights when asked to.
    public func trainingEnded(_ control: TrainingControl) throws {
        if restoreBestWeights, let bestWeights { try control.restoreWeights(bestWeights) }
    }
}

/// Lowers the learning rate when a monitored quantity has stopped improving, as Keras 3's
/// `keras.callbacks.ReduceLROnPlateau`.
///
/// Follows `keras/src/callbacks/reduce_lr_on_plateau.py`: a value improves when it beats the
/// best by more than `minDelta`; during a cooldown each epoch counts the cooldown down and
/// clears the wait; otherwise an epoch without improvement adds to the wait, and when it reaches
/// `patience` the rate becomes `max(rate × factor, minLR)` (only while the rate is above
/// `Float(minLR)`), the cooldown starts and the wait clears. `auto` maximises a key containing
/// `acc` and minimises any other, as Keras's does.
public final class ReduceLROnPlateau: Callback {
    /// The History key watched (`val_loss` by default).
    public let monitor: String
    /// What the rate is multiplied by (below 1).
    public let factor: Double
    /// Epochs without improvement after which the rate is lowered.
    public let patience: Int
    /// Whether the monitored value improves by falling or rising.
    public let mode: MonitorMode
    /// The least change that counts as an improvement.
    public let minDelta: Double
    /// Epochs after a reduction during which the wait does not grow.
    public let cooldown: Int
    /// The lowest rate it sets.
    public let minLR: Double

    /// Epochs since the last improvement (Keras's `wait`).
    public private(set) var wait = 0
    /// Epochs of cooldown left.
    public private(set) var cooldownCounter = 0
    /// The best value seen this run (±infinity before the first).
    public private(set) var best = Double.infinity
    private var minimises = true

    /// Keras's defaults: `val_loss`, a factor of 0.1, patience 10, `auto`, a delta of 1e-4, no
    /// cooldown, no least rate.
    /// - Throws: `CallbackError.invalidSetting` for a factor of 1 or more (Keras's ValueError).
    public init(
        monitor: String = "val_loss", factor: Double = 0.1, patience: Int = 10, mode: MonitorMode = .auto,
        minDelta: Double = 1e-4, cooldown: Int = 0, minLR: Double = 0
    ) throws {
        guard factor < 1 else {
            throw CallbackError.invalidSetting(
                callback: "ReduceLROnPlateau", reason: "a factor of \(factor) does not reduce the rate; it must be below 1")
        }
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.mode = mode
        self.minDelta = minDelta
        self.cooldown = cooldown
        self.minLR = minLR
    }

    /// Checks the monitored key and resets the state (Keras's `_reset`).
    /// - Throws: `CallbackError.unknownMonitor` when the run does not log `monitor`.
    public func trainingBegan(_ control: TrainingControl) throws {
        minimises = try Monitor(key: monitor, mode: mode).minimises(for: "ReduceLROnPlateau", control: control) {
            !$0.contains("acc")
        }
        best = minimises ? .infinity : -.infinity
        cooldownCounter = 0
        wait = 0
    }

    /// Counts the epoch and lowers ``TrainingControl/learningRate`` when patience has run out.
    public func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
        guard let current = logs[monitor] else { return }
        if cooldownCounter > 0 {
            cooldownCounter -= 1
            wait = 0
        }
        if minimises ? current < best - minDelta : current > best + minDelta {
            best = current
            wait = 0
        } else if cooldownCounter == 0 {
            wait += 1
            if wait >= patience {
                let old = control.learningRate
                // Keras compares with `np.float32(self.min_lr)`.
                if old > Double(Float(minLR)) {
                    control.learningRate = max(old * factor, minLR)
                    cooldownCounter = cooldown
                    wait = 0
                }
            }
        }
    }
}

/// Saves the model's weights after epochs, as Keras 3's `keras.callbacks.ModelCheckpoint` with
/// `save_weights_only=True`, to an RNNKit safetensors file written atomically (a crash leaves the
/// previous file whole).
///
/// Without `saveBestOnly` it saves after every epoch. With it, only after an epoch whose
/// monitored value beats the best so far (any value beats none; no delta), as Keras's
/// `_should_save_model` and `MonitorCallback._is_improvement`; `initialValueThreshold` sets a
/// best to beat from the start.
public final class ModelCheckpoint: Callback {
    /// Where the weights go.
    public let url: URL
    /// The History key watched (`val_loss` by default).
    public let monitor: String
    /// Whether only improving epochs are saved.
    public let saveBestOnly: Bool
    /// Whether the monitored value improves by falling or rising.
    public let mode: MonitorMode
    /// A value the first save must beat (Keras's `initial_value_threshold`), or nil.
    public let initialValueThreshold: Double?

    /// The best value saved this run, or nil.
    public private(set) var best: Double?
    /// The epochs (1-based) after which the file was written, this run.
    public private(set) var savedEpochs: [Int] = []
    private var minimises = true

    /// Keras's defaults: `val_loss`, every epoch saved, `auto`.
    public init(
        url: URL, monitor: String = "val_loss", saveBestOnly: Bool = false, mode: MonitorMode = .auto,
        initialValueThreshold: Double? = nil
    ) {
        self.url = url
        self.monitor = monitor
        self.saveBestOnly = saveBestOnly
        self.mode = mode
        self.initialValueThreshold = initialValueThreshold
    }

    /// Checks the monitored key (when saving only the best) and resets the state.
    /// - Throws: `CallbackError.unknownMonitor` when the run does not log `monitor`.
    public func trainingBegan(_ control: TrainingControl) throws {
        if saveBestOnly {
            minimises = try Monitor(key: monitor, mode: mode).minimises(
                for: "ModelCheckpoint", control: control, autoRule: Monitor.kerasAuto)
        }
        best = initialValueThreshold
        savedEpochs = []
    }

    /// Writes the weights when the epoch qualifies.
    public func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
        if saveBestOnly {
            guard let current = logs[monitor] else { return }
            if let best, !(minimises ? current < best : current > best) { return }
            best = current
        }
        try control.saveWeights(to: url, metadata: ["epoch": String(epoch)])
        savedEpochs.append(epoch)
    }
}
