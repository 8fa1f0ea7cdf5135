import Foundation
import XCTest
@testable import RNNKit

final class ModelTests: XCTestCase {
    func modelA() throws -> Sequential<Float> {
        try Sequential(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN<Float>(units: 10), Dense<Float>(units: 10, activation: .softmax)])
    }

    func modelB() throws -> Sequential<Float> {
        try Sequential(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [
                SimpleRNN<Float>(units: 16, returnSequences: true), SimpleRNN<Float>(units: 8, returnSequences: true),
                SimpleRNN<Float>(units: 4), Dense<Float>(units: 10, activation: .softmax),
            ])
    }

    func testNotebookParameterCounts() throws {
        let a = try modelA(), b = try modelB()
        XCTAssertEqual(a.layers.map { $0.parameters.reduce(0) { $0 + $1.count } }, [390, 110])
        XCTAssertEqual(a.parameterCount, 500)
        XCTAssertEqual(b.layers.map { $0.parameters.reduce(0) { $0 + $1.count } }, [720, 200, 52, 50])
        XCTAssertEqual(b.parameterCount, 1022)
    }

    func testSummaryLooksLikeKeras() throws {
        let summary = try modelA().summary()
        let expected = """
            Model: "sequential"
            ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
            ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
            ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
            │ simple_rnn (SimpleRNN)          │ (None, 10)             │           390 │
            ├─────────────────────────────────┼────────────────────────┼───────────────┤
            │ dense (Dense)                   │ (None, 10)             │           110 │
            └─────────────────────────────────┴────────────────────────┴───────────────┘
             Total params: 500 (1.95 KB)
             Trainable params: 500 (1.95 KB)
             Non-trainable params: 0 (0.00 B)
            """
        XCTAssertEqual(summary, expected)
        let b = try modelB().summary()
        XCTAssertTrue(b.contains("│ simple_rnn_1 (SimpleRNN)        │ (None, 28, 8)          │           200 │"), b)
        XCTAssertTrue(b.contains("│ simple_rnn_2 (SimpleRNN)        │ (None, 4)              │            52 │"), b)
        XCTAssertTrue(b.contains(" Total params: 1,022 (3.99 KB)"), b)
    }

    func testShapesThatDoNotFitAreRefused() {
        XCTAssertThrowsError(
            try Sequential<Float>(
                inputShape: .sequence(steps: 28, features: 28),
                layers: [SimpleRNN(units: 4), SimpleRNN(units: 4)])
        ) { error in
            XCTAssertEqual(
                error as? ModelError,
                .incompatibleInput(
                    layer: "simple_rnn_1", expected: "a sequence (None, steps, features)",
                    got: .vector(features: 4)))
            XCTAssertEqual("\(error)", "layer simple_rnn_1 expects a sequence (None, steps, features) input, got (None, 4)")
        }
        XCTAssertThrowsError(try Sequential<Float>(inputShape: .vector(features: 3), layers: []))
        let singleOutput = try! Sequential<Float>(inputShape: .vector(features: 3), layers: [Dense(units: 1)])
        XCTAssertThrowsError(try singleOutput.compile(optimizer: Adam())) { error in
            XCTAssertTrue("\(error)".contains("at least 2 class scores"), "\(error)")
        }
    }

    func testSeededInitialisationIsReproducibleAndKerasLike() throws {
        let first = try modelA().weights, second = try modelA().weights
        XCTAssertEqual(first, second)
        let other = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)], seed: 1
        ).weights
        XCTAssertNotEqual(first["simple_rnn/kernel"], other["simple_rnn/kernel"])
        // Glorot bounds, zero biases.
        let limit = Float((6.0 / 38.0).squareRoot())
        XCTAssertTrue(first["simple_rnn/kernel"]!.scalars.allSatisfy { abs($0) <= limit })
        XCTAssertTrue(first["simple_rnn/bias"]!.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(first["dense/bias"]!.scalars.allSatisfy { $0 == 0 })
        // Orthogonal recurrent kernel: Uᵀ U = I.
        let u = first["simple_rnn/recurrent_kernel"]!
        for i in 0..<10 {
            for j in 0..<10 {
                let dot = (0..<10).reduce(Float(0)) { $0 + u[$1, i] * u[$1, j] }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-5)
            }
        }
    }

    func testOrthogonalRectangularShapes() {
        var generator = RandomGenerator(seed: 3)
        for (rows, columns) in [(3, 7), (7, 3)] {
            let q = Initializer.orthogonal(rows: rows, columns: columns, gain: 1, generator: &generator)
            // The narrower dimension's vectors are orthonormal.
            let vectors = min(rows, columns)
            for a in 0..<vectors {
                for b in 0..<vectors {
                    var dot = 0.0
                    if rows >= columns {
                        for r in 0..<rows { dot += q[r * columns + a] * q[r * columns + b] }
                    } else {
                        for c in 0..<columns { dot += q[a * columns + c] * q[b * columns + c] }
                    }
                    XCTAssertEqual(dot, a == b ? 1 : 0, accuracy: 1e-12)
                }
            }
        }
    }

    func testFitLearnsASeparableProblemAndRecordsKerasHistory() throws {
        // Class = which half of the sequence holds the larger mean: learnable, not trivial.
        var generator = RandomGenerator(seed: 9)
        let n = 256, steps = 6, features = 3
        var x = [Float](), labels = [Int]()
        for _ in 0..<n {
            let label = Int(generator.next() % 2)
            for t in 0..<steps {
                for _ in 0..<features {
                    let shift: Float = (t < steps / 2) == (label == 0) ? 0.8 : -0.8
                    x.append(shift + Float(generator.nextUnitDouble() - 0.5))
                }
            }
            labels.append(label)
        }
        let data = try TensorDataset(inputs: Tensor(shape: [n, steps, features], scalars: x), labels: labels, classCount: 2)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [SimpleRNN(units: 8), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: Adam(learningRate: 0.01))
        var batches = 0
        let history = try model.fit(data, options: FitOptions(epochs: 5, batchSize: 32, validationSplit: 0.25, seed: 1)) { event in
            if case .batchEnded = event { batches += 1 }
        }
        XCTAssertEqual(batches, 5 * 6) // 192 training samples in batches of 32
        XCTAssertEqual(history.epochs, 5)
        XCTAssertEqual(history.valCategoricalAccuracy.count, 5)
        XCTAssertLessThan(history.loss.last!, history.loss.first!)
        XCTAssertGreaterThan(history.valCategoricalAccuracy.last!, 0.9)
        let json = try JSONSerialization.jsonObject(with: history.jsonData()) as! [String: [Double]]
        XCTAssertEqual(Set(json.keys), ["loss", "categorical_accuracy", "val_loss", "val_categorical_accuracy"])
        let decoded = try JSONDecoder().decode(History.self, from: history.jsonData())
        XCTAssertEqual(decoded.loss, history.loss)
    }

    func testNonFiniteLossStopsTrainingAndKeepsWeights() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 2, features: 2),
            layers: [SimpleRNN(units: 3), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: SGD())
        let data = try TensorDataset(
            inputs: Tensor(shape: [4, 2, 2], scalars: [1, 2, .nan, 4] + Array(repeating: 1, count: 12)),
            labels: [0, 1, 0, 1], classCount: 2)
        let before = model.weights
        XCTAssertThrowsError(try model.fit(data, options: FitOptions(epochs: 1, batchSize: 4, shuffle: false))) { error in
            guard case TrainingError.nonFinite(let epoch, let step, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(epoch, 1)
            XCTAssertEqual(step, 1)
            XCTAssertTrue("\(error)".contains("epoch 1, step 1"))
        }
        XCTAssertEqual(model.weights, before)
    }

    func testKerasValidationSplit() throws {
        let split = try ValidationSplit(count: 60_000, fraction: 0.1)
        XCTAssertEqual(split.training, 0..<54_000)
        XCTAssertEqual(split.validation, 54_000..<60_000)
        XCTAssertEqual(try ValidationSplit(count: 10, fraction: 0.25).training, 0..<7) // ⌊10 · 0.75⌋
        XCTAssertEqual(try ValidationSplit(count: 10, fraction: 0).validation.count, 0)
        XCTAssertThrowsError(try ValidationSplit(count: 10, fraction: 1.5))
        XCTAssertThrowsError(try ValidationSplit(count: 10, fraction: -0.1))
        XCTAssertThrowsError(try ValidationSplit(count: 5, fraction: 1e-17)) // nothing left to validate
    }
}

final class TensorTests: XCTestCase {
    func testRowMajorIndexingAndReshape() {
        var t = Tensor<Float>(shape: [2, 3, 4])
        XCTAssertEqual(t.count, 24)
        t[1, 2, 3] = 7
        XCTAssertEqual(t.scalars[(1 * 3 + 2) * 4 + 3], 7)
        let r = t.reshaped(to: [6, 4])
        XCTAssertEqual(r[5, 3], 7)
        XCTAssertEqual(r.shape, [6, 4])
        XCTAssertEqual(Tensor(shape: [2], scalars: [1, 2]), Tensor<Float>(shape: [2], scalars: [1, 2]))
    }
}
