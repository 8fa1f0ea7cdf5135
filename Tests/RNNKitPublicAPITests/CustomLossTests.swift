import RNNKit
import XCTest

/// A loss written outside the module, with only the public API: Keras's `mean_absolute_error`
/// (mean over each row's outputs of `|y − t|`), honouring masks through `LossBatch`'s helpers.
struct MeanAbsoluteError: Loss {
    var name: String { "mean_absolute_error" }
    var targets: LossTargets { .values }

    func gradientEntry(for head: LossHead) throws -> LossGradientEntry { .output }

    func evaluate<S: BLASScalar>(
        _ batch: LossBatch<S>, entry: LossGradientEntry, gradientScale: S?,
        gradient: UnsafeMutablePointer<S>?
    ) -> BatchFigures {
        let gradient = gradientScale == nil ? nil : gradient
        // A sample's loss is its mean over its steps; over a mask the rows are summed (the model divides).
        let scale = (gradientScale ?? 0) / S(batch.mask == nil ? batch.rowsPerSample : 1) / S(batch.columns)
        var sums = BatchFigures()
        batch.forEachCountedRun(zeroing: gradient) { start, count in
            let run = batch.slice(from: start, count: count)
            for row in 0..<count {
                var rowSum = 0.0
                for j in 0..<batch.columns {
                    let k = row * batch.columns + j, difference = run.outputs[k] - run.targets![k]
                    rowSum += Double(abs(difference))
                    gradient?[start * batch.columns + k] = difference > 0 ? scale : difference < 0 ? -scale : 0
                }
                sums.lossSum += rowSum / Double(batch.columns)
            }
        }
        return batch.finish(sums)
    }
}

final class CustomLossTests: XCTestCase {
    /// The custom loss over a masked sequence output is the mean over the kept steps, as the
    /// built-in losses are; its gradient matches finite differences.
    func testACustomLossHonoursTheMask() throws {
        let (steps, batch, features) = (4, 3, 2)
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [Masking(maskValue: 0), GRU(units: 3, returnSequences: true), Dense(units: 2)], seed: 4)
        try model.compile(optimizer: SGD(), loss: MeanAbsoluteError())
        var x = (0..<(steps * batch * features)).map { Double(($0 * 37) % 17) / 17 - 0.4 }
        let masked = [(1, 0), (3, 0), (0, 2), (3, 1)] // (step, sample)
        for (t, b) in masked { for i in 0..<features { x[(t * batch + b) * features + i] = 0 } }
        let targets = (0..<(steps * batch * 2)).map { Double(($0 * 13) % 7) / 7 - 0.5 }
        func step() throws -> Metrics {
            try x.withUnsafeBufferPointer { x in
                try targets.withUnsafeBufferPointer {
                    try model.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: batch)
                }
            }
        }
        let metrics = try step()
        var outputs = [Double](repeating: 0, count: steps * batch * 2)
        x.withUnsafeBufferPointer { x in
            outputs.withUnsafeMutableBufferPointer { model.predict(x: x.baseAddress!, batchSize: batch, into: $0.baseAddress!) }
        }
        // By hand: outputs are batch-major [B, T, 2], targets time-major [T, B, 2].
        var sum = 0.0, kept = 0
        for t in 0..<steps {
            for b in 0..<batch where !masked.contains(where: { $0 == (t, b) }) {
                kept += 1
                for j in 0..<2 { sum += abs(outputs[(b * steps + t) * 2 + j] - targets[(t * batch + b) * 2 + j]) / 2 }
            }
        }
        XCTAssertEqual(kept, 8)
        XCTAssertEqual(metrics.loss, sum / Double(kept), accuracy: 1e-14)

        try assertGradientsMatchCentralDifferences(model, loss: { try step().loss }, accuracy: 1e-6)
    }
}
