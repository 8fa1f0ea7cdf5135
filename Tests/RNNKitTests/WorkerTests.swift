import Synchronization
import XCTest
@testable import RNNKit

/// Sharing a batch across worker threads must not change what is computed.
final class WorkerTests: XCTestCase {
    func model(workers: Int) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 6),
            layers: [
                SimpleRNN(units: 7, returnSequences: true), SimpleRNN(units: 5), Dense(units: 4, activation: .softmax),
            ], seed: 11)
        try model.compile(optimizer: Adam(learningRate: 0.01))
        model.workers = workers
        return model
    }

    func testShardedGradientsEqualOneThreads() throws {
        let reference = try model(workers: 1)
        for workers in [2, 3] {
            let sharded = try model(workers: workers)
            for batch in [1, 2, 7, 32] {
                let (x, labels) = randomBatch(steps: 5, batch: batch, features: 6, classes: 4, seed: UInt64(batch), as: Float.self)
                let (loss, gradients) = reference.lossAndGradients(x: x, labels: labels)
                let (shardedLoss, shardedGradients) = sharded.lossAndGradients(x: x, labels: labels)
                XCTAssertEqual(shardedLoss, loss, accuracy: 1e-6 * abs(loss), "workers \(workers), batch \(batch)")
                for (name, gradient) in gradients {
                    XCTAssertLessThan(relativeError(shardedGradients[name]!, gradient), 1e-5, "\(name), workers \(workers), batch \(batch)")
                }
            }
        }
    }

    func testShardedTrainingEvaluationAndPredictionMatch() throws {
        var generator = RandomGenerator(seed: 5)
        let n = 101
        let x = (0..<(n * 30)).map { _ in Float(generator.nextUnitDouble()) }
        let labels = (0..<n).map { _ in Int(generator.next() % 4) }
        let data = try TensorDataset(inputs: Tensor(shape: [n, 5, 6], scalars: x), labels: labels, classCount: 4)
        let single = try model(workers: 1), sharded = try model(workers: 2)
        let options = FitOptions(epochs: 2, batchSize: 16, validationSplit: 0.2, seed: 3)
        let historyA = try single.fit(data, options: options), historyB = try sharded.fit(data, options: options)
        for (a, b) in zip(historyA.loss + historyA.valLoss, historyB.loss + historyB.valLoss) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (name, weight) in single.weights {
            XCTAssertLessThan(relativeError(sharded.weights[name]!.scalars, weight.scalars), 1e-4, name)
        }
        let predictedA = try single.predict(data, batchSize: 9), predictedB = try sharded.predict(data, batchSize: 9)
        XCTAssertLessThan(relativeError(predictedB.scalars, predictedA.scalars), 1e-4)
        let output = Buffer<Float>(count: n * 4)
        // The raw-batch prediction path lays samples time-major.
        var timeMajor = [Float](repeating: 0, count: n * 30)
        for b in 0..<n { for t in 0..<5 { for i in 0..<6 { timeMajor[(t * n + b) * 6 + i] = x[(b * 5 + t) * 6 + i] } } }
        timeMajor.withUnsafeBufferPointer { sharded.predict(x: $0.baseAddress!, batchSize: n, into: output.pointer) }
        XCTAssertLessThan(relativeError(output.array, predictedB.scalars), 1e-5)
        XCTAssertEqual(try single.evaluate(data).accuracy, try sharded.evaluate(data).accuracy)
    }

    /// A seed fixes a run bit for bit, with one worker or several.
    func testTrainingIsReproducibleFromASeed() throws {
        var generator = RandomGenerator(seed: 8)
        let n = 80
        let data = try TensorDataset(
            inputs: Tensor(shape: [n, 5, 6], scalars: (0..<(n * 30)).map { _ in Float(generator.nextUnitDouble()) }),
            labels: (0..<n).map { _ in Int(generator.next() % 4) }, classCount: 4)
        for workers in [1, 2] {
            let runs = try (0..<2).map { _ -> [String: Tensor<Float>] in
                let model = try model(workers: workers)
                try model.fit(data, options: FitOptions(epochs: 2, batchSize: 8, validationSplit: 0.25, seed: 4))
                return model.weights
            }
            XCTAssertEqual(runs[0], runs[1], "\(workers) workers")
        }
    }

    func testVectorTanhKeepsTailsAndNaN() {
        for count in [1, 7, 8, 9, 17, 33] {
            let values: [Float] = (0..<count).map { Float($0) * 0.37 - 3 }
            let output = buffer(values)
            Float.tanhInPlace(output.pointer, count: count)
            for (input, result) in zip(values, output.array) {
                XCTAssertEqual(result, Float(Double.tanh(Double(input))), accuracy: 4 * Float.ulpOfOne, "tanh(\(input)) of \(count)")
            }
        }
        let special = buffer([Float.nan, .infinity, -.infinity, 0, 1e-5, -1e-5, 20, -20, .nan])
        Float.tanhInPlace(special.pointer, count: 9)
        let result = special.array
        XCTAssertTrue(result[0].isNaN && result[8].isNaN, "NaN must survive: \(result)")
        // Saturated and tiny values to within the approximation's error: its reciprocal estimate
        // leaves ±(1 − 2⁻²²) beyond the clamp, and tanh(x) = x near 0 to a few ulps.
        for (value, expected) in zip(result[1...7], [1, -1, 0, 1e-5, -1e-5, 1, -1] as [Float]) {
            XCTAssertEqual(value, expected, accuracy: 2 * expected.ulp.magnitude + 2 * Float.ulpOfOne * abs(expected), "tanh")
        }
        XCTAssertEqual(result[3].bitPattern, Float(0).bitPattern, "tanh(0) is 0")
    }

    /// Many hand-offs, hot and after the workers have gone to sleep, with more threads than
    /// cores (so callers and workers are preempted at every point): every shard runs exactly once
    /// per call, before the call returns. This caught a stale wake-up that ran a shard late.
    func testWorkerPoolRunsEveryShardExactlyOnceBeforeReturning() {
        for threads in [1, 3] {
            let pool = WorkerPool(threads: threads)
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads + 1)
            defer { hits.deallocate() }
            for round in 0..<4_000 {
                if round % 500 == 499 { usleep(3_000) } // longer than the spin: the workers sleep and must be woken
                hits.initialize(repeating: 0)
                let shards = 1 + round % (threads + 1)
                pool.run(shards) { hits[$0] += 1 }
                let expected = (0...threads).map { $0 < shards ? 1 : 0 }
                guard Array(hits) == expected else {
                    return XCTFail("\(threads) threads, round \(round), \(shards) shards ran \(Array(hits))")
                }
            }
        }
    }

    /// Changing OpenBLAS's thread count while another thread trains used to deadlock (one thread
    /// in `blas_thread_shutdown_`, the other inside a call). A model's batch now holds the gate
    /// shared, and the setting waits for it: here a batch in progress (the gate held for 0.3 s)
    /// delays a setting made from another thread until the batch ends.
    func testSettingBLASThreadsWaitsForTheBatchInProgress() throws {
        let flags = StopFlags()
        // Each event takes the next number: the batch's end must come before the setting's return.
        let events = Atomic<Int>(0), batchEnded = Atomic<Int>(0)
        let batch = Thread {
            BLASConfiguration.passGate.shared {
                flags.stop.store(true, ordering: .sequentiallyConsistent) // the batch has started
                usleep(300_000)
                batchEnded.store(events.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue, ordering: .sequentiallyConsistent)
            }
        }
        batch.start()
        while !flags.stop.load(ordering: .sequentiallyConsistent) { usleep(100) }
        BLASConfiguration.threads = 1
        let settingDone = events.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
        XCTAssertEqual(batchEnded.load(ordering: .sequentiallyConsistent), 1, "the setting returned before the batch ended")
        XCTAssertEqual(settingDone, 2)
    }
}

/// What the test and its toggling thread tell each other.
final class StopFlags: Sendable {
    let stop = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
}
