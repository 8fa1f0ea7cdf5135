import BenchmarkTiming
import CCoreProbe
@_spi(Benchmarks) @_spi(Kernels) import RNNKit
import Foundation

extension Report {
    /// The machine's own limit: register-only multiply-adds at the widest vector width the
    /// processor has, on one core and on the cores the model passes use, all at once.
    struct MachineLimit: Codable {
        var vectorBits: Int
        var oneCoreGFLOPS: Double
        var cores: Int
        var allCoresGFLOPS: Double
    }

    /// One OpenBLAS core's single-threaded sgemm rate, in the same run as the others.
    struct OpenBLASCoreRate: Codable {
        var core: String
        var gflops: Double
        var percentOfFMAPeak: Double
    }
}

/// The widest vectors the processor runs, in bits, as `rnnkit_fma_loop` takes them.
var widestVectorBits: Int {
    switch Processor.current.vectorLevel {
    case .avx512: return 512
    case .avx2: return 256
    case .avx, .sse: return 128
    }
}

/// The peak multiply-add rate on `cores` cores at once, in GFLOP/s (the sum over cores of each
/// core's median over `intervals` timed loops). Nil when the cores cannot be pinned.
func measureFMAPeak(cores: Int, intervals: Int) -> Double? {
    struct Loop { var bits: Int32; var iterations: Int }
    var loop = Loop(bits: Int32(widestVectorBits), iterations: 4_000_000)
    var seconds = [Double](repeating: 0, count: cores * intervals)
    let status = withUnsafeMutablePointer(to: &loop) { context in
        // A warm-up round (clocks ramp up) that rnnkit_probe_cores times but nobody reads.
        var warmUp = [Double](repeating: 0, count: cores)
        _ = rnnkit_probe_cores(
            Int32(cores), 1,
            { context, _ in
                let loop = context!.assumingMemoryBound(to: Loop.self)
                _ = rnnkit_fma_loop(loop.pointee.bits, loop.pointee.iterations)
            }, context, &warmUp)
        return rnnkit_probe_cores(
            Int32(cores), Int32(intervals),
            { context, _ in
                let loop = context!.assumingMemoryBound(to: Loop.self)
                _ = rnnkit_fma_loop(loop.pointee.bits, loop.pointee.iterations)
            }, context, &seconds)
    }
    guard status == 0 else { return nil }
    let flops = Double(loop.iterations) * rnnkit_fma_loop(loop.bits, 1)
    return (0..<cores).reduce(0.0) { total, core in
        total + flops / median((0..<intervals).map { seconds[$0 * cores + core] }) / 1e9
    }
}

/// The single-threaded `n³` sgemm rate of every OpenBLAS core this processor runs, measured in
/// alternating rounds (the machine's speed drifts); medians. OpenBLAS is back on its core after.
func measureOpenBLASCores(n: Int, rounds: Int, fmaPeakOneCore: Double) -> [Report.OpenBLASCoreRate] {
    let a = Buffer<Float>(count: n * n), b = Buffer<Float>(count: n * n), c = Buffer<Float>(count: n * n)
    for i in 0..<(n * n) { a.pointer[i] = 0.5; b.pointer[i] = 0.25 }
    let flops = 2 * Double(n) * Double(n) * Double(n)
    BLASConfiguration.threads = 1
    let cores = BLASConfiguration.openBLASCoresThisProcessorRuns
    var rates = [String: [Double]]()
    for _ in 0..<rounds {
        for core in cores {
            let seconds = BLASConfiguration.withOpenBLASCore(core) {
                timePerCall(samples: 1, warmUp: 1, minimumSample: 0, budget: 10) {
                    Float.gemm(
                        transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a.pointer, lda: n,
                        b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
                }.seconds
            }
            if let seconds { rates[core, default: []].append(flops / seconds / 1e9) }
        }
    }
    return cores.compactMap { core in
        rates[core].map { Report.OpenBLASCoreRate(core: core, gflops: median($0), percentOfFMAPeak: 100 * median($0) / fmaPeakOneCore) }
    }
}
