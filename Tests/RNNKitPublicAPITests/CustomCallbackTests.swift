import Foundation
import RNNKit
import XCTest

/// A callback written outside the module, with only the public API: stops training once the
/// training accuracy reaches a target (Keras's common "stop at 90 %" callback), and keeps a copy
/// of the weights it stopped with.
final class StopAtAccuracy: Callback {
    let target: Double
    private(set) var stoppedAt: Int?
    private(set) var kept: ModelWeights?
    private(set) var ended = false

    init(target: Double) { self.target = target }

    func trainingBegan(_ control: TrainingControl) throws {
        stoppedAt = nil
        ended = false
    }

    func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws {
        guard let accuracy = logs["accuracy"], accuracy >= target else { return }
        stoppedAt = epoch
        kept = control.weights
        control.stopTraining = true
    }

    func trainingEnded(_ control: TrainingControl) throws { ended = true }
}

final class CustomCallbackTests: XCTestCase {
    func testAUserCallbackStopsTrainingAndFitReturnsTheHistorySoFar() throws {
        var generator = RandomGenerator(seed: 5)
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
            inputShape: .sequence(steps: steps, features: features),
            layers: [SimpleRNN(units: 4), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: Adam(learningRate: 0.05))
        let stop = StopAtAccuracy(target: 0.9)
        let history = try model.fit(data, options: FitOptions(epochs: 50, batchSize: 16), callbacks: [stop])
        let epoch = try XCTUnwrap(stop.stoppedAt)
        XCTAssertTrue(stop.ended)
        XCTAssertLessThan(epoch, 50)
        XCTAssertEqual(history.epochs, epoch)
        XCTAssertGreaterThanOrEqual(history.categoricalAccuracy.last!, 0.9)
        XCTAssertLessThan(history.categoricalAccuracy.dropLast().max() ?? 0, 0.9)

        // The weights it kept are the model's; a later run can put them back.
        let kept = try XCTUnwrap(stop.kept)
        let stoppedWeights = model.weights
        try model.fit(data, options: FitOptions(epochs: 1, batchSize: 16), callbacks: [])
        XCTAssertNotEqual(model.weights, stoppedWeights)
        final class Restore: Callback {
            let weights: ModelWeights
            init(_ weights: ModelWeights) { self.weights = weights }
            func trainingEnded(_ control: TrainingControl) throws { try control.restoreWeights(weights) }
        }
        try model.fit(data, options: FitOptions(epochs: 1, batchSize: 16), callbacks: [Restore(kept)])
        XCTAssertEqual(model.weights, stoppedWeights)
    }
}
