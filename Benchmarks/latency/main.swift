import ArgumentParser
import BenchmarkTiming
import CMallocCounter
import Foundation
import RNNKit
import RNNKitONNX

/// `swift run -c release latency`: the latency of a trained model run live, at batch 1, through a
/// `StreamingSession`: one step, and a whole 28-step sequence fed as one piece, for LSTM(128),
/// GRU(128) and the notebook's Model A (28 features a step), each call timed on its own
/// (medians and 99th percentiles in µs), with float weights and, where the session packs a layer,
/// with half-precision ones (`StreamingWeights.half`) and bfloat16 ones
/// (`StreamingWeights.bfloat16`), whose largest difference from `predict` it also reports. `Benchmarks/latency.py` times PyTorch on the same cases in
/// the same run, and onnxruntime on the models RNNKitONNX exports, each where Python has it.
struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency", abstract: "Time one step and one sequence at batch 1 through a StreamingSession.")

    @Flag(help: "A short pass for CI: fewer calls; still checks that a step allocates nothing.")
    var quick = false

    @Option(help: "Timed calls per case (each timed on its own).")
    var calls: Int = 20000

    @Option(help: "Write every figure to this JSON file.")
    var json: String?

    @Flag(help: "Skip PyTorch and onnxruntime (RNNKit's figures only).")
    var rnnkitOnly = false

    func validate() throws {
        guard calls >= 100 else { throw ValidationError("--calls must be 100 or more, got \(calls)") }
    }

    mutating func run() throws {
        let calls = quick ? 2000 : self.calls
        BLASConfiguration.threads = 1
        let processor = Processor.current
        print("CPU: \(processor.summary); RNNKit's kernels: \(SmallGEMM.instructionSet); one thread")
        var results: [[String: Any]] = []
        var allocating: [String] = []
        var accuracy: [[String: Any]] = []
        for workload in LatencyWorkload.all {
            let model = try workload.makeModel()
            var sessions = [("rnnkit", try StreamingSession(model: model, batchSize: 1))]
            // 16-bit weights where the CPU widens them and the session packs a layer.
            for (engine, weights) in [("rnnkit-half", StreamingWeights.half), ("rnnkit-bf16", .bfloat16)] {
                do {
                    let session = try StreamingSession(model: model, batchSize: 1, weights: weights)
                    if !session.halfWeightLayerNames.isEmpty { sessions.append((engine, session)) }
                } catch {
                    print("  \(workload.name), \(weights) weights: not timed (\(error))")
                }
            }
            for (engine, session) in sessions {
                for steps in [1, 28] {
                    let name = "\(workload.name), \(steps == 1 ? "one step" : "\(steps) steps")"
                    let (times, mallocs) = try time(session, steps: steps, features: workload.features, calls: calls)
                    let sorted = times.sorted()
                    let medianMicroseconds = median(times) * 1e6, p99 = sorted[Int(Double(sorted.count - 1) * 0.99)] * 1e6
                    let label = engine == "rnnkit" ? name : "\(name), \(engine == "rnnkit-half" ? "half" : "bf16") weights"
                    print(
                        String(
                            format: "  %@ median %8.2f µs   p99 %8.2f µs   mallocs/call %g", padded(label) as NSString, medianMicroseconds,
                            p99, Double(mallocs) / 100))
                    if mallocs > 0 { allocating.append(label) }
                    results.append(["engine": engine, "name": name, "median_us": medianMicroseconds, "p99_us": p99, "calls": calls])
                }
                let (stepwise, piece) = try differenceFromPredict(session, model: model, features: workload.features)
                accuracy.append(["engine": engine, "name": workload.name, "one_step_at_a_time": stepwise, "one_piece": piece])
            }
        }
        print("\nLargest difference from predict on the whole 28-step sequence (the last output):")
        for row in accuracy {
            print(
                String(
                    format: "  %@ %@  one step at a time %.3g   as one piece %.3g",
                    padded(row["name"] as! String) as NSString,
                    (row["engine"] as! String).padding(toLength: 12, withPad: " ", startingAt: 0),
                    row["one_step_at_a_time"] as! Double, row["one_piece"] as! Double))
        }
        var limits: [[String: Any]] = []
        print("\nThe machine's limit at batch 1: a step reads every weight once, so it takes at least the time to")
        print("read them at this core's cache bandwidth (a vectorised sum over a buffer of their size, timed as above):")
        for workload in LatencyWorkload.all {
            let bytes = workload.weightCount * MemoryLayout<Float>.size
            let microseconds = readMicroseconds(floats: workload.weightCount, calls: calls)
            print(
                String(format: "  %@ %8.2f µs to read %d KiB", padded("\(workload.name), one step") as NSString, microseconds, bytes / 1024)
            )
            limits.append(["name": "\(workload.name), one step", "weight_bytes": bytes, "read_us": microseconds])
        }
        if !rnnkitOnly {
            // The same models exported to ONNX (their initial states as inputs, as a stream feeds
            // them), for onnxruntime; each case's file runs on its own number of steps.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-latency-\(UUID())")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            var onnx: [[String: Any]] = []
            for workload in LatencyWorkload.all {
                let file = folder.appendingPathComponent("\(workload.name).onnx")
                try ONNXExport.write(try workload.makeModel(), to: file, options: ONNXExportOptions(initialStateInputs: true))
                for steps in [1, 28] {
                    onnx.append([
                        "name": "\(workload.name), \(steps == 1 ? "one step" : "\(steps) steps")", "path": file.path, "steps": steps,
                    ])
                }
            }
            let others = OtherEngines.measure(calls: calls, onnx: onnx)
            print("\n" + others.summary)
            if !others.results.isEmpty {
                printTable(rnnkit: results, others: others.results)
                results += others.results
            }
        }
        if let json {
            let report: [String: Any] = [
                "cpu": processor.summary, "kernels": SmallGEMM.instructionSet, "results": results, "limits": limits,
                "difference_from_predict": accuracy,
            ]
            try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
        guard allocating.isEmpty else {
            print("latency: a streaming call allocated (\(allocating.joined(separator: "; "))): a session must not allocate per call")
            throw ExitCode(1)
        }
    }
}

/// Each of `calls` calls of `steps` steps timed on its own after a warm-up, and the mallocs of 100 calls.
func time(_ session: StreamingSession<Float>, steps: Int, features: Int, calls: Int) throws -> ([Double], Int) {
    let input = [Float](repeating: 0, count: steps * features).enumerated().map { Float(($0.offset % 13)) / 13 - 0.5 }
    var output = [Float](repeating: 0, count: session.outputFeatures * (session.outputsSequence ? steps : 1))
    return try input.withUnsafeBufferPointer { x in
        try output.withUnsafeMutableBufferPointer { y in
            for _ in 0..<200 { try session.predict(x, steps: steps, into: y) }
            let before = rnnkit_malloc_count()
            for _ in 0..<100 { try session.predict(x, steps: steps, into: y) }
            let mallocs = Int(rnnkit_malloc_count() - before)
            var times = [Double](repeating: 0, count: calls)
            for i in 0..<calls {
                let start = now()
                try session.predict(x, steps: steps, into: y)
                times[i] = now() - start
            }
            return (times, mallocs)
        }
    }
}

/// The largest difference between `predict` on a 28-step sequence of values in [−1, 1] (a sine) and the
/// session's last output, fed one step at a time and as one piece (from zero states; the session
/// is reset after).
func differenceFromPredict(_ session: StreamingSession<Float>, model: Sequential<Float>, features: Int) throws -> (Double, Double) {
    let steps = 28
    let x = (0..<(steps * features)).map { Float(sin(Double($0) * 0.37)) }
    var whole = [Float](repeating: 0, count: model.outputShape.scalarCount)
    model.predict(x: x, batchSize: 1, into: &whole) // at batch 1, time-major is batch-major
    let wholeLast = whole.suffix(session.outputFeatures)
    func difference(_ output: Tensor<Float>) -> Double {
        zip(output.scalars.suffix(session.outputFeatures), wholeLast).map { Double(abs($0 - $1)) }.max() ?? 0
    }
    session.reset()
    var stepwise = 0.0
    for t in 0..<steps {
        stepwise = difference(
            try session.predict(Tensor(shape: [1, 1, features], scalars: Array(x[(t * features)..<((t + 1) * features)]))))
    }
    session.reset()
    let piece = difference(try session.predict(Tensor(shape: [1, steps, features], scalars: x)))
    session.reset()
    return (stepwise, piece)
}

/// The median time to read `floats` floats once from the cache they fit (summed in 16-lane vectors).
func readMicroseconds(floats: Int, calls: Int) -> Double {
    let vectors = max(4, floats / 16) & ~3
    let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: vectors)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: SIMD16(repeating: 1), count: vectors)
    var sink = SIMD16<Float>()
    func read() {
        var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
        for i in stride(from: 0, to: vectors, by: 4) {
            a += buffer[i]
            b += buffer[i + 1]
            c += buffer[i + 2]
            d += buffer[i + 3]
        }
        sink += a + b + c + d
    }
    for _ in 0..<200 { read() }
    var times = [Double](repeating: 0, count: calls)
    for i in 0..<calls {
        let start = now()
        read()
        times[i] = now() - start
    }
    if sink[0] == -1 { print("") } // keeps the sums alive
    return median(times) * 1e6
}

/// `text` padded with spaces to the width of the tables' first column (`%-28@` does not pad on Linux).
func padded(_ text: String) -> String { text.padding(toLength: max(28, text.count), withPad: " ", startingAt: 0) }

/// One line per case: RNNKit's median and 99th percentile (with float weights, then half ones and
/// bfloat16 ones where timed) beside each other engine's, and the ratios of medians.
func printTable(rnnkit: [[String: Any]], others: [[String: Any]]) {
    let engines = Array(Set(others.compactMap { $0["engine"] as? String })).sorted()
    print(
        "\nmedian / p99 in µs, one thread, batch 1; × is the other engine's median over RNNKit's (float weights, then half, then bf16)")
    print(
        "  " + padded("case") + " RNNKit              RNNKit, half weights RNNKit, bf16 weights "
            + engines.map { $0.padding(toLength: 42, withPad: " ", startingAt: 0) }.joined())
    for row in rnnkit where row["engine"] as? String == "rnnkit" {
        guard let name = row["name"] as? String, let median = row["median_us"] as? Double, let p99 = row["p99_us"] as? Double else {
            continue
        }
        var line = String(format: "  %@ %7.2f / %7.2f", padded(name) as NSString, median, p99)
        var sixteenBitMedians: [Double?] = []
        for engine in ["rnnkit-half", "rnnkit-bf16"] {
            let row = rnnkit.first { $0["engine"] as? String == engine && $0["name"] as? String == name }
            let rowMedian = row?["median_us"] as? Double
            if let rowMedian, let rowP99 = row?["p99_us"] as? Double {
                line += String(format: "   %7.2f / %7.2f", rowMedian, rowP99)
            } else {
                line += "   " + "n/a".padding(toLength: 17, withPad: " ", startingAt: 0)
            }
            sixteenBitMedians.append(rowMedian)
        }
        for engine in engines {
            if let other = others.first(where: { $0["engine"] as? String == engine && $0["name"] as? String == name }),
                let m = other["median_us"] as? Double, let p = other["p99_us"] as? Double
            {
                line += String(format: "   %7.2f / %7.2f %5.1f×", m, p, m / median)
                for rowMedian in sixteenBitMedians { line += rowMedian.map { String(format: " %5.1f×", m / $0) } ?? "       " }
            } else {
                line += "   " + "n/a".padding(toLength: 36, withPad: " ", startingAt: 0)
            }
        }
        print(line)
    }
}

/// PyTorch (and onnxruntime) on the same cases, by `Benchmarks/latency.py` in the same run.
struct OtherEngines {
    var results: [[String: Any]] = []
    var summary: String

    static var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("latency.py")
    }

    /// Never throws: a missing python3 or torch, or a failing script, is said in `summary`.
    static func measure(calls: Int, onnx: [[String: Any]] = []) -> OtherEngines {
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let request: [String: Any] = ["calls": calls, "torch": true, "onnx": onnx]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script.path]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        (process.standardInput, process.standardOutput, process.standardError) = (input, output, errors)
        print("\nTiming PyTorch and onnxruntime on the same cases (\(script.path))…")
        do { try process.run() } catch { return OtherEngines(summary: "PyTorch: not measured (\(python) did not start: \(error))") }
        input.fileHandleForWriting.write(try! JSONSerialization.data(withJSONObject: request))
        try? input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return OtherEngines(summary: "PyTorch: the script failed (status \(process.terminationStatus)): \(errorText.suffix(300))")
        }
        var result = OtherEngines(summary: "")
        var skipped: [String] = []
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if let engine = object["skipped"] as? String {
                skipped.append("\(engine) skipped (\(object["reason"] ?? "?"))")
            } else {
                result.results.append(object)
            }
        }
        let versions = Set(result.results.compactMap { row in (row["engine"] as? String).map { "\($0) \(row["version"] ?? "?")" } })
        result.summary = "Measured in this run: " + (versions.sorted() + skipped).joined(separator: "; ")
        return result
    }
}

/// A model timed at batch 1: its layers, and its input and output widths.
struct LatencyWorkload {
    var name: String
    var features: Int
    var outputs: Int
    var layers: () -> [any Layer<Float>]

    /// The weights one step reads.
    var weightCount: Int { (try? makeModel().parameterCount) ?? 0 }

    func makeModel() throws -> Sequential<Float> {
        try Sequential<Float>(inputShape: .sequence(steps: 28, features: features), layers: layers(), seed: 1)
    }

    static var all: [LatencyWorkload] {
        [
            LatencyWorkload(name: "LSTM(128)", features: 28, outputs: 128) { [LSTM(units: 128)] },
            LatencyWorkload(name: "GRU(128)", features: 28, outputs: 128) { [GRU(units: 128)] },
            LatencyWorkload(name: "Model A", features: 28, outputs: 10) { [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)] },
        ]
    }
}

Latency.main()
