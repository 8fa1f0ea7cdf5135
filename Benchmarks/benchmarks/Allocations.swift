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

/// The training steps of the masked and stateful paths, whose allocations `mallocsPerTrainingStep`
/// does not see: a `Masking` layer, per-sample lengths, and a stateful layer carrying its state.
/// Each model is LSTM(16) → Dense(10, softmax) over 28 steps of 28 features at batch 32.
func maskedAndStatefulWorkloads() throws -> [(name: String, model: Sequential<Float>, data: TensorDataset<Float>)] {
    let (batch, steps, features, samples) = (32, 28, 28, 256)
    var generator = RandomGenerator(seed: 9)
    var values = (0..<(samples * steps * features)).map { _ in Float(generator.nextUnitDouble()) }
    // The first steps of every other sample are zeros, which Masking(0) masks.
    for s in stride(from: 0, to: samples, by: 2) {
        for i in 0..<(5 * features) { values[s * steps * features + i] = 0 }
    }
    let inputs = Tensor(shape: [samples, steps, features], scalars: values)
    let labels = (0..<samples).map { $0 % 10 }
    let plain = try TensorDataset(inputs: inputs, labels: labels, classCount: 10)
    let lengths = try TensorDataset(inputs: inputs, labels: labels, classCount: 10, lengths: (0..<samples).map { 10 + $0 % 19 })
    func model(_ layers: [any Layer<Float>], fixedBatch: Int? = nil) throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features), layers: layers + [Dense(units: 10, activation: .softmax)],
            batchSize: fixedBatch)
        try model.compile(optimizer: Adam())
        model.reserve(batchCapacity: batch)
        return model
    }
    return [
        ("LSTM(16) after Masking", try model([Masking(maskValue: 0), LSTM(units: 16)]), plain),
        ("LSTM(16) with lengths", try model([LSTM(units: 16)]), lengths),
        ("LSTM(16) stateful", try model([LSTM(units: 16, stateful: true)], fixedBatch: batch), plain),
    ]
}

/// malloc calls per training step of `model` on `data` in batches of 32, in order, after two
/// steps that size the buffers and optimiser state.
func mallocsPerTrainingStep(_ model: Sequential<Float>, data: TensorDataset<Float>, steps: Int = 64) throws -> Double {
    let batch = 32, order = Array(0..<data.count)
    return try order.withUnsafeBufferPointer { order in
        func step(_ k: Int) throws {
            let start = (k % (data.count / batch)) * batch
            try model.trainStep(data, indices: UnsafeBufferPointer(rebasing: order[start..<(start + batch)]))
        }
        for k in 0..<2 { try step(k) }
        let before = rnnkit_malloc_count()
        for k in 0..<steps { try step(k) }
        return Double(rnnkit_malloc_count() - before) / Double(steps)
    }
}
