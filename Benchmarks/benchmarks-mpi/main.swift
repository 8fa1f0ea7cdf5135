// benchmarks-mpi: data-parallel training over MPI ranks against threads in one process, on this
// machine, and the time of one all-reduce of each model's gradients.
//
// Run alone (`swift run -c release benchmarks-mpi`), it measures one process with 1 and with 2
// worker threads, then starts itself under `mpirun -np 2` (1 worker per rank) for the same
// workloads, and prints both with a cluster projection built from the measured step times.
// Every figure is a median of repeated timings, taken in this one run.
import BenchmarkTiming
import Foundation
@_spi(Kernels) import RNNKit
import RNNKitMPI

struct Workload {
    var name: String
    var cell: String
    var units: [Int]
    var batchSize: Int

    func layers() -> [any Layer<Float>] {
        var layers: [any Layer<Float>] = units.enumerated().map { index, size in
            let sequences = index < units.count - 1
            switch cell {
            case "lstm": return LSTM<Float>(units: size, returnSequences: sequences)
            default: return SimpleRNN<Float>(units: size, returnSequences: sequences)
            }
        }
        layers.append(Dense<Float>(units: 10, activation: .softmax))
        return layers
    }
}

let workloads = [
    Workload(name: "Model A: SimpleRNN(10), batch 32", cell: "simple_rnn", units: [10], batchSize: 32),
    Workload(name: "Model B: SimpleRNN(16→8→4), batch 32", cell: "simple_rnn", units: [16, 8, 4], batchSize: 32),
    Workload(name: "LSTM(128), batch 128", cell: "lstm", units: [128], batchSize: 128),
    Workload(name: "LSTM(512), batch 128", cell: "lstm", units: [512], batchSize: 128),
]
let timings = 5
/// Each timing runs enough steps to last about this long.
let secondsPerTiming = 0.25

/// MNIST-shaped random data (28 steps of 28 features, 10 classes): the arithmetic does not
/// depend on the values.
func dataset() throws -> TensorDataset<Float> {
    var generator = SystemRandomNumberGenerator()
    let count = 4096
    let inputs = Tensor<Float>(
        shape: [count, 28, 28], scalars: (0..<(count * 28 * 28)).map { _ in Float.random(in: 0...1, using: &generator) })
    return try TensorDataset(inputs: inputs, labels: (0..<count).map { $0 % 10 }, classCount: 10)
}

struct Measurement: Codable {
    var workload: String
    var parameters: Int
    /// Training samples per second (the global batch's samples), median over timings.
    var samplesPerSecond: Double
    /// Seconds per step, median.
    var stepSeconds: Double
    /// Seconds per all-reduce of the gradient arena (ranks only), median.
    var allReduceSeconds: Double?
}

/// Trains `workload` for `timings` × `steps` steps after a warm-up, on the global batches every
/// rank draws alike; with `world`, through the MPI reducer.
func measure(_ workload: Workload, data: TensorDataset<Float>, workers: Int, world: MPIWorld?) throws -> Measurement {
    let model = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: workload.layers(), seed: 1)
    try model.compile(optimizer: Adam<Float>())
    model.workers = workers
    if let world {
        try world.broadcast(model: model)
        model.reducer = MPIReducer<Float>(world: world)
    }
    var generator = RandomGenerator(seed: 3)
    let indices = (0..<(workload.batchSize * 64)).map { _ in Int.random(in: 0..<data.count, using: &generator) }
    var done = 0
    func steps(_ count: Int) throws {
        try indices.withUnsafeBufferPointer { all in
            for _ in 0..<count {
                let offset = (done % 64) * workload.batchSize
                try model.trainStep(data, indices: UnsafeBufferPointer(rebasing: all[offset..<(offset + workload.batchSize)]))
                done += 1
            }
        }
    }
    // A warm-up step, timed to choose the steps per timing (rank 0's choice, so all ranks agree).
    var start = now()
    try steps(1)
    var perTiming = UInt64(min(1000, max(1, secondsPerTiming / (now() - start))))
    if let world { perTiming = try world.broadcast(perTiming) }
    try steps(Int(perTiming))
    var seconds: [Double] = []
    for _ in 0..<timings {
        try world?.barrier()
        start = now()
        try steps(Int(perTiming))
        seconds.append((now() - start) / Double(perTiming))
    }
    var allReduce: Double?
    if let world {
        let gradients = model.arena.gradients
        var times: [Double] = []
        for _ in 0..<50 {
            try world.barrier()
            start = now()
            try world.allReduceSum(gradients.pointer, count: gradients.count)
            times.append(now() - start)
        }
        allReduce = median(times)
    }
    let step = median(seconds)
    return Measurement(
        workload: workload.name, parameters: model.parameterCount,
        samplesPerSecond: Double(workload.batchSize) / step, stepSeconds: step, allReduceSeconds: allReduce)
}

BLASConfiguration.threads = 1
let data = try dataset()

if MPIWorld.launchedByMPI {
    let world = try MPIWorld.start()
    var results: [Measurement] = []
    for workload in workloads { results.append(try measure(workload, data: data, workers: 1, world: world)) }
    if world.isRoot {
        print(String(decoding: try JSONEncoder().encode(results), as: UTF8.self))
    }
    world.finish()
    exit(0)
}

print("benchmarks-mpi: \(ProcessInfo.processInfo.activeProcessorCount) cores; medians of \(timings) timings per row, one run")
var single: [Int: [Measurement]] = [:]
for workers in [1, 2] {
    single[workers] = try workloads.map { try measure($0, data: data, workers: workers, world: nil) }
}
let mpirun = Process()
mpirun.executableURL = URL(fileURLWithPath: "/usr/bin/env")
mpirun.arguments = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2", CommandLine.arguments[0]]
let pipe = Pipe()
mpirun.standardOutput = pipe
try mpirun.run()
let output = pipe.fileHandleForReading.readDataToEndOfFile()
mpirun.waitUntilExit()
guard mpirun.terminationStatus == 0, let ranks = try? JSONDecoder().decode([Measurement].self, from: output) else {
    FileHandle.standardError.write(Data("benchmarks-mpi: error: the 2-rank run failed (mpirun status \(mpirun.terminationStatus))\n".utf8))
    exit(1)
}

print(
    "\n| workload | parameters | 1 process × 1 worker, samples/s | 1 process × 2 workers | 2 ranks × 1 worker | ranks ÷ workers | one all-reduce of the gradients (2 ranks, shared memory) |"
)
print("|---|---:|---:|---:|---:|---:|---:|")
for (i, workload) in workloads.enumerated() {
    let one = single[1]![i], two = single[2]![i], mpi = ranks[i]
    print(
        String(
            format: "| %@ | %d | %.0f | %.0f | %.0f | %.2f | %.1f µs (%.1f%% of a step) |", workload.name, mpi.parameters,
            one.samplesPerSecond, two.samplesPerSecond, mpi.samplesPerSecond, mpi.samplesPerSecond / two.samplesPerSecond,
            mpi.allReduceSeconds! * 1e6, 100 * mpi.allReduceSeconds! / mpi.stepSeconds))
}

// The projection, for N machines like this one joined by a network, from step times measured here
// (2 workers) and a ring all-reduce's cost, 2·(N−1)/N·bytes/bandwidth + 2·(N−1)·latency, which
// adds to every step (RNNKit's all-reduce follows the backward pass; it is not overlapped).
// Weak scaling: every machine trains a batch of 128 (the global batch grows with N). Strong
// scaling: a global batch of 1024 split over the N machines (1024/N each), against one machine
// training all 1024.
let links: [(name: String, bytesPerSecond: Double, latency: Double)] = [
    ("10 Gb/s, 30 µs", 10e9 / 8, 30e-6), ("100 Gb/s, 3 µs", 100e9 / 8, 3e-6),
]
let machines = [2, 8, 64]
func ring(_ bytes: Double, _ n: Int, _ link: (name: String, bytesPerSecond: Double, latency: Double)) -> Double {
    let n = Double(n)
    return 2 * (n - 1) / n * bytes / link.bytesPerSecond + 2 * (n - 1) * link.latency
}
print("\nProjected scaling over N machines like this one (step times measured here with 2 workers; ring all-reduce after every step):")
print(
    "\n| model | link | gradient | all-reduce at 2 / 8 / 64 | weak scaling, batch 128 per machine: efficiency at 2 / 8 / 64 | strong scaling, global batch 1024: efficiency at 2 / 8 / 64 |"
)
print("|---|---|---:|---:|---:|---:|")
for units in [128, 512] {
    let lstm = Workload(name: "LSTM(\(units))", cell: "lstm", units: [units], batchSize: 128)
    var step: [Int: Double] = [:]
    for batch in Set([128, 1024] + machines.map { 1024 / $0 }) {
        var sized = lstm
        sized.batchSize = batch
        step[batch] = try measure(sized, data: data, workers: 2, world: nil).stepSeconds
    }
    let bytes = Double(try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: lstm.layers()).parameterCount * 4)
    for link in links {
        let times = machines.map { ring(bytes, $0, link) }
        let weak = times.map { 100 * step[128]! / (step[128]! + $0) }
        let strong = zip(machines, times).map { n, time in 100 * step[1024]! / (Double(n) * (step[1024 / n]! + time)) }
        print(
            String(
                format: "| %@ | %@ | %.2f MB | %.2f / %.2f / %.2f ms | %.0f%% / %.0f%% / %.0f%% | %.0f%% / %.0f%% / %.0f%% |",
                lstm.name, link.name, bytes / 1e6, times[0] * 1e3, times[1] * 1e3, times[2] * 1e3,
                weak[0], weak[1], weak[2], strong[0], strong[1], strong[2]))
    }
    print(
        String(
            format: "| %@ step times here |  |  | batch 16: %.1f ms, 128: %.1f ms, 512: %.1f ms, 1024: %.1f ms |  |  |",
            lstm.name, step[16]! * 1e3, step[128]! * 1e3, step[512]! * 1e3, step[1024]! * 1e3))
}
