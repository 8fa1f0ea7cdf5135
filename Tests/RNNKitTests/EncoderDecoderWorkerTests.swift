import XCTest
@testable import RNNKit

/// The targets are d loss / d the outputs from further on: the loss is `Σ t · y` per sample and
/// its gradient `gradientScale · t`. Carries a decoder's d loss / d its initial state back into
/// the encoder's backward pass, through the encoder model's own training step.
private struct UpstreamGradientLoss: Loss {
    var name: String { "upstream_gradient" }
    var targets: LossTargets { .values }

    func gradientEntry(for head: LossHead) throws -> LossGradientEntry { .output }

    func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures {
        var figures = BatchFigures()
        for k in 0..<(batch.rows * batch.columns) {
            figures.lossSum += Double(batch.targets![k]) * Double(batch.outputs[k])
            if let gradientScale, let gradient { gradient[k] = gradientScale * batch.targets![k] }
        }
        return batch.finish(figures)
    }
}

/// An encoder–decoder pair joined by their states (`finalState` → `setInitialState`,
/// `initialStateGradient` → the encoder's output gradient and `setFinalCellGradient`) trains the
/// same on several workers as on one: each worker's replicas read and write their shard's rows of
/// the whole batch's states.
final class EncoderDecoderWorkerTests: XCTestCase {
    private struct Run {
        var losses: [Double] = []
        /// Per step: the encoder's final state (h, then c for LSTM) and d loss / d the decoder's initial state.
        var finalStates: [[Float]] = []
        var stateGradients: [[Float]] = []
        var weights: [String: [Float]] = [:]
    }

    private let (encoderSteps, encoderFeatures, decoderSteps, decoderFeatures, units, outputs) = (5, 3, 4, 2, 4, 2)

    /// Trains the pair by hand for `steps` batches of `batch` on `workers` threads each.
    private func train(lstm: Bool, workers: Int, batch: Int = 7, steps: Int = 4) throws -> Run {
        let encoderLayer: RecurrentLayer<Float> = lstm ? LSTM(units: units) : GRU(units: units)
        let decoderLayer: RecurrentLayer<Float> =
            lstm ? LSTM(units: units, returnSequences: true) : GRU(units: units, returnSequences: true)
        let encoder = try Sequential<Float>(
            inputShape: .sequence(steps: encoderSteps, features: encoderFeatures),
            layers: [encoderLayer], seed: 21)
        let decoder = try Sequential<Float>(
            inputShape: .sequence(steps: decoderSteps, features: decoderFeatures),
            layers: [decoderLayer, Dense(units: outputs)], seed: 22)
        // SGD: an update proportional to the gradient keeps summation-order differences as small.
        try encoder.compile(optimizer: SGD(learningRate: 0.2), loss: UpstreamGradientLoss())
        try decoder.compile(optimizer: SGD(learningRate: 0.2), loss: MeanSquaredError())
        decoderLayer.computesInitialStateGradient = true
        encoder.workers = workers
        decoder.workers = workers
        var run = Run()
        let count = batch * units
        func array(_ pointer: UnsafePointer<Float>?) -> [Float] {
            pointer.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
        }
        for step in 0..<steps {
            let x1: [Float] = randomValues(encoderSteps * batch * encoderFeatures, seed: UInt64(100 + step))
            let x2: [Float] = randomValues(decoderSteps * batch * decoderFeatures, seed: UInt64(200 + step))
            let targets: [Float] = randomValues(decoderSteps * batch * outputs, seed: UInt64(300 + step))
            // The encoder's forward pass; its final state starts the decoder.
            var encoded = [Float](repeating: 0, count: count)
            x1.withUnsafeBufferPointer { x in
                encoded.withUnsafeMutableBufferPointer { encoder.predict(x: x.baseAddress!, batchSize: batch, into: $0.baseAddress!) }
            }
            let final = encoderLayer.finalState
            XCTAssertEqual(array(final.h), encoded, "h_T is the encoder's output, workers \(workers), step \(step)")
            XCTAssertEqual(final.c == nil, !lstm)
            run.finalStates.append(array(final.h) + array(final.c))
            decoderLayer.setInitialState(h: final.h, c: final.c)
            // The decoder's step, and d loss / d its initial state.
            let metrics = try x2.withUnsafeBufferPointer { x in
                try targets.withUnsafeBufferPointer { try decoder.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: batch) }
            }
            run.losses.append(metrics.loss)
            let initial = try XCTUnwrap(decoderLayer.initialStateGradient)
            XCTAssertEqual(initial.c == nil, !lstm)
            run.stateGradients.append(array(initial.h) + array(initial.c))
            // The encoder's step: d loss / d h_T through its output (the loss scales by 1 / batch), d c_T beside it.
            let upstream = array(initial.h).map { $0 * Float(batch) }
            encoderLayer.setFinalCellGradient(initial.c)
            try x1.withUnsafeBufferPointer { x in
                _ = try upstream.withUnsafeBufferPointer {
                    try encoder.trainStep(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: batch)
                }
            }
            encoderLayer.setFinalCellGradient(nil)
        }
        for (prefix, model) in [("encoder", encoder), ("decoder", decoder)] {
            for (name, weight) in model.weights { run.weights["\(prefix)/\(name)"] = weight.scalars }
        }
        return run
    }

    private func check(lstm: Bool) throws {
        let cell = lstm ? "LSTM" : "GRU"
        let reference = try train(lstm: lstm, workers: 1)
        // The state must matter, or a replica that ignores it would pass.
        XCTAssertGreaterThan(reference.stateGradients[0].map { abs($0) }.max()!, 1e-3, cell)
        for workers in [2, 3] {
            let sharded = try train(lstm: lstm, workers: workers)
            let context = "\(cell), \(workers) workers"
            for (step, (a, b)) in zip(sharded.losses, reference.losses).enumerated() {
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), "loss at step \(step), \(context)")
            }
            for step in reference.finalStates.indices {
                XCTAssertLessThan(
                    relativeError(sharded.finalStates[step], reference.finalStates[step]), 1e-5,
                    "the encoder's final state at step \(step), \(context)")
                XCTAssertLessThan(
                    relativeError(sharded.stateGradients[step], reference.stateGradients[step]), 1e-5,
                    "d loss / d the decoder's initial state at step \(step), \(context)")
            }
            XCTAssertEqual(Set(sharded.weights.keys), Set(reference.weights.keys))
            for (name, weight) in reference.weights {
                XCTAssertLessThan(relativeError(sharded.weights[name]!, weight), 1e-5, "\(name), \(context)")
            }
        }
    }

    func testLSTMEncoderDecoderTrainsAlikeOnSeveralWorkers() throws { try check(lstm: true) }

    func testGRUEncoderDecoderTrainsAlikeOnSeveralWorkers() throws { try check(lstm: false) }
}
