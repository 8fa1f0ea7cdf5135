import BenchmarkTiming
import Foundation
@_spi(Kernels) import RNNKit

/// Every figure of a run, as `--json` writes it.
struct Report: Codable {
    struct Kernel: Codable {
        var workload: String
        var mode: String
        /// The naive reference's time and how many batches it was timed on; nil with `--no-naive`.
        var naiveSecondsPerBatch: Double?
        var naiveBatchesTimed: Int?
        var blasSecondsPerBatch: Double
        /// The naive reference's time over the engine's; nil with `--no-naive`.
        var speedup: Double?
        var gflops: Double
        var percentOfGEMMRate: Double
        /// Of the register-only multiply-add peak on the cores the passes use (`fmaPeak.allCoresGFLOPS`).
        var percentOfFMAPeak: Double?
        /// The sgemm rate measured just before and just after this row's timing (their mean),
        /// which `percentOfGEMMRate` divides by: this machine's speed drifts within a run.
        var gemmRateBeside: Double
        var blasSamplesPerSecond: Double
        /// The same engine with every product in OpenBLAS (`--kernels blas`), timed alternately
        /// with the row's own kernels in the same run; nil when the run itself is `--kernels blas`.
        var openBLASOnlySecondsPerBatch: Double?
        /// PyTorch's training samples/s for the same workload, when measured (train rows only).
        var pytorchSamplesPerSecond: Double?
        var pytorchThreads: Int?
    }
    struct EndToEnd: Codable {
        var model: String
        var batch: Int
        /// Medians over `repeats` runs of `fit`, alternating the three configurations.
        var repeats: Int
        var trainingSamplesPerSecond: Double
        /// With every product in OpenBLAS (`--kernels blas`), same workers; nil in a `--kernels blas` run.
        var openBLASOnlyTrainingSamplesPerSecond: Double?
        /// With one worker instead of `workers`.
        var oneWorkerTrainingSamplesPerSecond: Double?
        var inferenceSamplesPerSecond: Double
        var epochs: Int
        var trainingSecondsAllEpochs: Double
        var wallSecondsWithValidation: Double
        var pytorchTrainingSamplesPerSecond: Double?
        /// One shard's training timed on every worker's core at once, before each repeat (nil
        /// with one worker, or when the process may not run on that many CPUs).
        var coreBalance: CoreBalance?
    }
    /// How far apart the workers' cores ran the same shard at the same moment: per interval, the
    /// slowest core's time over the fastest's (a sharded step waits for the slowest).
    struct CoreBalance: Codable {
        var intervals: Int
        var medianSlowestOverFastest: Double
        var worstSlowestOverFastest: Double
        /// A shard's training step (batch ÷ workers samples, one worker), median over cores and intervals.
        var medianShardMicroseconds: Double
        /// The same on the slowest core of each interval: what a sharded step waits for.
        var medianSlowestShardMicroseconds: Double
    }
    var build: String
    var quick: Bool
    /// The processor, OpenBLAS's version and core before and after RNNKit's repair.
    var machine: BLASCoreReport
    var smallKernels: String
    var openBLAS: String
    var openBLASCore: String
    var fmaPeak: MachineLimit?
    /// Every OpenBLAS core this processor runs, single-threaded sgemm, in this run.
    var openBLASCores: [OpenBLASCoreRate] = []
    var threads: Int
    var workers: Int
    var gemmSize: Int
    var gemmGFLOPS: Double
    var gemmThreadedGFLOPS: Double
    var gemmConcurrentGFLOPS: Double
    var agreementMaxRelativeError: [String: Double] = [:]
    var mallocsPerTrainingStep: [String: Double] = [:]
    var kernels: [Kernel] = []
    var smallProducts: [SmallProduct] = []
    var sequenceFeatures: [SequenceFeatureTiming] = []
    var endToEnd: [EndToEnd] = []
    var pytorch: String?
}

extension Report {
    /// One product shape timed in OpenBLAS and in the small-matrix kernels, single-threaded.
    struct SmallProduct: Codable {
        var shape: String
        var openBLASGFLOPS: Double
        var smallKernelGFLOPS: Double
        /// The machine's sgemm rate per core (the concurrent single-threaded large sgemm ÷ cores).
        var peakPerCoreGFLOPS: Double
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}

struct BenchmarkRun {
    let quick: Bool
    let threads: Int
    let workers: Int
    var only: String? = nil
    var timeNaive = true
    var kernels: BLASBackend.Kernels = .auto
    /// The FMA peak on the passes' cores, once measured: each row's share of it.
    var fmaPeakAllCores: Double? = nil

    static let workloads = [
        Workload(name: "Model A", batch: 32, steps: 28, inputs: 28, units: [10]),
        Workload(name: "Model B", batch: 32, steps: 28, inputs: 28, units: [16, 8, 4]),
        Workload(name: "H64", batch: 64, steps: 28, inputs: 28, units: [64]),
        Workload(name: "H128", batch: 128, steps: 28, inputs: 28, units: [128]),
        Workload(name: "H128 LSTM", cell: .lstm, batch: 128, steps: 28, inputs: 28, units: [128]),
        Workload(name: "H128 GRU", cell: .gru, batch: 128, steps: 28, inputs: 28, units: [128]),
        Workload(name: "H512", batch: 256, steps: 28, inputs: 28, units: [512]),
        Workload(name: "H512 LSTM", cell: .lstm, batch: 256, steps: 28, inputs: 28, units: [512]),
        Workload(name: "H512 GRU", cell: .gru, batch: 256, steps: 28, inputs: 28, units: [512]),
    ]

    /// What the quick pass times: the notebook's models and one of each cell kind.
    var timedWorkloads: [Workload] {
        let chosen =
            quick ? Self.workloads.filter { ["Model A", "Model B", "H128", "H128 LSTM", "H128 GRU"].contains($0.name) } : Self.workloads
        guard let only else { return chosen }
        return chosen.filter { $0.name.localizedCaseInsensitiveContains(only) }
    }

    /// The malloc check: the notebook's models and a small model of each gated cell.
    static let allocationWorkloads = [
        workloads[0], workloads[1],
        Workload(name: "LSTM(16)", cell: .lstm, batch: 32, steps: 28, inputs: 28, units: [16]),
        Workload(name: "GRU(16)", cell: .gru, batch: 32, steps: 28, inputs: 28, units: [16]),
    ]

    private func say(_ text: String) {
        print(text)
        fflush(nil)
    }

    mutating func run() throws -> Report {
        #if DEBUG
            let build = "debug"
        #else
            let build = "release"
        #endif
        // The GEMM rate is measured on as many cores as the model passes use.
        let cores = threads * workers
        let gemmSize = quick ? 1024 : 2048
        let machine = BLASConfiguration.report
        say("Machine: \(machine.summary)")
        say("Processor: \(machine.processor.summary)")
        let peakOne = measureFMAPeak(cores: 1, intervals: quick ? 3 : 7)
        let peakAll = measureFMAPeak(cores: cores, intervals: quick ? 3 : 7)
        let fmaPeak = peakOne.flatMap { one in
            peakAll.map { Report.MachineLimit(vectorBits: widestVectorBits, oneCoreGFLOPS: one, cores: cores, allCoresGFLOPS: $0) }
        }
        fmaPeakAllCores = fmaPeak?.allCoresGFLOPS
        let gemm = measureGEMMRate(n: gemmSize, cores: cores, samples: quick ? 3 : 7)
        BLASConfiguration.threads = threads
        var report = Report(
            build: build, quick: quick, machine: machine, smallKernels: SmallGEMM.instructionSet,
            openBLAS: BLASConfiguration.configuration, openBLASCore: BLASConfiguration.coreName, fmaPeak: fmaPeak,
            threads: threads, workers: workers, gemmSize: gemmSize, gemmGFLOPS: gemm.best,
            gemmThreadedGFLOPS: gemm.threaded, gemmConcurrentGFLOPS: gemm.concurrent)
        say("OpenBLAS: \(report.openBLAS) (core \(report.openBLASCore))")
        if let fmaPeak {
            say(
                String(
                    format: "FMA peak (register-only %d-bit multiply-adds, medians): %.1f GFLOP/s on one core, %.1f on %d core%@ at once",
                    fmaPeak.vectorBits, fmaPeak.oneCoreGFLOPS, fmaPeak.allCoresGFLOPS, cores, cores == 1 ? "" : "s"))
        } else {
            say("FMA peak: not measured (the process may not run on \(cores) CPUs at once)")
        }
        let peakNote = fmaPeak.map { String(format: "; %.0f%% of the FMA peak", 100 * gemm.best / $0.allCoresGFLOPS) } ?? ""
        say(
            String(
                format:
                    "sgemm %d×%d×%d on %d core%@: %.1f GFLOP/s (one call on %d threads %.1f, %d concurrent single-threaded calls %.1f; medians%@)",
                gemmSize, gemmSize, gemmSize, cores, cores == 1 ? "" : "s", gemm.best, cores, gemm.threaded, cores, gemm.concurrent,
                peakNote as NSString))
        if let peakOne, only == nil || only!.localizedCaseInsensitiveContains("core") {
            say("\nOpenBLAS's cores that this processor runs, sgemm \(gemmSize)³ on one thread, alternating rounds (medians):")
            say("| core | GFLOP/s | % of the one-core FMA peak | ÷ the core in use |")
            say("|---|---:|---:|---:|")
            report.openBLASCores = measureOpenBLASCores(n: gemmSize, rounds: quick ? 2 : 5, fmaPeakOneCore: peakOne)
            let inUse = report.openBLASCores.first { $0.core.lowercased() == report.openBLASCore.lowercased() }
            for row in report.openBLASCores {
                say(
                    String(
                        format: "| %@%@ | %.1f | %.0f%% | %@ |", row.core as NSString, row.core == inUse?.core ? " (in use)" : "",
                        row.gflops, row.percentOfFMAPeak, inUse.map { String(format: "%.2f", row.gflops / $0.gflops) } ?? "–"))
            }
            if let inUse, let best = report.openBLASCores.max(by: { $0.gflops < $1.gflops }) {
                say(
                    String(
                        format: "The core in use reaches %.0f%% of the fastest core here (%@)%@.", 100 * inUse.gflops / best.gflops,
                        best.core as NSString, inUse.gflops >= 0.9 * best.gflops ? "" : ": MORE THAN 10% SLOWER"))
            }
            BLASConfiguration.threads = threads
        }
        say(
            "Model passes: \(workers) worker\(workers == 1 ? "" : "s") sharing each batch, \(threads) OpenBLAS thread\(threads == 1 ? "" : "s") per call"
        )

        // Agreement first: no figure is worth printing for an engine that computes something else.
        say("\nChecking that the BLAS engine and the naive reference agree (loss and every gradient, one batch each)…")
        for workload in timedWorkloads {
            let error = try agreement(workload)
            report.agreementMaxRelativeError[workload.label] = error
            say(
                String(
                    format: "  %-10@ %-22@ max relative error %.2e", workload.cell.rawValue as NSString, workload.label as NSString, error))
            guard error < 1e-4 else {
                throw BenchmarkFailure(description: "BLAS and naive disagree on \(workload.label): relative error \(error) ≥ 1e-4")
            }
        }

        // The training loop must not allocate: one worker allocates nothing; handing shards to
        // the worker pool costs one closure context a step. Debug builds allocate freely.
        say("\nmalloc calls per training step (after two warm-up steps, 64 counted):")
        for workload in only == nil ? Self.allocationWorkloads : [] {
            for count in Set([1, workers]).sorted() {
                let mallocs = try mallocsPerTrainingStep(workload, workers: count, kernels: kernels)
                report.mallocsPerTrainingStep["\(workload.name), \(count) worker\(count == 1 ? "" : "s")"] = mallocs
                say(String(format: "  %@, %d worker%@: %g", workload.name as NSString, count, count == 1 ? "" : "s", mallocs))
                if build == "release", mallocs > (count == 1 ? 0 : 1) {
                    throw BenchmarkFailure(
                        description: "the training step of \(workload.name) allocates \(mallocs) times with \(count) workers")
                }
            }
        }

        if only == nil {
            for (name, model, data) in try maskedAndStatefulWorkloads() {
                let mallocs = try mallocsPerTrainingStep(model, data: data)
                report.mallocsPerTrainingStep["\(name), 1 worker"] = mallocs
                say(String(format: "  %@, 1 worker: %g", name as NSString, mallocs))
                if build == "release", mallocs > 0 {
                    throw BenchmarkFailure(description: "the training step of \(name) allocates \(mallocs) times")
                }
            }
        }

        // PyTorch side by side, in this run, on the same workloads (skipped with a line saying so
        // when no python3 with torch can be imported).
        let baseline = PyTorchBaseline.measure(timedWorkloads, budget: quick ? 0.5 : 2)
        report.pytorch = baseline.version
        say("\n" + baseline.summary)

        say("\nPer batch, medians (forward only; train = forward + backward + Adam step); the share of the sgemm rate is of the")
        say("rate measured just before and after each row (1024³, same cores), as the machine's speed drifts within a run:")
        say(
            "| configuration (B, T, D, H) | mode | naive ms/batch | BLAS ms/batch | OpenBLAS-only ms/batch | small-matrix gain | speedup over naive | GFLOP/s | % of sgemm rate | % of FMA peak | sgemm GFLOP/s beside | PyTorch samples/s | RNNKit samples/s | RNNKit ÷ PyTorch |"
        )
        say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for workload in timedWorkloads {
            for training in [false, true] {
                var kernel = try time(workload, training: training)
                if training, let theirs = baseline.results[workload.name] {
                    kernel.pytorchSamplesPerSecond = theirs.samplesPerSecond
                    kernel.pytorchThreads = theirs.threads
                }
                report.kernels.append(kernel)
                let versus =
                    kernel.pytorchSamplesPerSecond.map {
                        String(format: "%.0f | %.0f | %.2f×", $0, kernel.blasSamplesPerSecond, kernel.blasSamplesPerSecond / $0)
                    } ?? String(format: "– | %.0f | –", kernel.blasSamplesPerSecond)
                let openBLAS =
                    kernel.openBLASOnlySecondsPerBatch.map {
                        String(format: "%.4f | %.2f×", $0 * 1e3, $0 / kernel.blasSecondsPerBatch)
                    } ?? "– | –"
                let naive = kernel.naiveSecondsPerBatch.map { String(format: "%.3f", $0 * 1e3) } ?? "–"
                let speedup = kernel.speedup.map { String(format: "%.1f×", $0) } ?? "–"
                let ofPeak = kernel.percentOfFMAPeak.map { String(format: "%.0f%%", $0) } ?? "–"
                say(
                    String(
                        format: "| %@ %@ | %@ | %@ | %.4f | %@ | %@ | %.1f | %.0f%% | %@ | %.0f | %@ |",
                        workload.cell.rawValue as NSString, workload.label as NSString,
                        kernel.mode as NSString, naive as NSString, kernel.blasSecondsPerBatch * 1e3,
                        openBLAS as NSString, speedup as NSString, kernel.gflops, kernel.percentOfGEMMRate, ofPeak as NSString,
                        kernel.gemmRateBeside, versus as NSString))
            }
        }

        if only == nil || only!.localizedCaseInsensitiveContains("Bidirectional") || only!.localizedCaseInsensitiveContains("Mask") {
            say(
                "\nSequence features, training step per batch, medians of alternate timings (Bidirectional should cost at most 2.1× one direction, a masked batch no more than an unmasked one):"
            )
            say("| configuration (B, T, D) | baseline | ms/step | with the feature | ms/step | ratio |")
            say("|---|---|---:|---|---:|---:|")
            report.sequenceFeatures = try timeSequenceFeatures()
            for row in report.sequenceFeatures {
                say(
                    String(
                        format: "| %@ | %@ | %.2f | %@ | %.2f | %.2f× |", row.configuration as NSString, row.baseline as NSString,
                        row.baselineMillisecondsPerStep, row.variant as NSString, row.variantMillisecondsPerStep, row.ratio))
            }
        }

        if only == nil || "Model".localizedCaseInsensitiveContains(only!) || only!.localizedCaseInsensitiveContains("Model") {
            let peakPerCore = gemm.concurrent / Double(cores)
            say(
                String(
                    format:
                        "\nThe notebook models' products, single-threaded, beside the machine's sgemm rate per core (%.1f GFLOP/s; small kernels on %@):",
                    peakPerCore, SmallGEMM.instructionSet as NSString))
            say("| product | OpenBLAS GFLOP/s | small-matrix kernel GFLOP/s | kernel ÷ OpenBLAS | kernel, % of the per-core sgemm rate |")
            say("|---|---:|---:|---:|---:|")
            report.smallProducts = timeSmallProducts(peakPerCore: peakPerCore)
            for product in report.smallProducts {
                say(
                    String(
                        format: "| %@ | %.1f | %.1f | %.1f× | %.0f%% |", product.shape as NSString, product.openBLASGFLOPS,
                        product.smallKernelGFLOPS, product.smallKernelGFLOPS / product.openBLASGFLOPS,
                        100 * product.smallKernelGFLOPS / product.peakPerCoreGFLOPS))
            }
        }

        say(
            "\nEnd to end as train-blas runs (60,000 MNIST-shaped images, validation split 0.1, shuffled, batch 32); medians of alternating runs:"
        )
        say(
            "| model | training samples/s | OpenBLAS only | small-matrix gain | 1 worker | \(workers) workers ÷ 1 | inference samples/s | epochs × runs | PyTorch training samples/s (train step only) | RNNKit ÷ PyTorch |"
        )
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for workload in Self.workloads.prefix(2) where timedWorkloads.contains(where: { $0.name == workload.name }) {
            var result = try endToEnd(workload)
            result.pytorchTrainingSamplesPerSecond = baseline.results[workload.name]?.samplesPerSecond
            report.endToEnd.append(result)
            let versus =
                result.pytorchTrainingSamplesPerSecond.map {
                    String(format: "%.0f | %.1f×", $0, result.trainingSamplesPerSecond / $0)
                } ?? "– | –"
            let openBLAS =
                result.openBLASOnlyTrainingSamplesPerSecond.map {
                    String(format: "%.0f | %.2f×", $0, result.trainingSamplesPerSecond / $0)
                } ?? "– | –"
            let oneWorker =
                result.oneWorkerTrainingSamplesPerSecond.map {
                    String(format: "%.0f | %.2f×", $0, result.trainingSamplesPerSecond / $0)
                } ?? "– | –"
            say(
                String(
                    format: "| %@ | %.0f | %@ | %@ | %.0f | %d × %d | %@ |", workload.name as NSString, result.trainingSamplesPerSecond,
                    openBLAS as NSString, oneWorker as NSString, result.inferenceSamplesPerSecond, result.epochs, result.repeats,
                    versus as NSString))
        }
        if workers > 1, report.endToEnd.contains(where: { $0.coreBalance == nil }) {
            say("The workers' cores could not be timed at once (fewer CPUs than workers in this process's affinity mask).")
        }
        for row in report.endToEnd {
            // A step's shards run in lockstep, so the step waits for the slower core: this bounds
            // what the workers' ratio can show, whatever the engine does.
            guard let balance = row.coreBalance else { continue }
            var line = String(
                format:
                    "%@'s shard (%d samples) trained on the %d cores at once, %d intervals of 5 ms before the runs: %.1f µs a step, %.1f on the slower core (medians); slowest core ÷ fastest %.2f (median), %.2f (worst)",
                row.model as NSString, (row.batch + workers - 1) / workers, workers, balance.intervals, balance.medianShardMicroseconds,
                balance.medianSlowestShardMicroseconds, balance.medianSlowestOverFastest, balance.worstSlowestOverFastest)
            if let oneWorker = row.oneWorkerTrainingSamplesPerSecond {
                // One worker's whole-batch step (from its fit above) over the slower core's shard:
                // the workers' ratio if a sharded step cost nothing beyond its slower shard.
                let oneWorkerStep = Double(row.batch) / oneWorker * 1e6
                line += String(
                    format: "; one worker's %d-sample step took %.1f µs in the fits above, so %d workers ÷ 1 can reach about %.2f×",
                    row.batch, oneWorkerStep, workers, oneWorkerStep / balance.medianSlowestShardMicroseconds)
            }
            say(line)
        }
        return report
    }

    /// Largest relative difference between the engine's and the reference's loss and gradients.
    /// (At most 8 samples: the naive reference of the largest workloads takes a minute a batch.)
    func agreement(_ full: Workload) throws -> Double {
        var workload = full
        workload.batch = min(workload.batch, 8)
        let batch = RandomBatch(workload, seed: 1)
        var results: [[Float]] = []
        for backend in [BLASBackend(kernels: kernels) as any Backend, NaiveBackend()] {
            let model = try workload.makeModel(backend: backend, workers: workers)
            let metrics = try batch.x.withUnsafeBufferPointer { x in
                try batch.labels.withUnsafeBufferPointer { labels in
                    try model.computeGradients(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: workload.batch)
                }
            }
            results.append([Float(metrics.loss)] + model.parameters.flatMap { $0.gradient.array })
        }
        var worst = 0.0, magnitude = 0.0
        for (a, b) in zip(results[0], results[1]) {
            worst = max(worst, Double(abs(a - b)))
            magnitude = max(magnitude, Double(abs(b)))
        }
        return worst / max(magnitude, .leastNormalMagnitude)
    }

    /// One row: the naive reference (unless skipped), then the engine with the run's kernels and,
    /// in an `.auto` run, with every product in OpenBLAS, timed alternately round by round so the
    /// machine's drift falls on both alike; the sgemm rate measured just before and after.
    func time(_ workload: Workload, training: Bool) throws -> Report.Kernel {
        let cores = threads * workers
        func localRate() -> Double {
            defer { BLASConfiguration.threads = threads }
            return measureGEMMRate(n: 1024, cores: cores, samples: 3).best
        }
        let batch = RandomBatch(workload, seed: 2)
        let output = Buffer<Float>(count: workload.batch * workload.classes)
        func timeBatches(_ model: Sequential<Float>, samples: Int, warmUp: Int, budget: Double) -> (seconds: Double, calls: Int) {
            batch.x.withUnsafeBufferPointer { x in
                batch.labels.withUnsafeBufferPointer { labels in
                    timePerCall(samples: samples, warmUp: warmUp, budget: budget) {
                        if training {
                            _ = try? model.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: workload.batch)
                        } else {
                            model.predict(x: x.baseAddress!, batchSize: workload.batch, into: output.pointer)
                        }
                    }
                }
            }
        }
        let naive =
            timeNaive
            ? timeBatches(
                try workload.makeModel(backend: NaiveBackend(), workers: workers),
                samples: quick ? 3 : 9, warmUp: 0, budget: quick ? 1.5 : 6) : nil
        let choices: [BLASBackend.Kernels] = kernels == .auto ? [.auto, .blas] : [kernels]
        let models = try choices.map { try workload.makeModel(backend: BLASBackend(kernels: $0), workers: workers) }
        let rateBefore = localRate()
        var times = Array(repeating: [Double](), count: models.count)
        for round in 0..<(quick ? 3 : 7) {
            for (index, model) in models.enumerated() {
                times[index].append(timeBatches(model, samples: 1, warmUp: round == 0 ? 3 : 0, budget: quick ? 0.3 : 1.0).seconds)
            }
        }
        let gemmRate = (rateBefore + localRate()) / 2
        let engine = median(times[0])
        let gflops = workload.flops(training: training) / engine / 1e9
        return Report.Kernel(
            workload: "\(workload.name) \(workload.label)", mode: training ? "train" : "forward",
            naiveSecondsPerBatch: naive?.seconds, naiveBatchesTimed: naive?.calls, blasSecondsPerBatch: engine,
            speedup: naive.map { $0.seconds / engine }, gflops: gflops, percentOfGEMMRate: 100 * gflops / gemmRate,
            percentOfFMAPeak: fmaPeakAllCores.map { 100 * gflops / $0 },
            gemmRateBeside: gemmRate, blasSamplesPerSecond: Double(workload.batch) / engine,
            openBLASOnlySecondsPerBatch: models.count > 1 ? median(times[1]) : nil)
    }

    /// The products of the notebook's models, per worker shard (16 samples), timed single-threaded
    /// in OpenBLAS and in the small-matrix kernels: (m, n, k, op(A) transposed, op(B) transposed, what).
    static let smallShapes: [(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, what: String)] = [
        (16, 10, 10, false, false, "Model A recurrence h·U"),
        (16, 10, 10, false, true, "Model A backward dz·Uᵀ"),
        (448, 10, 28, false, false, "Model A input projection X·W"),
        (28, 10, 448, true, false, "Model A dW = Xᵀ·dz"),
        (16, 16, 16, false, false, "Model B layer 1 recurrence"),
        (16, 8, 8, false, false, "Model B layer 2 recurrence"),
        (16, 40, 10, false, false, "LSTM(10) recurrence h·U"),
    ]

    func timeSmallProducts(peakPerCore: Double) -> [Report.SmallProduct] {
        Self.smallShapes.map { shape in
            let a = Buffer<Float>(count: shape.m * shape.k), b = Buffer<Float>(count: shape.k * shape.n),
                c = Buffer<Float>(count: shape.m * shape.n)
            for i in 0..<a.count { a.pointer[i] = Float(i % 7) / 7 }
            for i in 0..<b.count { b.pointer[i] = Float(i % 5) / 5 }
            let lda = shape.ta ? shape.m : shape.k, ldb = shape.tb ? shape.k : shape.n
            let flops = 2.0 * Double(shape.m * shape.n * shape.k)
            let blas = timePerCall(samples: quick ? 3 : 9, minimumSample: 0.01, budget: 0.5) {
                Float.gemm(
                    transposeA: shape.ta, transposeB: shape.tb, m: shape.m, n: shape.n, k: shape.k, alpha: 1,
                    a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 1, c: c.pointer, ldc: shape.n)
            }.seconds
            let small = timePerCall(samples: quick ? 3 : 9, minimumSample: 0.01, budget: 0.5) {
                Float.smallGEMM(
                    transposeA: shape.ta, transposeB: shape.tb, m: shape.m, n: shape.n, k: shape.k, alpha: 1,
                    a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 1, c: c.pointer, ldc: shape.n)
            }.seconds
            return Report.SmallProduct(
                shape: String(format: "%@: [%d, %d]·[%d, %d]", shape.what, shape.m, shape.k, shape.k, shape.n),
                openBLASGFLOPS: flops / blas / 1e9, smallKernelGFLOPS: flops / small / 1e9,
                peakPerCoreGFLOPS: peakPerCore)
        }
    }

    /// `fit` over MNIST-shaped data exactly as the trainer calls it, then `predict` over 10,000:
    /// with the run's kernels and workers, with every product in OpenBLAS, and with one worker,
    /// alternately, `repeats` times each; medians.
    func endToEnd(_ workload: Workload) throws -> Report.EndToEnd {
        let data = try syntheticMNIST(count: 60_000, seed: 3)
        let test = try syntheticMNIST(count: 10_000, seed: 4)
        let epochs = quick ? 1 : 5, repeats = quick ? 1 : 3
        var configurations: [(kernels: BLASBackend.Kernels, workers: Int)] = [(kernels, workers)]
        if kernels == .auto { configurations.append((.blas, workers)) }
        if workers > 1 { configurations.append((kernels, 1)) }
        var rates = Array(repeating: [Double](), count: configurations.count)
        var inference: [Double] = [], seconds: [Double] = [], walls: [Double] = []
        var probeIntervals: [[Double]] = []
        let probe = workers > 1 ? try ShardProbe(workload, cores: workers, data: data) : nil
        for _ in 0..<repeats {
            probeIntervals += probe?.measure(intervals: 20, milliseconds: 5) ?? []
            for (index, configuration) in configurations.enumerated() {
                let model = try workload.makeModel(backend: BLASBackend(kernels: configuration.kernels), workers: configuration.workers)
                let start = now()
                let history = try model.fit(data, options: FitOptions(epochs: epochs, batchSize: 32, validationSplit: 0.1, seed: 0))
                let trainingSeconds = history.epochSeconds.reduce(0, +)
                rates[index].append(Double(54_000 * epochs) / trainingSeconds)
                if index == 0 {
                    walls.append(now() - start)
                    seconds.append(trainingSeconds)
                    let timed = timePerCall(samples: 1, warmUp: 0, minimumSample: 0, budget: 10) {
                        _ = try? model.predict(test, batchSize: 32)
                    }
                    inference.append(10_000 / timed.seconds)
                }
            }
        }
        let openBLASIndex = configurations.firstIndex { $0.kernels == .blas && kernels == .auto }
        let oneWorkerIndex = configurations.firstIndex { $0.workers == 1 && workers > 1 }
        return Report.EndToEnd(
            model: workload.name, batch: 32, repeats: repeats,
            trainingSamplesPerSecond: median(rates[0]),
            openBLASOnlyTrainingSamplesPerSecond: openBLASIndex.map { median(rates[$0]) },
            oneWorkerTrainingSamplesPerSecond: oneWorkerIndex.map { median(rates[$0]) },
            inferenceSamplesPerSecond: median(inference), epochs: epochs,
            trainingSecondsAllEpochs: median(seconds), wallSecondsWithValidation: median(walls),
            coreBalance: probeIntervals.isEmpty ? nil : Report.CoreBalance(intervals: probeIntervals))
    }
}
