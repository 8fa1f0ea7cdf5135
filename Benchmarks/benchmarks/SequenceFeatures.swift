import BenchmarkTiming
import Foundation
import RNNKit

/// What the sequence features cost: a Bidirectional layer against one direction, and
/// go_backwards (a reversed copy of the input and of its gradient) against reading forwards.
/// Each pair is timed alternately in one run (medians), so the ratio is of the same minutes.
struct SequenceFeatureTiming: Codable {
    var configuration: String
    var baseline: String
    var variant: String
    var baselineMillisecondsPerStep: Double
    var variantMillisecondsPerStep: Double
    var ratio: Double
}

extension BenchmarkRun {
    func timeSequenceFeatures() throws -> [SequenceFeatureTiming] {
        let (batch, steps, inputs) = (128, 28, 28)
        var generator = RandomGenerator(seed: 3)
        let x = (0..<(steps * batch * inputs)).map { _ in Float(generator.nextUnitDouble()) }
        let labels = (0..<batch).map { _ in Int32(generator.next() % 10) }
        func model(_ layer: any Layer<Float>) throws -> Sequential<Float> {
            let model = try Sequential<Float>(inputShape: .sequence(steps: steps, features: inputs),
                                              layers: [layer, Dense(units: 10, activation: .softmax)],
                                              backend: BLASBackend(kernels: kernels))
            try model.compile(optimizer: Adam())
            model.workers = workers
            model.reserve(batchCapacity: batch)
            return model
        }
        func step(_ model: Sequential<Float>) -> Double {
            x.withUnsafeBufferPointer { x in
                labels.withUnsafeBufferPointer { labels in
                    timePerCall(samples: 1, warmUp: 0, budget: quick ? 0.3 : 1.0) {
                        _ = try? model.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: batch)
                    }.seconds
                }
            }
        }
        let pairs: [(String, String, () -> RecurrentLayer<Float>, (RecurrentLayer<Float>) -> any Layer<Float>)] = [
            ("LSTM(128)", "Bidirectional(LSTM(128))", { LSTM(units: 128) }, { Bidirectional($0) }),
            ("GRU(128)", "Bidirectional(GRU(128))", { GRU(units: 128) }, { Bidirectional($0) }),
            ("LSTM(128)", "LSTM(128, go_backwards)", { LSTM(units: 128) }, { _ in LSTM<Float>(units: 128, goBackwards: true) }),
        ]
        var results: [SequenceFeatureTiming] = []
        for (baselineName, variantName, make, wrap) in pairs {
            let baseline = try model(make()), variant = try model(wrap(make()))
            _ = step(baseline)
            _ = step(variant)
            var times: ([Double], [Double]) = ([], [])
            for _ in 0..<(quick ? 3 : 7) {
                times.0.append(step(baseline))
                times.1.append(step(variant))
            }
            let (a, b) = (median(times.0), median(times.1))
            results.append(SequenceFeatureTiming(configuration: "(\(batch), \(steps), \(inputs)), train step", baseline: baselineName,
                                                 variant: variantName, baselineMillisecondsPerStep: a * 1e3,
                                                 variantMillisecondsPerStep: b * 1e3, ratio: b / a))
        }
        return results
    }
}
