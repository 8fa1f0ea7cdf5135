import Foundation
import XCTest
@testable import RNNKit

/// The callbacks against Keras 3's rules, driven with scripted logs (the expected epochs and
/// rates worked out by hand from keras/src/callbacks/early_stopping.py and
/// reduce_lr_on_plateau.py), and in real fits.
final class CallbackTests: XCTestCase {
    /// A small model to hand the callbacks; its weights are what `restoreBestWeights` keeps.
    private func smallModel(learningRate: Double = 1) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 2, features: 2), layers: [SimpleRNN(units: 3), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: SGD(learningRate: learningRate))
        return model
    }

    private func control(_ model: Sequential<Float>, validation: Bool = true) -> TrainingControl {
        TrainingControl(
            model: model, learningRate: model.optimizer!.learningRate, epochs: 100, initialEpoch: 0, stepsPerEpoch: 1,
            validation: validation)
    }

    /// Logs whose validation loss (and training loss) is `value`, accuracy `1 − value`.
    private func logs(_ epoch: Int, _ value: Double) -> EpochLogs {
        let metrics = Metrics(loss: value, accuracy: 1 - value, samples: 1)
        return EpochLogs(epoch: epoch, steps: 1, training: metrics, validation: metrics, seconds: 0)
    }

    /// Runs `callback` over scripted values as `fit` would (stopping when it says so); before each
    /// epoch ends, every weight of `model` is set to the epoch's number, so the weights name their epoch.
    /// - Returns: the epochs run.
    @discardableResult
    private func drive(
        _ callback: any Callback, _ values: [Double], model: Sequential<Float>? = nil, control given: TrainingControl? = nil,
        afterEpoch: (TrainingControl) -> Void = { _ in }
    ) throws -> Int {
        let model = try model ?? smallModel()
        let control = given ?? self.control(model)
        try callback.trainingBegan(control)
        var epochs = 0
        for (index, value) in values.enumerated() {
            let epoch = index + 1
            try callback.epochBegan(epoch, control: control)
            model.arena.values.pointer.update(repeating: Float(epoch), count: model.arena.count)
            try callback.epochEnded(epoch, logs: logs(epoch, value), control: control)
            afterEpoch(control)
            epochs = epoch
            if control.stopTraining { break }
        }
        try callback.trainingEnded(control)
        return epochs
    }

    // MARK: EarlyStopping

    func testEarlyStoppingStopsWherePatienceRunsOut() throws {
        // wait: 0 (first), 0 (0.9 < 1.0), 1, 2 → stops after epoch 4.
        XCTAssertEqual(try drive(EarlyStopping(patience: 2), [1.0, 0.9, 0.95, 0.91, 0.92, 0.5]), 4)
        // Patience 0: the first epoch without improvement stops, but never the first epoch.
        XCTAssertEqual(try drive(EarlyStopping(patience: 0), [1.0, 0.9, 0.95, 0.5]), 3)
        XCTAssertEqual(try drive(EarlyStopping(patience: 0), [1.0]), 1)
        // minDelta: 0.96 is not below 1.0 − 0.05, so it does not count.
        XCTAssertEqual(try drive(EarlyStopping(minDelta: 0.05, patience: 1), [1.0, 0.96, 0.5]), 2)
        XCTAssertEqual(try drive(EarlyStopping(minDelta: -0.05, patience: 1), [1.0, 0.94, 0.93]), 3) // magnitude used
        // Equal is no improvement.
        XCTAssertEqual(try drive(EarlyStopping(patience: 1), [1.0, 1.0, 0.5]), 2)
    }

    func testEarlyStoppingBaselineAndWarmUp() throws {
        // With a baseline none beats, improvements still count `wait` up: 1, 2, then 3 ≥ 2 stops.
        XCTAssertEqual(try drive(EarlyStopping(patience: 2, baseline: 0.5), [1.0, 0.9, 0.95, 0.8]), 3)
        // Without it the same values run on: wait 0, 0, 1, 0.
        XCTAssertEqual(try drive(EarlyStopping(patience: 2), [1.0, 0.9, 0.95, 0.8]), 4)
        // A baseline beaten restarts the wait as usual.
        XCTAssertEqual(try drive(EarlyStopping(patience: 2, baseline: 0.95), [0.9, 0.8, 0.85, 0.85, 0.85]), 4)
        // Keras's `epoch < start_from_epoch` (0-based): epochs 1 and 2 are not watched, 7 is the first best.
        XCTAssertEqual(try drive(EarlyStopping(patience: 0, startFromEpoch: 2), [5, 6, 7, 1, 2, 0]), 5)
    }

    func testEarlyStoppingModes() throws {
        // `auto` maximises an accuracy (1 − value here): accuracies 0.0, 0.1, 0.05 → stops at 3.
        XCTAssertEqual(try drive(EarlyStopping(monitor: "val_accuracy", patience: 1), [1.0, 0.9, 0.95, 0.5]), 3)
        XCTAssertEqual(try drive(EarlyStopping(monitor: "categorical_accuracy", patience: 1), [1.0, 0.9, 0.95]), 3)
        // `max` on a loss: 1.0 → 0.9 is no improvement.
        XCTAssertEqual(try drive(EarlyStopping(monitor: "loss", patience: 1, mode: .max), [1.0, 0.9, 1.1]), 2)
    }

    func testRestoreBestWeightsRestoresTheBestEpochExactly() throws {
        for (values, patience, best, ran) in [
            ([3.0, 1.0, 2.0, 2.5, 0.1], 2, 2, 4), // patience runs out at 4; epoch 2's weights come back
            ([3.0, 1.0, 2.0], 5, 2, 3), // restored at the end although patience never ran out
            ([3.0, 4.0, 5.0], 1, 1, 2), // none improved on the first
        ] {
            let model = try smallModel()
            let stopping = EarlyStopping(monitor: "val_loss", patience: patience, restoreBestWeights: true)
            XCTAssertEqual(try drive(stopping, values, model: model), ran)
            XCTAssertEqual(stopping.bestEpoch, best)
            let expected = [Float](repeating: Float(best), count: model.arena.count)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: model.arena.values.pointer, count: model.arena.count)), expected)
        }
        // Without it the last epoch's weights stay.
        let model = try smallModel()
        try drive(EarlyStopping(patience: 1), [3.0, 1.0, 2.0, 2.5], model: model)
        XCTAssertEqual(model.arena.values.pointer[0], 3)
    }

    // MARK: ReduceLROnPlateau

    func testReduceLROnPlateauFollowsKerasRules() throws {
        let plateau = try ReduceLROnPlateau(monitor: "val_loss", factor: 0.5, patience: 2, cooldown: 1, minLR: 0.1)
        var rates: [Double] = []
        let values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
        try drive(plateau, values, control: control(try smallModel(learningRate: 1))) { rates.append($0.learningRate) }
        // By hand (min_delta 1e-4): e1 best; e2 wait 1; e3 wait 2 → 0.5, cooldown 1; e4 the cooldown
        // ends (wait cleared) and, no longer cooling, wait 1; e5 wait 2 → 0.25; e6 wait 1; e7 new
        // best; e8 wait 1; e9 → 0.125; e10 wait 1; e11 → max(0.0625, 0.1) = 0.1; then 0.1 is not
        // above Float(0.1) = 0.10000000149…, so it stays.
        XCTAssertEqual(rates, [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1, 0.1, 0.1])

        // No cooldown, patience 1, max mode on accuracy (1 − value): 0, 0.2 (best), 0.2, 0.25, 0.2.
        let up = try ReduceLROnPlateau(monitor: "val_acc", factor: 0.1, patience: 1, minDelta: 0.1)
        rates = []
        try drive(up, [1.0, 0.8, 0.8, 0.75, 0.8], control: control(try smallModel(learningRate: 1))) { rates.append($0.learningRate) }
        // 0.25 is not above 0.2 + 0.1: each epoch after the best lowers the rate.
        for (rate, expected) in zip(rates, [1, 1, 0.1, 0.01, 0.001]) { XCTAssertEqual(rate, expected, accuracy: 1e-15) }

        XCTAssertThrowsError(try ReduceLROnPlateau(factor: 1)) { error in
            XCTAssertEqual(
                error as? CallbackError,
                .invalidSetting(callback: "ReduceLROnPlateau", reason: "a factor of 1.0 does not reduce the rate; it must be below 1"))
        }
    }

    // MARK: ModelCheckpoint

    func testModelCheckpointWritesOnlyOnImprovementAndLoadsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("best.safetensors")
        let model = try smallModel()
        let checkpoint = ModelCheckpoint(url: url, monitor: "val_loss", saveBestOnly: true)
        var written: [Date?] = []
        try drive(checkpoint, [1.0, 1.2, 0.8, 0.8, 0.9], model: model) { _ in
            written.append(try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date)
        }
        XCTAssertEqual(checkpoint.savedEpochs, [1, 3]) // 0.8 does not beat 0.8
        XCTAssertEqual(checkpoint.best, 0.8)
        XCTAssertEqual(written[3], written[2])
        XCTAssertEqual(written[4], written[2])
        let fresh = try smallModel()
        try fresh.loadWeights(from: url)
        XCTAssertEqual(fresh.weights, model.weights.mapValues { Tensor(shape: $0.shape, scalars: $0.scalars.map { _ in 3 }) })
        let metadata = try SafeTensors.decode(Data(contentsOf: url), file: url.path, as: Float.self).metadata
        XCTAssertEqual(metadata["epoch"], "3")

        // Without saveBestOnly, every epoch.
        let every = ModelCheckpoint(url: url)
        try drive(every, [1.0, 1.2, 0.8])
        XCTAssertEqual(every.savedEpochs, [1, 2, 3])
        // `max` on an accuracy, and a threshold to beat from the start.
        let accuracy = ModelCheckpoint(url: url, monitor: "val_categorical_accuracy", saveBestOnly: true, initialValueThreshold: 0.15)
        try drive(accuracy, [1.0, 0.9, 0.8, 0.85, 0.7])
        XCTAssertEqual(accuracy.savedEpochs, [3, 5])
    }

    // MARK: Unknown keys

    func testAnUnknownMonitorKeyFailsWhenFitBegins() throws {
        let (model, data) = try separable()
        let before = model.weights
        let callbacks: [(any Callback, String)] = [
            (EarlyStopping(), "val_loss"), (try ReduceLROnPlateau(monitor: "val_acc"), "val_acc"),
            (ModelCheckpoint(url: URL(fileURLWithPath: "/nonexistent/x.safetensors"), saveBestOnly: true), "val_loss"),
            (EarlyStopping(monitor: "mae"), "mae"),
        ]
        for (callback, key) in callbacks {
            XCTAssertThrowsError(try model.fit(data, options: FitOptions(epochs: 2), callbacks: [callback])) { error in
                guard case .unknownMonitor(_, let monitor, let available) = error as? CallbackError else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(monitor, key)
                XCTAssertEqual(available, ["loss", "categorical_accuracy"])
                XCTAssertTrue("\(error)".contains("\"loss\", \"categorical_accuracy\""), "\(error)")
            }
        }
        XCTAssertEqual(model.weights, before) // nothing trained
        // Keras's other names are accepted.
        for key in ["loss", "accuracy", "acc", "val_accuracy", "val_categorical_accuracy"] {
            XCTAssertNoThrow(
                try model.fit(data, options: FitOptions(epochs: 1, validationSplit: 0.25), callbacks: [EarlyStopping(monitor: key)]), key)
        }
    }

    // MARK: Real fits

    /// A learnable two-class problem and a model for it.
    private func separable(seed: UInt64 = 9) throws -> (Sequential<Float>, TensorDataset<Float>) {
        var generator = RandomGenerator(seed: seed)
        let n = 128, steps = 4, features = 2
        var x = [Float](), labels = [Int]()
        for _ in 0..<n {
            let label = Int(generator.next() % 2)
            for t in 0..<steps {
                for _ in 0..<features {
                    x.append(((t < steps / 2) == (label == 0) ? 0.8 : -0.8) + Float(generator.nextUnitDouble() - 0.5))
                }
            }
            labels.append(label)
        }
        let data = try TensorDataset(inputs: Tensor(shape: [n, steps, features], scalars: x), labels: labels, classCount: 2)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features), layers: [SimpleRNN(units: 4), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: Adam(learningRate: 0.05))
        return (model, data)
    }

    /// Records every epoch's weights and the calls it gets.
    private final class Recorder: Callback {
        var weights: [[String: Tensor<Float>]] = []
        var calls: [String] = []
        var rates: [Double] = []
        func trainingBegan(_ control: TrainingControl) throws { calls.append("begin") }
        func epochBegan(_ epoch: Int, control: TrainingControl) throws { calls.append("epoch \(epoch)") }
        func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
            weights.append(control.model(as: Float.self)!.weights)
            rates.append(control.learningRate)
            calls.append("end \(epoch)")
        }
        func trainingEnded(_ control: TrainingControl) throws { calls.append("done") }
    }

    func testEarlyStoppingInARealFitReturnsTheHistoryAndTheBestWeights() throws {
        let (model, data) = try separable()
        let recorder = Recorder()
        // min_delta large enough that the loss soon stops "improving".
        let stopping = EarlyStopping(monitor: "val_loss", minDelta: 0.05, patience: 1, restoreBestWeights: true)
        var events = 0
        let history = try model.fit(
            data, options: FitOptions(epochs: 40, batchSize: 16, validationSplit: 0.25, seed: 3),
            callbacks: [recorder, stopping, FitEventCallback { if case .epochEnded = $0 { events += 1 } }])
        XCTAssertLessThan(history.epochs, 40)
        XCTAssertEqual(stopping.stoppedEpoch, history.epochs)
        XCTAssertEqual(events, history.epochs)
        XCTAssertEqual(recorder.calls.first, "begin")
        XCTAssertEqual(recorder.calls.last, "done")
        XCTAssertEqual(recorder.calls.count, 2 + 2 * history.epochs)
        // The best epoch by Keras's rule, worked out from the history, is the one restored.
        var best = Double.infinity, bestEpoch = 0
        for (index, loss) in history.valLoss.enumerated() where loss + 0.05 < best {
            best = loss
            bestEpoch = index + 1
        }
        XCTAssertEqual(stopping.bestEpoch, bestEpoch)
        XCTAssertEqual(model.weights, recorder.weights[bestEpoch - 1])
        XCTAssertNotEqual(model.weights, recorder.weights.last!)
    }

    /// Stops in the middle of an epoch: the epoch ends there and is recorded, as Keras's loop does.
    private final class StopAtStep: Callback {
        let epoch: Int, step: Int
        var ended = false
        init(epoch: Int, step: Int) { (self.epoch, self.step) = (epoch, step) }
        func batchEnded(_ logs: BatchLogs, control: TrainingControl) throws {
            if logs.epoch == epoch, logs.step == step { control.stopTraining = true }
        }
        func trainingEnded(_ control: TrainingControl) throws { ended = true }
    }

    func testAStopInsideAnEpochEndsItAndFitReturns() throws {
        let (model, data) = try separable()
        let stop = StopAtStep(epoch: 2, step: 3)
        var last: FitEvent?
        let history = try model.fit(
            data, options: FitOptions(epochs: 5, batchSize: 16), callbacks: [stop, FitEventCallback { last = $0 }])
        XCTAssertTrue(stop.ended)
        XCTAssertEqual(history.epochs, 2)
        guard case .epochEnded(2, let steps, let training, nil, _) = last else { return XCTFail("\(String(describing: last))") }
        XCTAssertEqual(steps, 3)
        XCTAssertEqual(training.samples, 48)
    }

    func testALearningRateSetByACallbackIsUsedAndKept() throws {
        final class Halve: Callback {
            func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws { control.learningRate /= 2 }
        }
        let (model, data) = try separable()
        let recorder = Recorder()
        try model.fit(data, options: FitOptions(epochs: 3), callbacks: [Halve(), recorder])
        XCTAssertEqual(recorder.rates, [0.025, 0.0125, 0.00625])
        XCTAssertEqual(model.optimizer!.learningRate, 0.00625)
        // And with a scheduled plateau in a real fit, the rate only ever falls by the factor.
        let (other, otherData) = try separable()
        let plateau = try ReduceLROnPlateau(monitor: "loss", factor: 0.5, patience: 0, minDelta: 10)
        let seen = Recorder()
        try other.fit(otherData, options: FitOptions(epochs: 3), callbacks: [plateau, seen])
        XCTAssertEqual(seen.rates, [0.05, 0.025, 0.0125]) // every epoch fails a delta of 10 after the first
    }

    /// `onEvent` and `stopRequested` work as before beside the new callbacks.
    func testOnEventAndStopRequestedStillWork() throws {
        let (model, data) = try separable()
        var options = FitOptions(epochs: 3, batchSize: 32)
        let counter = StepCounter()
        options.stopRequested = { counter.step() >= 6 }
        var batches = 0
        XCTAssertThrowsError(try model.fit(data, options: options) { if case .batchEnded = $0 { batches += 1 } }) { error in
            guard case TrainingError.interrupted(2, 2, let history) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(history.epochs, 1)
        }
        XCTAssertEqual(batches, 5)
    }
}

/// Counts calls, from the `@Sendable` closure `stopRequested` needs.
private final class StepCounter: @unchecked Sendable {
    private var count = 0
    func step() -> Int {
        count += 1
        return count
    }
}
