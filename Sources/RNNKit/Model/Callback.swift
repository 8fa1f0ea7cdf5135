import Foundation

/// Something `fit` calls as training goes, as a Keras `Callback`: when training begins, as each
/// epoch begins, after each batch, as each epoch ends, and when training ends.
///
/// Every method has a default that does nothing, so a callback implements only what it needs.
/// Each is handed the run's ``TrainingControl``, through which it can stop training
/// (``TrainingControl/stopTraining``, Keras's `model.stop_training`), read or set the
/// learning rate, and read or set the model's weights. A method that throws ends `fit` with
/// that error.
///
/// Epochs are numbered from 1, as ``FitEvent`` and ``TrainingError`` number them (Keras's
/// `on_epoch_end(epoch, …)` counts from 0: its `epoch` is this one minus 1).
public protocol Callback: AnyObject {
    /// Training is about to begin (Keras's `on_train_begin`). The place to reset state, so that a
    /// callback can serve several `fit` calls, and to check settings against
    /// ``TrainingControl/logKeys``.
    func trainingBegan(_ control: TrainingControl) throws
    /// Epoch `epoch` (1-based) is about to begin (Keras's `on_epoch_begin`).
    func epochBegan(_ epoch: Int, control: TrainingControl) throws
    /// A batch was trained (Keras's `on_train_batch_end`); `logs` holds the epoch's running means.
    func batchEnded(_ logs: BatchLogs, control: TrainingControl) throws
    /// Epoch `epoch` (1-based) ended, validation included (Keras's `on_epoch_end`); `logs` holds
    /// its figures by Keras's History keys.
    func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws
    /// Training ended normally, after the last epoch or because a callback stopped it (Keras's
    /// `on_train_end`). Not called when `fit` throws.
    func trainingEnded(_ control: TrainingControl) throws
}

extension Callback {
    /// Does nothing.
    public func trainingBegan(_ control: TrainingControl) throws {}
    /// Does nothing.
    public func epochBegan(_ epoch: Int, control: TrainingControl) throws {}
    /// Does nothing.
    public func batchEnded(_ logs: BatchLogs, control: TrainingControl) throws {}
    /// Does nothing.
    public func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {}
    /// Does nothing.
    public func trainingEnded(_ control: TrainingControl) throws {}
}

/// What a ``Callback`` sees after each batch: where training is and the epoch's running means.
public struct BatchLogs: Sendable {
    /// The epoch, from 1.
    public let epoch: Int
    /// The step in the epoch, from 1.
    public let step: Int
    /// The steps in a whole epoch.
    public let steps: Int
    /// The means of the epoch's batches so far.
    public let running: Metrics
    /// Seconds since the epoch began.
    public let elapsed: Double
}

/// An epoch's figures as a ``Callback`` sees them, by Keras's History keys: `loss` and
/// `categorical_accuracy`, and with validation data `val_loss` and `val_categorical_accuracy`.
///
/// Keras's other names for the accuracy, `accuracy` and `acc` (and their `val_` forms), are
/// read as `categorical_accuracy`: RNNKit's accuracy is the loss's own, which ``History``
/// records under that key. A loss without an accuracy gives NaN.
public struct EpochLogs: Sendable {
    /// The epoch, from 1.
    public let epoch: Int
    /// The steps trained in the epoch (fewer than a whole epoch's when a callback stopped it in
    /// the middle).
    public let steps: Int
    /// The means over the epoch's training batches.
    public let training: Metrics
    /// The validation figures, or nil without validation data.
    public let validation: Metrics?
    /// Seconds of training (batches only, validation excluded).
    public let seconds: Double

    /// Figures as `fit` measured them.
    public init(epoch: Int, steps: Int, training: Metrics, validation: Metrics?, seconds: Double) {
        self.epoch = epoch
        self.steps = steps
        self.training = training
        self.validation = validation
        self.seconds = seconds
    }

    /// The keys these logs hold, in History's order.
    public var keys: [String] { Self.keys(validation: validation != nil) }

    /// The value under a History key (or one of Keras's other names for it), or nil when the
    /// logs have no such key.
    public subscript(key: String) -> Double? {
        switch Self.canonicalKey(key) {
        case "loss": training.loss
        case "categorical_accuracy": training.accuracy
        case "val_loss": validation?.loss
        case "val_categorical_accuracy": validation?.accuracy
        default: nil
        }
    }

    /// The keys an epoch's logs hold, with or without validation data.
    static func keys(validation: Bool) -> [String] {
        ["loss", "categorical_accuracy"] + (validation ? ["val_loss", "val_categorical_accuracy"] : [])
    }

    /// History's key for one of Keras's names (`val_accuracy` → `val_categorical_accuracy`).
    static func canonicalKey(_ key: String) -> String {
        let stem = key.hasPrefix("val_") ? String(key.dropFirst(4)) : key
        let prefix = key.hasPrefix("val_") ? "val_" : ""
        return ["accuracy", "acc"].contains(stem) ? prefix + "categorical_accuracy" : key
    }
}

/// A copy of every weight of a model, taken by ``TrainingControl/weights`` and given back to
/// the same model by setting it (how ``EarlyStopping`` keeps and restores the best epoch's).
public struct ModelWeights: @unchecked Sendable {
    /// The arena's scalars, bit for bit (immutable once taken, hence sendable).
    let bytes: [UInt8]
    /// The scalars' type, checked on restoring.
    let scalarType: ObjectIdentifier

    /// The number of scalars.
    public let count: Int
}

/// What a model offers its callbacks, without its scalar type.
protocol CallbackModel: AnyObject {
    var weightsCopy: ModelWeights { get }
    func restore(_ weights: ModelWeights) throws
    func saveWeights(to url: URL, metadata: [String: String]) throws
}

extension Sequential: CallbackModel {
    var weightsCopy: ModelWeights {
        let bytes = Array(UnsafeRawBufferPointer(start: arena.values.pointer, count: arena.count * MemoryLayout<Scalar>.stride))
        return ModelWeights(bytes: bytes, scalarType: ObjectIdentifier(Scalar.self), count: arena.count)
    }

    func restore(_ weights: ModelWeights) throws {
        guard weights.scalarType == ObjectIdentifier(Scalar.self), weights.count == arena.count else {
            throw ModelError.weightsMismatch([
                "the weights copied hold \(weights.count) scalars of another model; this one has \(arena.count) \(Scalar.self)"
            ])
        }
        weights.bytes.withUnsafeBytes {
            UnsafeMutableRawPointer(arena.values.pointer).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
    }
}

/// The handle `fit` gives its callbacks on the run and the model: Keras's `self.model` as a
/// callback uses it.
public final class TrainingControl {
    /// Set to true to stop training after the current batch (Keras's `model.stop_training`):
    /// the epoch ends there (its validation and ``Callback/epochEnded(_:logs:control:)`` still
    /// run), ``Callback/trainingEnded(_:)`` is called and `fit` returns the history so far,
    /// without throwing.
    public var stopTraining = false
    /// The optimiser's learning rate (with a ``LearningRateSchedule``, the rate it starts from).
    /// A new value takes effect from the next batch and stays the optimiser's after `fit`, as
    /// Keras's `model.optimizer.learning_rate = …` does.
    public var learningRate: Double
    /// The epochs the run counts (``FitOptions/epochs``).
    public let epochs: Int
    /// The epoch the run resumes after (``FitOptions/initialEpoch``).
    public let initialEpoch: Int
    /// The steps in a whole epoch.
    public let stepsPerEpoch: Int
    /// The keys every epoch's ``EpochLogs`` hold (the `val_` ones only with validation data).
    public let logKeys: [String]
    private let model: any CallbackModel

    init(model: any CallbackModel, learningRate: Double, epochs: Int, initialEpoch: Int, stepsPerEpoch: Int, validation: Bool) {
        self.model = model
        self.learningRate = learningRate
        self.epochs = epochs
        self.initialEpoch = initialEpoch
        self.stepsPerEpoch = stepsPerEpoch
        logKeys = EpochLogs.keys(validation: validation)
    }

    /// A copy of the model's weights (Keras's `get_weights()`); setting it puts a copy taken
    /// during this or another run of the same model back (`set_weights`).
    ///
    /// Setting a copy of another model's weights stops with a precondition failure; use
    /// ``restoreWeights(_:)`` to get an error instead.
    public var weights: ModelWeights {
        get { model.weightsCopy }
        set {
            do { try model.restore(newValue) } catch { preconditionFailure("\(error)") }
        }
    }

    /// Puts a copy taken by ``weights`` back into the model.
    /// - Throws: `ModelError.weightsMismatch` when the copy is another model's.
    public func restoreWeights(_ weights: ModelWeights) throws { try model.restore(weights) }

    /// Writes the model's weights to `url` as safetensors, atomically
    /// (``Sequential/saveWeights(to:metadata:)``).
    public func saveWeights(to url: URL, metadata: [String: String] = [:]) throws {
        try model.saveWeights(to: url, metadata: metadata)
    }

    /// The model being trained, when its scalar type is `S` (for a callback that needs more of it
    /// than this handle gives).
    public func model<S: BLASScalar>(as _: S.Type = S.self) -> Sequential<S>? { model as? Sequential<S> }
}

/// A callback that hands ``FitEvent``s to a closure: how `fit(_:options:onEvent:)` reports.
public final class FitEventCallback: Callback {
    private let onEvent: (FitEvent) -> Void

    /// Calls `onEvent` after every batch and every epoch.
    public init(_ onEvent: @escaping (FitEvent) -> Void) { self.onEvent = onEvent }

    /// Reports `.batchEnded`.
    public func batchEnded(_ logs: BatchLogs, control: TrainingControl) throws {
        onEvent(.batchEnded(epoch: logs.epoch, step: logs.step, steps: logs.steps, running: logs.running, elapsed: logs.elapsed))
    }

    /// Reports `.epochEnded`.
    public func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
        onEvent(
            .epochEnded(epoch: epoch, steps: logs.steps, training: logs.training, validation: logs.validation, seconds: logs.seconds))
    }
}

/// Why a callback refused to start.
public enum CallbackError: Error, CustomStringConvertible, Equatable {
    /// `callback` monitors `monitor`, which no epoch's logs will hold; `available` are the keys
    /// they will hold.
    case unknownMonitor(callback: String, monitor: String, available: [String])
    /// A setting that cannot work, said in a sentence.
    case invalidSetting(callback: String, reason: String)

    /// One line: which callback, what is wrong, and what would do.
    public var description: String {
        switch self {
        case .unknownMonitor(let callback, let monitor, let available):
            "\(callback) monitors \"\(monitor)\", which this fit does not log; the keys are "
                + available.map { "\"\($0)\"" }.joined(separator: ", ")
                + (monitor.hasPrefix("val_") && !available.contains { $0.hasPrefix("val_") }
                    ? " (no val_ keys: there is no validation data; set validationSplit)" : "")
        case .invalidSetting(let callback, let reason):
            "\(callback): \(reason)"
        }
    }
}
