import Foundation
import XCTest

@testable import RNNKit

/// Stateful layers (Keras's `stateful=True`): batches that continue the sequences of the batch
/// before, whole and in pieces of any length; `resetStates`; `fit` carrying the state across its
/// batches in order (truncated back-propagation through time) and resetting it each epoch; and
/// what such a model refuses.
final class StatefulModelTests: XCTestCase {
    private let batch = 3, features = 2, windowSteps = 4, windows = 3

    /// Every cell kind, stateful or not, returning sequences.
    private func cells(stateful: Bool) -> [(String, () -> RecurrentLayer<Double>)] {
        [
            ("SimpleRNN", { SimpleRNN(units: 5, returnSequences: true, stateful: stateful) }),
            ("SimpleRNN relu", { SimpleRNN(units: 5, returnSequences: true, activation: .relu, stateful: stateful) }),
            ("LSTM", { LSTM(units: 5, returnSequences: true, stateful: stateful) }),
            ("GRU", { GRU(units: 5, returnSequences: true, stateful: stateful) }),
            ("GRU reset before", { GRU(units: 5, resetAfter: false, returnSequences: true, stateful: stateful) }),
        ]
    }

    /// `[B, T, F]` batch-major values, steps `range` of each row, as a tensor.
    private func piece(_ x: [Double], steps: Int, _ range: Range<Int>) -> Tensor<Double> {
        var values: [Double] = []
        for b in 0..<batch { values += x[(b * steps + range.lowerBound) * features..<(b * steps + range.upperBound) * features] }
        return Tensor(shape: [batch, range.count, features], scalars: values)
    }

    /// Steps `range` of a batch-major `[B, T, O]` output.
    private func steps(_ y: [Double], total: Int, width: Int, _ range: Range<Int>) -> [Double] {
        var values: [Double] = []
        for b in 0..<batch { values += y[(b * total + range.lowerBound) * width..<(b * total + range.upperBound) * width] }
        return values
    }

    private func largestDifference(_ a: [Double], _ b: [Double]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// Two stacked layers of `cell` and a per-step Dense: `stateful` for windows of
    /// `windowSteps`, or not for the whole sequence; the same weights (the same seed).
    private func stack(_ cell: () -> RecurrentLayer<Double>, _ second: () -> RecurrentLayer<Double>, steps: Int, stateful: Bool)
        throws -> Sequential<Double>
    {
        try Sequential<Double>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [cell(), second(), TimeDistributed(Dense(units: 2))], batchSize: stateful ? batch : nil, seed: 7)
    }

    /// For every cell, a stateful model fed the windows of a sequence in turn gives the whole
    /// sequence's outputs (one worker and two), and after `resetStates` the first window's again.
    func testWindowsInTurnEqualTheWholeSequence() throws {
        let total = windowSteps * windows
        let x = randomValues(batch * total * features, seed: 3, as: Double.self)
        for (name, cell) in cells(stateful: true) {
            let plain = cells(stateful: false).first { $0.0 == name }!.1
            let whole = try stack(plain, { GRU(units: 4, returnSequences: true) }, steps: total, stateful: false)
            let expected = try whole.predict(piece(x, steps: total, 0..<total)).scalars
            for workers in [1, 2] {
                let model = try stack(cell, { GRU(units: 4, returnSequences: true, stateful: true) }, steps: windowSteps, stateful: true)
                model.workers = workers
                XCTAssertTrue(model.isStateful)
                var first: [Double] = []
                for w in 0..<windows {
                    let range = (w * windowSteps)..<((w + 1) * windowSteps)
                    let output = try model.predict(piece(x, steps: total, range)).scalars
                    if w == 0 { first = output }
                    XCTAssertLessThan(
                        largestDifference(output, steps(expected, total: total, width: 2, range)), 1e-12,
                        "\(name), window \(w), \(workers) workers")
                }
                model.resetStates()
                XCTAssertEqual(try model.predict(piece(x, steps: total, 0..<windowSteps)).scalars, first, "\(name) after resetStates")
            }
        }
    }

    /// Pieces of any length continue the sequences as whole windows do: the model's own steps
    /// run as a batch, others through a session, and the two hand the state to each other.
    func testPiecesOfAnyLengthContinueTheSequences() throws {
        let total = 12
        let x = randomValues(batch * total * features, seed: 5, as: Double.self)
        let whole = try stack(
            { LSTM(units: 5, returnSequences: true) }, { GRU(units: 4, returnSequences: true) }, steps: total, stateful: false)
        let expected = try whole.predict(piece(x, steps: total, 0..<total)).scalars
        let model = try stack(
            { LSTM(units: 5, returnSequences: true, stateful: true) }, { GRU(units: 4, returnSequences: true, stateful: true) },
            steps: windowSteps, stateful: true)
        var start = 0
        for length in [3, 4, 1, 4] { // a session piece, a batch, a one-step piece, a batch
            let range = start..<(start + length)
            let output = try model.predict(piece(x, steps: total, range))
            XCTAssertEqual(output.shape, [batch, length, 2])
            XCTAssertLessThan(largestDifference(output.scalars, steps(expected, total: total, width: 2, range)), 1e-12, "steps \(range)")
            start += length
        }
    }

    /// In a model that mixes them, a layer that is not stateful starts every call from zeros,
    /// in a piece as in a batch, while the stateful one carries its state.
    func testLayersThatAreNotStatefulStartEachCallFromZeros() throws {
        func mixed(steps: Int) throws -> Sequential<Double> {
            try stack(
                { LSTM(units: 5, returnSequences: true, stateful: true) }, { GRU(units: 4, returnSequences: true) }, steps: steps,
                stateful: true)
        }
        let (pieces, byBatch) = (try mixed(steps: windowSteps), try mixed(steps: 3))
        let x = randomValues(batch * 9 * features, seed: 9, as: Double.self)
        for w in 0..<3 {
            let window = piece(x, steps: 9, (w * 3)..<(w * 3 + 3))
            XCTAssertLessThan(largestDifference(try pieces.predict(window).scalars, try byBatch.predict(window).scalars), 1e-12)
        }
    }

    /// `fit` on a stateful model is truncated back-propagation through time: each batch starts
    /// from the state the batch before ended in (computed with the weights of its time), its
    /// gradient stopping there, and each epoch starts from zeros. The same training written out
    /// with a model that is not stateful and `setInitialState` gives the same weights.
    func testFitCarriesTheStateAcrossBatchesAndResetsEachEpoch() throws {
        let samples = batch * windows, classes = 3
        let inputs = Tensor(
            shape: [samples, windowSteps, features], scalars: randomValues(samples * windowSteps * features, seed: 11, as: Double.self))
        let labels = (0..<samples).map { ($0 * 7) % classes }
        let data = try TensorDataset(inputs: inputs, labels: labels, classCount: classes)
        func model(stateful: Bool) throws -> Sequential<Double> {
            let model = try Sequential<Double>(
                inputShape: .sequence(steps: windowSteps, features: features),
                layers: [LSTM(units: 6, stateful: stateful), Dense(units: classes, activation: .softmax)],
                batchSize: stateful ? batch : nil,
                seed: 4)
            try model.compile(optimizer: SGD(learningRate: 0.5))
            return model
        }
        let stateful = try model(stateful: true)
        var options = FitOptions(epochs: 2, batchSize: batch, shuffle: false)
        let history = try stateful.fit(data, options: options)

        let plain = try model(stateful: false)
        let lstm = try XCTUnwrap(plain.layers[0] as? RecurrentLayer<Double>)
        var losses: [Double] = []
        for _ in 0..<2 {
            var h = [Double](repeating: 0, count: batch * 6), c = h, lossSum = 0.0
            for w in 0..<windows {
                let indices = Array((w * batch)..<((w + 1) * batch))
                let metrics = try h.withUnsafeBufferPointer { h in
                    try c.withUnsafeBufferPointer { c in
                        lstm.setInitialState(h: h.baseAddress, c: c.baseAddress)
                        return try indices.withUnsafeBufferPointer { try plain.trainStep(data, indices: $0) }
                    }
                }
                lossSum += metrics.loss
                let final = lstm.finalState
                h = Array(UnsafeBufferPointer(start: final.h, count: h.count))
                c = Array(UnsafeBufferPointer(start: final.c!, count: c.count))
            }
            losses.append(lossSum / Double(windows))
        }
        for (a, b) in zip(stateful.parameters, plain.parameters) {
            let (x, y) = (
                Array(UnsafeBufferPointer(start: a.value.pointer, count: a.count)),
                Array(UnsafeBufferPointer(start: b.value.pointer, count: b.count))
            )
            XCTAssertLessThan(largestDifference(x, y), 1e-12, a.name)
        }
        XCTAssertEqual(history.loss.count, 2)
        for (a, b) in zip(history.loss, losses) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        // Carrying the state matters: without it the same batches train other weights.
        let forgetful = try model(stateful: false)
        options.shuffle = false
        try forgetful.fit(data, options: options)
        let moved = zip(stateful.parameters, forgetful.parameters).map { a, b in
            largestDifference(
                Array(UnsafeBufferPointer(start: a.value.pointer, count: a.count)),
                Array(UnsafeBufferPointer(start: b.value.pointer, count: b.count)))
        }.max()!
        XCTAssertGreaterThan(moved, 1e-6)
    }

    /// What a stateful model refuses, each with a message naming what to change.
    func testRefusals() throws {
        func refuses(_ fragment: String, _ body: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        let shape = FeatureShape.sequence(steps: 4, features: 2)
        refuses("pass batchSize:") { _ = try Sequential<Double>(inputShape: shape, layers: [LSTM(units: 3, stateful: true)]) }
        refuses("Bidirectional") {
            _ = try Sequential<Double>(inputShape: shape, layers: [Bidirectional(GRU(units: 3, stateful: true))], batchSize: 2)
        }
        refuses("goBackwards") {
            _ = try Sequential<Double>(inputShape: shape, layers: [GRU(units: 3, goBackwards: true, stateful: true)], batchSize: 2)
        }
        refuses("1...65536") { _ = try Sequential<Double>(inputShape: shape, layers: [GRU(units: 3)], batchSize: 0) }

        let model = try Sequential<Double>(
            inputShape: shape, layers: [GRU(units: 3, stateful: true), Dense(units: 2, activation: .softmax)], batchSize: 2)
        try model.compile(optimizer: SGD(learningRate: 0.1))
        let data = try TensorDataset(inputs: Tensor(shape: [6, 4, 2], repeating: 0.5), labels: [0, 1, 0, 1, 0, 1], classCount: 2)
        refuses("shuffle: false") { try model.fit(data, options: FitOptions(epochs: 1, batchSize: 2)) }
        refuses("exactly 2 samples") { try model.fit(data, options: FitOptions(epochs: 1, batchSize: 3, shuffle: false)) }
        refuses("whole batches") { _ = try model.evaluate(data, range: 0..<5) }
        refuses("training part's 3 samples") {
            try model.fit(data, options: FitOptions(epochs: 1, batchSize: 2, validationSplit: 0.5, shuffle: false))
        }
        refuses("exactly 2 samples") { _ = try model.predict(Tensor(shape: [3, 4, 2], repeating: 0)) }
        refuses("[batch, steps, 2]") { _ = try model.predict(Tensor(shape: [2, 4, 3], repeating: 0)) }
        let plain = try Sequential<Double>(inputShape: shape, layers: [GRU(units: 3)])
        refuses("only a stateful model") { _ = try plain.predict(Tensor(shape: [2, 3, 2], repeating: 0)) }
        // The refusals changed nothing: evaluation still runs on whole batches.
        XCTAssertEqual(try model.evaluate(data).samples, 6)
        XCTAssertEqual(try model.predict(data).shape, [6, 2])
    }
}

/// `statefulWindows`: the layout of one long sequence for truncated back-propagation through
/// time, and what a stateful model gains from it.
final class StatefulWindowsTests: XCTestCase {
    /// Sample `k · streams + b` is window `k` of part `b`, its targets beside it; the steps too
    /// few for a window in every part are left out; bad counts are refused.
    func testWindowsAreOrderedSoEachBatchContinuesTheOneBefore() throws {
        let data = (0..<23).map { [Float($0)] }, targets = (0..<23).map { [Float($0) + 0.5] }
        let dataset = try statefulWindows(data: data, stepTargets: targets, streams: 2, steps: 3)
        // Parts of 11 steps (0–10, 11–21), 3 windows of 3 each: steps 9, 10 and 20–22 are left out.
        XCTAssertEqual(dataset.count, 6)
        XCTAssertEqual(dataset.sampleShape, .sequence(steps: 3, features: 1))
        let starts = (0..<6).map { index -> Float in
            var x = [Float](repeating: 0, count: 3), labels = [Int32](repeating: 0, count: 3)
            var one = index
            x.withUnsafeMutableBufferPointer { xs in
                labels.withUnsafeMutableBufferPointer { ls in
                    withUnsafePointer(to: &one) {
                        dataset.gather(UnsafeBufferPointer(start: $0, count: 1), into: xs.baseAddress!, labels: ls.baseAddress!)
                    }
                }
            }
            XCTAssertEqual(x, [x[0], x[0] + 1, x[0] + 2])
            return x[0]
        }
        XCTAssertEqual(starts, [0, 11, 3, 14, 6, 17])
        let tokens = try statefulWindows(tokens: Array(0..<10), stepLabels: Array(1..<11), classCount: 11, streams: 1, steps: 5)
        XCTAssertEqual(tokens.count, 2)
        for (arguments, fragment) in [((0, 3), "at least 1"), ((2, 12), "no window of 12 steps")] {
            XCTAssertThrowsError(try statefulWindows(data: data, stepTargets: targets, streams: arguments.0, steps: arguments.1)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
        XCTAssertThrowsError(try statefulWindows(data: data, stepTargets: Array(targets.dropLast()), streams: 2, steps: 3)) {
            XCTAssertTrue("\($0)".contains("one target per step"), "\($0)")
        }
    }

    /// The guide "Long sequences, stateful layers": next-step forecasts of a long noisy series
    /// whose period is longer than a window. A stateful model, whose state runs through each
    /// part whole, beats the same model that starts every window from zeros.
    func testTheStatefulGuidesExample() throws {
        // The guide's code, as written there.
        var generator = RandomGenerator(seed: 1)
        let series: [Float] = (0..<4000).map { t in
            Float(sin(Double(t) * 2 * .pi / 50) + 0.5 * sin(Double(t) * 2 * .pi / 17) + 0.1 * (2 * generator.nextUnitDouble() - 1))
        }
        let inputs = series.dropLast().map { [$0] }, next = series.dropFirst().map { [$0] }
        let split = 3200
        let training = try statefulWindows(
            data: Array(inputs[..<split]), stepTargets: Array(next[..<split]), streams: 8, steps: 10)
        let validation = try statefulWindows(
            data: Array(inputs[split...]), stepTargets: Array(next[split...]), streams: 8, steps: 10)

        func forecaster(stateful: Bool) throws -> Sequential<Float> {
            let model = try Sequential<Float>(
                inputShape: .sequence(steps: 10, features: 1),
                layers: [LSTM(units: 24, returnSequences: true, stateful: stateful), TimeDistributed(Dense(units: 1))],
                batchSize: 8, seed: 0)
            try model.compile(optimizer: Adam(learningRate: 0.01, clipping: .globalNorm(1)), loss: MeanSquaredError())
            return model
        }
        var options = FitOptions(epochs: 30, batchSize: 8, shuffle: false)
        options.validationData = validation
        let model = try forecaster(stateful: true)
        let history = try model.fit(training, options: options)
        // The guide's comparison: the same model, every window from zeros.
        let forgetful = try forecaster(stateful: false)
        let baseline = try forgetful.fit(training, options: options)
        let (statefulLoss, forgetfulLoss) = (history.valLoss.last!, baseline.valLoss.last!)
        print(String(format: "stateful guide: validation MSE %.5f stateful, %.5f from zeros", statefulLoss, forgetfulLoss))
        XCTAssertLessThan(statefulLoss, 0.85 * forgetfulLoss)

        // Afterwards the model forecasts as each of the 8 validation parts goes on, one step at a
        // time, as it does for a whole window.
        let part = (inputs.count - split) / 8
        let window = Tensor(
            shape: [8, 10, 1], scalars: (0..<8).flatMap { b in inputs[(split + b * part)..<(split + b * part + 10)].flatMap { $0 } })
        model.resetStates()
        let whole = try model.predict(window).scalars
        model.resetStates()
        var worst: Float = 0
        for t in 0..<10 {
            let step = try model.predict(Tensor(shape: [8, 1, 1], scalars: (0..<8).map { b in inputs[split + b * part + t][0] }))
            XCTAssertEqual(step.shape, [8, 1, 1])
            for b in 0..<8 { worst = max(worst, abs(step.scalars[b] - whole[b * 10 + t])) }
        }
        XCTAssertLessThan(worst, 1e-5, "one step at a time against the whole window")
    }
}
