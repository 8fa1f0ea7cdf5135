import XCTest
@testable import RNNKit

/// Dropout as Keras does it: rate 0 changes nothing, rate p drops a fraction p (kept values scaled
/// by 1/(1 − p)), a recurrent layer's mask is the same at every step, and inference drops nothing.
final class DropoutTests: XCTestCase {
    func model(_ layers: [any Layer<Double>], steps: Int = 6, features: Int = 5) throws -> Sequential<Double> {
        let model = try Sequential<Double>(inputShape: .sequence(steps: steps, features: features), layers: layers, seed: 3)
        try model.compile(optimizer: SGD(learningRate: 0.1))
        return model
    }

    func testRateZeroIsExactlyNoDropout() throws {
        let (x, labels) = randomBatch(steps: 6, batch: 4, features: 5, classes: 3, seed: 1, as: Double.self)
        let plain = try model([GRU(units: 4, returnSequences: true), LSTM(units: 3), Dense(units: 3, activation: .softmax)])
        let zero = try model([
            GRU(units: 4, returnSequences: true, dropout: 0, recurrentDropout: 0, seed: 5), Dropout(rate: 0),
            LSTM(units: 3, dropout: 0, recurrentDropout: 0), Dense(units: 3, activation: .softmax),
        ])
        let (a, ga) = plain.lossAndGradients(x: x, labels: labels)
        let (b, gb) = zero.lossAndGradients(x: x, labels: labels)
        XCTAssertEqual(a, b)
        XCTAssertEqual(ga, gb)
    }

    func testTheFractionDroppedIsTheRate() throws {
        let rate = 0.3, count = 200_000
        let layer = Dropout<Double>(rate: rate, seed: 11)
        var generator = RandomGenerator(seed: 0)
        _ = try layer.build(inputShape: .vector(features: count), generator: &generator)
        layer.reserve(batchCapacity: 1, needsInputGradient: false, backend: BLASBackend())
        layer.setTraining(true, step: 0)
        let ones = [Double](repeating: 1, count: count)
        let output = ones.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batchSize: 1, backend: BLASBackend()), count: count))
        }
        let dropped = Double(output.filter { $0 == 0 }.count) / Double(count)
        // Binomial: σ = √(p(1 − p)/n) ≈ 0.001; five σ is the tolerance.
        let sigma = (rate * (1 - rate) / Double(count)).squareRoot()
        XCTAssertEqual(dropped, rate, accuracy: 5 * sigma)
        XCTAssertTrue(output.allSatisfy { $0 == 0 || abs($0 - 1 / (1 - rate)) < 1e-15 })
        print(String(format: "Dropout(0.3) on %d inputs dropped %.4f (tolerance ±%.4f)", count, dropped, 5 * sigma))

        // At inference the input passes unchanged.
        layer.setTraining(false, step: 0)
        let inferred = ones.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batchSize: 1, backend: BLASBackend()), count: count))
        }
        XCTAssertEqual(inferred, ones)
    }

    /// d loss / d x of a recurrent layer with input dropout is zero exactly where the mask is, and
    /// the mask is the sequence's: the same features of a sample at every step.
    func testARecurrentLayersMaskIsTheSameAtEveryStep() throws {
        let (steps, batch, features) = (7, 5, 8)
        let layer = SimpleRNN<Double>(units: 6, returnSequences: true, dropout: 0.5, seed: 21)
        var generator = RandomGenerator(seed: 1)
        _ = try layer.build(inputShape: .sequence(steps: steps, features: features), generator: &generator)
        layer.reserve(batchCapacity: batch, needsInputGradient: true, backend: BLASBackend())
        layer.setTraining(true, step: 0)
        let x = randomValues(steps * batch * features, seed: 2, as: Double.self)
        let upstream = randomValues(steps * batch * 6, seed: 3, as: Double.self)
        let gradient: [Double] = x.withUnsafeBufferPointer { x in
            _ = layer.forward(x.baseAddress!, batchSize: batch, backend: BLASBackend())
            return upstream.withUnsafeBufferPointer {
                Array(
                    UnsafeBufferPointer(start: layer.backward($0.baseAddress!, batchSize: batch, backend: BLASBackend())!, count: x.count))
            }
        }
        let first = (0..<(batch * features)).map { gradient[$0] == 0 }
        XCTAssertTrue(first.contains(true) && first.contains(false), "some features dropped, some kept")
        for t in 1..<steps {
            XCTAssertEqual((0..<(batch * features)).map { gradient[t * batch * features + $0] == 0 }, first, "step \(t)")
        }
    }

    /// Recurrent dropout, seen through a linear SimpleRNN with W = 0, b = 1 and U = I, so that
    /// `h_t = 1 + h_{t−1} ⊙ m`: a dropped unit stays at 1, a kept one grows by `1/(1 − p)` a step.
    /// The mask is the same at every step, drops the rate's fraction, and is gone at inference.
    func testRecurrentDropoutMasksTheStateWithOneMaskPerSequence() throws {
        let (steps, batch, units, rate) = (4, 100, 500, 0.3)
        let layer = SimpleRNN<Double>(units: units, returnSequences: true, activation: .linear, recurrentDropout: rate, seed: 17)
        var generator = RandomGenerator(seed: 1)
        _ = try layer.build(inputShape: .sequence(steps: steps, features: 1), generator: &generator)
        layer.reserve(batchCapacity: batch, needsInputGradient: false, backend: BLASBackend())
        let (kernel, recurrentKernel, bias) = (layer.parameters[0], layer.parameters[1], layer.parameters[2])
        kernel.value.pointer.update(repeating: 0, count: kernel.count)
        recurrentKernel.value.pointer.update(repeating: 0, count: recurrentKernel.count)
        for k in 0..<units { recurrentKernel.value.pointer[k * units + k] = 1 }
        bias.value.pointer.update(repeating: 1, count: units)
        let x = randomValues(steps * batch, seed: 5, as: Double.self)
        func states(training: Bool) -> [Double] {
            layer.setTraining(training, step: 3)
            return x.withUnsafeBufferPointer {
                Array(
                    UnsafeBufferPointer(
                        start: layer.forward($0.baseAddress!, batchSize: batch, backend: BLASBackend()), count: steps * batch * units))
            }
        }
        let h = states(training: true), keep = 1 / (1 - rate), count = batch * units
        var dropped = 0
        for i in 0..<count {
            let isDropped = h[count + i] == 1
            if isDropped { dropped += 1 }
            var expected = 1.0
            for t in 0..<steps {
                XCTAssertEqual(h[t * count + i], expected, accuracy: 1e-12, "unit \(i) at step \(t)")
                expected = 1 + (isDropped ? 0 : keep * expected)
            }
        }
        let fraction = Double(dropped) / Double(count), sigma = (rate * (1 - rate) / Double(count)).squareRoot()
        XCTAssertEqual(fraction, rate, accuracy: 5 * sigma)
        print(String(format: "recurrent_dropout 0.3 on %d state units dropped %.4f (tolerance ±%.4f)", count, fraction, 5 * sigma))
        // At inference every unit is kept, unscaled: h_t = t.
        let inferred = states(training: false)
        for t in 0..<steps { XCTAssertTrue(inferred[(t * count)..<((t + 1) * count)].allSatisfy { $0 == Double(t + 1) }, "step \(t)") }
    }

    /// A step's masks follow from the seed and the step: the same step draws the same mask, the next another.
    func testMasksFollowFromTheStep() throws {
        let layer = Dropout<Double>(rate: 0.5, seed: 3)
        var generator = RandomGenerator(seed: 0)
        _ = try layer.build(inputShape: .vector(features: 64), generator: &generator)
        layer.reserve(batchCapacity: 1, needsInputGradient: false, backend: BLASBackend())
        let ones = [Double](repeating: 1, count: 64)
        func mask(step: Int) -> [Double] {
            layer.setTraining(true, step: step)
            return ones.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batchSize: 1, backend: BLASBackend()), count: 64))
            }
        }
        XCTAssertEqual(mask(step: 7), mask(step: 7))
        XCTAssertNotEqual(mask(step: 7), mask(step: 8))
    }

    /// `predict` and `evaluate` never drop: two predictions agree, and equal the model's without dropout.
    func testNoDropoutAtInference() throws {
        let (x, _) = randomBatch(steps: 6, batch: 4, features: 5, classes: 3, seed: 4, as: Double.self)
        let dropping = try model([
            LSTM(units: 4, dropout: 0.6, recurrentDropout: 0.4, seed: 1), Dropout(rate: 0.5, seed: 2),
            Dense(units: 3, activation: .softmax),
        ])
        let plain = try model([LSTM(units: 4), Dense(units: 3, activation: .softmax)])
        try plain.setWeights(dropping.weights)
        func predict(_ model: Sequential<Double>) -> [Double] {
            var output = [Double](repeating: 0, count: 4 * 3)
            x.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: 4, into: $0.baseAddress!) }
            }
            return output
        }
        XCTAssertEqual(predict(dropping), predict(plain))
        XCTAssertEqual(predict(dropping), predict(dropping))
    }
}

/// Per-sample lengths mask padded batches exactly as a Masking layer does.
final class SequenceLengthTests: XCTestCase {
    func testLengthsMaskAsMaskingDoes() throws {
        let (steps, batch, features) = (7, 6, 3)
        var (x, labels) = randomBatch(steps: steps, batch: batch, features: features, classes: 3, seed: 2, as: Double.self)
        let lengths: [Int32] = [7, 3, 5, 1, 6, 4]
        // The padding: −1 after each sequence's end, which Masking(−1) masks.
        for b in 0..<batch { for t in Int(lengths[b])..<steps { for i in 0..<features { x[(t * batch + b) * features + i] = -1 } } }
        func model(masking: Bool, workers: Int) throws -> Sequential<Double> {
            let layers: [any Layer<Double>] = [
                Bidirectional(GRU(units: 4, returnSequences: true)), LSTM(units: 3, goBackwards: true),
                Dense(units: 3, activation: .softmax),
            ]
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: steps, features: features),
                layers: masking ? [Masking(maskValue: -1)] + layers : layers, seed: 5)
            try model.compile(optimizer: SGD(learningRate: 0.1))
            model.workers = workers
            return model
        }
        let masked = try model(masking: true, workers: 1)
        try x.withUnsafeBufferPointer { x in
            try labels.withUnsafeBufferPointer {
                _ = try masked.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: batch)
            }
        }
        let reference = masked.parameters.map(\.gradient.array)
        for workers in [1, 2] {
            let lengthed = try model(masking: false, workers: workers)
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { labels in
                    try lengths.withUnsafeBufferPointer {
                        _ = try lengthed.computeGradients(
                            x: x.baseAddress!, labels: labels.baseAddress!, lengths: $0.baseAddress!, batchSize: batch)
                    }
                }
            }
            for (a, b) in zip(lengthed.parameters.map(\.gradient.array), reference) {
                XCTAssertLessThan(relativeError(a, b), 1e-12, "\(workers) workers")
            }
            var withLengths = [Double](repeating: 0, count: batch * 3), withMasking = withLengths
            x.withUnsafeBufferPointer { x in
                lengths.withUnsafeBufferPointer {
                    lengthed.predict(x: x.baseAddress!, lengths: $0.baseAddress!, batchSize: batch, into: &withLengths)
                }
                masked.predict(x: x.baseAddress!, batchSize: batch, into: &withMasking)
            }
            XCTAssertLessThan(relativeError(withLengths, withMasking), 1e-12)
        }

        let bad: [Int32] = [7, 0, 5, 1, 6, 4]
        let plain = try model(masking: false, workers: 1)
        XCTAssertThrowsError(
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { labels in
                    try bad.withUnsafeBufferPointer {
                        try plain.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, lengths: $0.baseAddress!, batchSize: batch)
                    }
                }
            }
        ) { error in XCTAssertTrue("\(error)".contains("length 0 at position 1 is outside 1...7"), "\(error)") }
    }
}
