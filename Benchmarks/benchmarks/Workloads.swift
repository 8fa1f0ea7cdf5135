import BenchmarkTiming
import CBLAS
import Foundation
@_spi(Kernels) import RNNKit

/// The recurrent cells a workload can use.
enum CellKind: String, Codable, CaseIterable {
    case simpleRNN = "SimpleRNN", lstm = "LSTM", gru = "GRU"

    var gates: Int { self == .simpleRNN ? 1 : self == .lstm ? 4 : 3 }

    func layer(units: Int, returnSequences: Bool) -> any Layer<Float> {
        switch self {
        case .simpleRNN: SimpleRNN<Float>(units: units, returnSequences: returnSequences)
        case .lstm: LSTM<Float>(units: units, returnSequences: returnSequences)
        case .gru: GRU<Float>(units: units, returnSequences: returnSequences)
        }
    }
}

/// A model to time: recurrent layers of one cell kind (all but the last returning sequences) and
/// a `Dense(10, softmax)` head, fed batches of `batch` sequences of `steps × inputs`.
struct Workload: Codable {
    var name: String
    var cell: CellKind = .simpleRNN
    var batch: Int
    var steps: Int
    var inputs: Int
    var units: [Int]
    var classes = 10

    var label: String {
        units.count == 1
            ? "(\(batch), \(steps), \(inputs), \(units[0]))"
            : "(\(batch), \(steps), \(inputs), \(units.map(String.init).joined(separator: "→")))"
    }

    func makeModel(backend: any Backend, workers: Int = 1, seed: UInt64 = 0) throws -> Sequential<Float> {
        var layers: [any Layer<Float>] = units.enumerated().map { cell.layer(units: $1, returnSequences: $0 < units.count - 1) }
        layers.append(Dense<Float>(units: classes, activation: .softmax))
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: inputs), layers: layers, seed: seed, backend: backend)
        try model.compile(optimizer: Adam<Float>())
        model.workers = workers
        model.reserve(batchCapacity: batch)
        return model
    }

    /// FLOPs of one batch by DESIGN.md's count (GEMMs only; 2 per multiply-add), with G gates
    /// per unit (1, 4, 3). Forward: per recurrent layer `2·T·B·G·H·(D + H)`, Dense `2·B·H·C`.
    /// Backward: per recurrent layer `2·T·B·G·H·(D + 2H)` (dW, dU and the carried gradient) plus
    /// `2·T·B·D·G·H` for dX when a layer lies below; Dense `4·B·H·C`.
    func flops(training: Bool) -> Double {
        let (B, T) = (Double(batch), Double(steps))
        var forward = 0.0, backward = 0.0
        var d = Double(inputs)
        for (index, units) in units.enumerated() {
            let h = Double(units), gh = Double(cell.gates) * h
            forward += 2 * T * B * gh * (d + h)
            backward += 2 * T * B * gh * (d + 2 * h) + (index > 0 ? 2 * T * B * d * gh : 0)
            d = h
        }
        let c = Double(classes)
        forward += 2 * B * d * c
        backward += 4 * B * d * c
        return training ? forward + backward : forward
    }
}

/// Random inputs `[T, B, D]` in [0, 1) and labels for a workload.
struct RandomBatch {
    let x: [Float]
    let labels: [Int32]

    init(_ workload: Workload, seed: UInt64) {
        var generator = RandomGenerator(seed: seed)
        x = (0..<(workload.steps * workload.batch * workload.inputs)).map { _ in Float(generator.nextUnitDouble()) }
        labels = (0..<workload.batch).map { _ in Int32(generator.next() % UInt64(workload.classes)) }
    }
}

/// An MNIST-shaped dataset of random bytes: the trainer's data path (bytes gathered and scaled
/// per batch) without needing the files.
func syntheticMNIST(count: Int, seed: UInt64) throws -> ImageDataset {
    var generator = RandomGenerator(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * 784)
    for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: generator.next()) }
    let labels = (0..<count).map { _ in UInt8(generator.next() % 10) }
    return try ImageDataset(pixels: pixels, labels: labels, rows: 28, columns: 28)
}

/// The single-precision GEMM rate of this machine through OpenBLAS on `cores` cores, in
/// GFLOP/s: the better of one `n × n` sgemm on `cores` OpenBLAS threads and `cores` concurrent
/// single-threaded ones (how a model's workers use the cores; on this OpenBLAS the second is
/// often faster). Medians of `samples` runs. Leaves OpenBLAS at one thread.
func measureGEMMRate(n: Int, cores: Int, samples: Int) -> (best: Double, threaded: Double, concurrent: Double) {
    // Each thread multiplies the shared inputs into its own output.
    let buffers = UncheckedBox((0..<(cores + 2)).map { _ in Buffer<Float>(count: n * n) })
    for i in 0..<(n * n) {
        buffers.value[0].pointer[i] = 0.5
        buffers.value[1].pointer[i] = 0.25
    }
    let multiply: @Sendable (Int) -> Void = { index in
        let (a, b, c) = (buffers.value[0], buffers.value[1], buffers.value[2 + index])
        Float.gemm(
            transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a.pointer, lda: n,
            b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
    }
    let flops = 2 * Double(n) * Double(n) * Double(n)
    BLASConfiguration.threads = cores
    let threaded = flops / timePerCall(samples: samples, warmUp: 1, minimumSample: 0, budget: 30) { multiply(0) }.seconds
    BLASConfiguration.threads = 1
    let concurrent =
        Double(cores) * flops
        / timePerCall(samples: samples, warmUp: 1, minimumSample: 0, budget: 30) {
            DispatchQueue.concurrentPerform(iterations: cores, execute: multiply)
        }.seconds
    return (max(threaded, concurrent) / 1e9, threaded / 1e9, concurrent / 1e9)
}

/// Hands buffers to the threads of `concurrentPerform`, each of which touches only its own.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
