import XCTest

@testable import RNNKit

/// What the tests of a session's 16-bit weights (`.half`, `.bfloat16`) share: the model, the
/// pieces they feed it in, and how they compare. It holds no tests of its own.
class SixteenBitWeightsTestCase: XCTestCase {
    let steps = 12, features = 5

    /// Splits of the 12 steps: whole, one step at a time, and two ragged ones.
    let splits = [[12], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [3, 5, 4], [2, 8, 1, 1]]

    /// An LSTM over 90 units (a partial last panel) under a GRU over 72 (an odd gate count: its
    /// third gate is packed on its own in bfloat16), each over 64 units so that the session packs
    /// both, then a per-step Dense.
    func makeModel(seed: UInt64 = 3) throws -> Sequential<Float> {
        try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [LSTM(units: 90, returnSequences: true), GRU(units: 72, returnSequences: true), TimeDistributed(Dense(units: 4))],
            seed: seed)
    }

    /// The session's outputs for batch-major `x [B, T, F]` fed in pieces of the given lengths
    /// from zero states, batch-major `[B, T, O]`.
    func streamed(_ session: StreamingSession<Float>, _ x: [Float], pieces: [Int]) throws -> [Float] {
        session.reset()
        let batch = session.batchSize, width = session.outputFeatures
        var result = [Float](repeating: 0, count: batch * steps * width)
        var start = 0
        for n in pieces {
            var values: [Float] = []
            for b in 0..<batch { values += x[(b * steps + start) * features..<(b * steps + start + n) * features] }
            let output = try session.predict(Tensor(shape: [batch, n, features], scalars: values))
            for b in 0..<batch {
                for t in 0..<n {
                    for o in 0..<width { result[(b * steps + start + t) * width + o] = output.scalars[(b * n + t) * width + o] }
                }
            }
            start += n
        }
        return result
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
    }
}
