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
        func model(_ layer: any Layer<Float>, masking: Bool = false) throws -> Sequential<Float> {
            let model = try Sequential<Float>(
                inputShape: .sequence(steps: steps, features: inputs),
                layers: (masking ? [Masking(maskValue: 0)] : []) + [layer, Dense(units: 10, activation: .softmax)],
                backend: BLASBackend(kernels: kernels))
            try model.compile(optimizer: Adam())
            model.workers = workers
            model.reserve(batchCapacity: batch)
            return model
        }
        func step(_ model: Sequential<Float>, input: [Float]? = nil) -> Double {
            (input ?? x).withUnsafeBufferPointer { x in
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
        /// Times `baseline` and `variant` (on `input`) alternately; medians.
        func compare(
            _ baselineName: String, _ baseline: Sequential<Float>, _ variantName: String, _ variant: Sequential<Float>,
            input: [Float]? = nil
        ) {
            _ = step(baseline)
            _ = step(variant, input: input)
            var times: ([Double], [Double]) = ([], [])
            for _ in 0..<(quick ? 3 : 7) {
                times.0.append(step(baseline))
                times.1.append(step(variant, input: input))
            }
            let (a, b) = (median(times.0), median(times.1))
            results.append(
                SequenceFeatureTiming(
                    configuration: "(\(batch), \(steps), \(inputs)), train step", baseline: baselineName,
                    variant: variantName, baselineMillisecondsPerStep: a * 1e3,
                    variantMillisecondsPerStep: b * 1e3, ratio: b / a))
        }
        for (baselineName, variantName, make, wrap) in pairs {
            compare(baselineName, try model(make()), variantName, try model(wrap(make())))
        }
        // Masking: half of each image's steps masked, as the padding of sequences half as long
        // (every sample's last 14 steps: whole steps, skipped) or scattered (a random half of each
        // sample's steps: no whole step), against the same layer on unmasked input.
        var padded = x, scattered = x
        for t in 0..<steps {
            for b in 0..<batch {
                let row = (t * batch + b) * inputs
                if t >= steps / 2 { for i in 0..<inputs { padded[row + i] = 0 } }
                if generator.next() % 2 == 0 { for i in 0..<inputs { scattered[row + i] = 0 } }
            }
        }
        for (variantName, input) in [
            ("Masking → LSTM(128), the last half of every sequence masked", padded),
            ("Masking → LSTM(128), a random half of each sequence's steps masked", scattered),
        ] {
            compare(
                "LSTM(128), unmasked", try model(LSTM(units: 128)), variantName,
                try model(LSTM(units: 128), masking: true), input: input)
        }
        return results
    }
}
