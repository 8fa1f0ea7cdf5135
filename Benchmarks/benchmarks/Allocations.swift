import CMallocCounter
import RNNKit

/// malloc calls per training step, counted over `steps` steps of `fit`'s own path (gather from
/// bytes, forward, backward, Adam) after two steps that size the buffers and optimiser state.
func mallocsPerTrainingStep(_ workload: Workload, workers: Int, kernels: BLASBackend.Kernels, steps: Int = 64) throws -> Double {
    let data = try syntheticMNIST(count: 8 * workload.batch, seed: 5)
    let model = try workload.makeModel(backend: BLASBackend(kernels: kernels), workers: workers)
    let order = Array(0..<data.count)
    return try order.withUnsafeBufferPointer { order in
        func step(_ k: Int) throws {
            let start = (k % 8) * workload.batch
            try model.trainStep(data, indices: UnsafeBufferPointer(rebasing: order[start..<(start + workload.batch)]))
        }
        for k in 0..<2 { try step(k) }
        let before = rnnkit_malloc_count()
        for k in 0..<steps { try step(k) }
        return Double(rnnkit_malloc_count() - before) / Double(steps)
    }
}
