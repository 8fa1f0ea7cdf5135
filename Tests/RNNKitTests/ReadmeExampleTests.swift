import Foundation
import XCTest
import RNNKit

/// The README's example, kept compiling and working: the same calls on a small synthetic set
/// shaped like MNIST (the README reads the real files).
final class ReadmeExampleTests: XCTestCase {
    func testReadmeExample() throws {
        var generator = RandomGenerator(seed: 1)
        let labels = (0..<640).map { _ in UInt8(generator.next() % 10) }
        // Each class lights its own band of rows, so the task is learnable.
        let pixels = labels.flatMap { label in (0..<784).map { UInt8($0 / 28 / 3 == Int(label) ? 255 : generator.next() % 64) } }
        let train = try ImageDataset(pixels: pixels, labels: labels, rows: 28, columns: 28)

        // — as in the README (a larger rate, so that a few epochs on 576 images show learning) —
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                LSTM(units: 64),
                Dense(units: 10, activation: .softmax),
            ])
        try model.compile(optimizer: Adam(learningRate: 0.01))
        model.workers = 2
        BLASConfiguration.threads = 1
        XCTAssertTrue(model.summary().contains("Total params: 24,458"), model.summary())
        var reported: [Int] = []
        let history = try model.fit(train, options: FitOptions(epochs: 3, batchSize: 64, validationSplit: 0.1)) { event in
            if case .epochEnded(let epoch, _, _, let validation, _) = event {
                reported.append(epoch)
                XCTAssertNotNil(validation)
            }
        }
        let result = try model.evaluate(train)
        // — end —

        XCTAssertEqual(history.epochs, 3)
        XCTAssertEqual(reported, [1, 2, 3])
        XCTAssertGreaterThan(result.accuracy, 0.5, "history: \(history.valCategoricalAccuracy)")
    }
}
