import BenchmarkTiming
import CCoreProbe
import RNNKit

/// One shard's worth of training on every worker's core at the same moment: each core trains a
/// model of its own (one worker) on `batch ÷ workers` samples a step, as a worker of a sharded
/// step does, and the probe times them side by side. A sharded step waits for its slowest shard,
/// so the spread between the cores bounds what the workers' ratio can show on this machine.
final class ShardProbe {
    private let models: [Sequential<Float>]
    private let data: ImageDataset
    private let order: [Int]
    private let shardSize: Int
    private var stepsPerInterval = 1
    /// Each core's place in `order`, a cache line apart: the cores' threads write them at once.
    private let cursors: UnsafeMutablePointer<Int>
    private static let cursorStride = 8

    init(_ workload: Workload, cores: Int, data: ImageDataset) throws {
        var shard = workload
        shard.batch = (workload.batch + cores - 1) / cores
        models = try (0..<cores).map { _ in try shard.makeModel(backend: BLASBackend(), workers: 1) }
        self.data = data
        var generator = RandomGenerator(seed: 5)
        var order = Array(0..<data.count)
        order.shuffle(using: &generator)
        self.order = order
        shardSize = shard.batch
        cursors = .allocate(capacity: cores * Self.cursorStride)
        for core in 0..<cores { cursors[core * Self.cursorStride] = core * data.count / cores }
    }

    deinit { cursors.deallocate() }

    /// One interval's training steps on `core`'s model.
    func train(core: Int) {
        let cursor = cursors + core * Self.cursorStride
        order.withUnsafeBufferPointer { order in
            for _ in 0..<stepsPerInterval {
                if cursor.pointee + shardSize > order.count { cursor.pointee = 0 }
                _ = try? models[core].trainStep(
                    data, indices: UnsafeBufferPointer(rebasing: order[cursor.pointee..<(cursor.pointee + shardSize)]))
                cursor.pointee += shardSize
            }
        }
    }

    /// Times `intervals` intervals of about `milliseconds` each on all the cores at once: per
    /// interval, each core's time for one training step in µs. Nil when the process may not run
    /// on that many CPUs.
    func measure(intervals: Int, milliseconds: Double) -> [[Double]]? {
        // Size the interval from a few steps on this thread (which also warms every model up).
        stepsPerInterval = 20
        for core in models.indices { train(core: core) }
        let perStep = timePerCall(samples: 3, warmUp: 0, minimumSample: 0, budget: 1) { self.train(core: 0) }.seconds / 20
        stepsPerInterval = max(1, Int(milliseconds * 1e-3 / perStep))
        let cores = models.count
        var seconds = [Double](repeating: 0, count: intervals * cores)
        let status = seconds.withUnsafeMutableBufferPointer { seconds in
            rnnkit_probe_cores(
                Int32(cores), Int32(intervals),
                { context, core in
                    Unmanaged<ShardProbe>.fromOpaque(context!).takeUnretainedValue().train(core: Int(core))
                }, Unmanaged.passUnretained(self).toOpaque(), seconds.baseAddress)
        }
        guard status == 0 else { return nil }
        let perStepMicroseconds = 1e6 / Double(stepsPerInterval)
        return (0..<intervals).map { i in seconds[(i * cores)..<((i + 1) * cores)].map { $0 * perStepMicroseconds } }
    }
}

extension Report.CoreBalance {
    /// The figures of `intervals`, each the cores' step times (µs) measured at the same moment.
    init(intervals: [[Double]]) {
        let spreads = intervals.map { $0.max()! / $0.min()! }
        self.init(
            intervals: intervals.count, medianSlowestOverFastest: median(spreads),
            worstSlowestOverFastest: spreads.max()!, medianShardMicroseconds: median(intervals.flatMap { $0 }),
            medianSlowestShardMicroseconds: median(intervals.map { $0.max()! }))
    }
}
