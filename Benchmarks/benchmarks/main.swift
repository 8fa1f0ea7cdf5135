import ArgumentParser
import BenchmarkTiming
import Foundation
import RNNKit

/// `swift run -c release benchmarks`: the BLAS engine against the naive reference, against the
/// machine's GEMM rate, and end to end as the trainer runs.
struct Benchmarks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmarks",
        abstract: "Time RNNKit's BLAS engine against its naive reference and the machine's GEMM rate.")

    @Flag(help: "A short pass (under a minute), for CI: fewer repetitions, one epoch end to end.")
    var quick = false

    @Option(help: "Write every figure to this JSON file.")
    var json: String?

    @Option(
        help: ArgumentHelp(
            "Time only the workloads whose names contain this (e.g. \"LSTM\", \"Model A\"); skips the naive timings of the others and, unless it names Model A or B, the end-to-end runs.",
            valueName: "text"))
    var only: String?

    @Flag(help: "Skip timing the naive reference (its columns show nan); agreement is still checked.")
    var noNaive = false

    @Option(help: "OpenBLAS threads per call during the model passes.")
    var threads: Int = 1

    @Option(help: "Threads that share each batch (data parallelism), for both engines.")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Matrix products: auto (small ones in RNNKit's SIMD kernels, the rest in OpenBLAS) or blas (all in OpenBLAS).")
    var kernels: String = "auto"

    @Option(
        help: ArgumentHelp(
            "RNNKit's own kernels on this instruction set: avx512, avx2-fma or portable (default: the best the CPU runs, or RNNKIT_SMALL_KERNELS).",
            valueName: "name"))
    var smallKernels: String?

    @Option(
        help: ArgumentHelp(
            "Only run the training step of the workloads --only names, with the run's kernels, for this many seconds, and time nothing else: a loop to attach a profiler to (perf record).",
            valueName: "seconds"))
    var profile: Double?

    func validate() throws {
        guard BLASBackend.Kernels(rawValue: kernels) != nil else { throw ValidationError("--kernels must be auto or blas, got \(kernels)") }
        guard threads >= 1 else { throw ValidationError("--threads must be 1 or more, got \(threads)") }
        guard workers >= 1 else { throw ValidationError("--workers must be 1 or more, got \(workers)") }
    }

    mutating func run() throws {
        if let smallKernels, !SmallGEMM.force(smallKernels) {
            throw ValidationError(
                "--small-kernels \(smallKernels): this CPU runs \(SmallGEMM.availableInstructionSets.joined(separator: ", "))")
        }
        if let request = SmallGEMM.environmentRequest, !request.honoured {
            print(
                "RNNKIT_SMALL_KERNELS=\(request.name) is not an instruction set this CPU runs (\(SmallGEMM.availableInstructionSets.joined(separator: ", "))): using \(SmallGEMM.instructionSet)"
            )
        }
        #if DEBUG
            let banner = String(repeating: "!", count: 78)
            print("\(banner)\n!! DEBUG BUILD: these numbers mean nothing. Run `swift run -c release benchmarks`.\n\(banner)")
        #endif
        if let profile {
            BLASConfiguration.threads = threads
            for workload in BenchmarkRun.workloads where only.map({ workload.name.localizedCaseInsensitiveContains($0) }) ?? true {
                let model = try workload.makeModel(backend: BLASBackend(kernels: BLASBackend.Kernels(rawValue: kernels)!), workers: workers)
                let batch = RandomBatch(workload, seed: 2)
                let start = now()
                var steps = 0
                try batch.x.withUnsafeBufferPointer { x in
                    try batch.labels.withUnsafeBufferPointer { labels in
                        while now() - start < profile {
                            _ = try model.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: workload.batch)
                            steps += 1
                        }
                    }
                }
                print(
                    String(
                        format: "%@: %d training steps in %.1f s, %.0f samples/s", workload.name, steps, now() - start,
                        Double(steps * workload.batch) / (now() - start)))
            }
            return
        }
        var runner = BenchmarkRun(
            quick: quick, threads: threads, workers: workers, only: only, timeNaive: !noNaive,
            kernels: BLASBackend.Kernels(rawValue: kernels)!)
        let report = try runner.run()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(encoder.encode(report), to: URL(fileURLWithPath: json))
            print("\nWrote \(json)")
        }
    }
}

Benchmarks.main()
