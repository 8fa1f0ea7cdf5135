import ArgumentParser
import BenchmarkTiming
import CMallocCounter
import Foundation
import RNNKit

/// `swift run -c release latency`: the latency of a trained model run live, at batch 1, through a
/// `StreamingSession`: one step, and a whole 28-step sequence fed as one piece, for LSTM(128),
/// GRU(128) and the notebook's Model A (28 features a step), each call timed on its own
/// (medians and 99th percentiles in µs). With PyTorch installed, `Benchmarks/latency.py` times
/// the same in the same run; with `--onnx-models`, onnxruntime runs RNNKit's exported files too.
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
        for workload in LatencyWorkload.all {
            let model = try workload.makeModel()
            let session = try StreamingSession(model: model, batchSize: 1)
            for steps in [1, 28] {
                let input = [Float](repeating: 0, count: steps * workload.features).enumerated().map { Float(($0.offset % 13)) / 13 - 0.5 }
                var output = [Float](repeating: 0, count: workload.outputs * (session.outputsSequence ? steps : 1))
                let (times, mallocs) = try input.withUnsafeBufferPointer { x in
                    try output.withUnsafeMutableBufferPointer { y in
                        for _ in 0..<200 { try session.predict(x, steps: steps, into: y) }
                        let before = rnnkit_malloc_count()
                        for _ in 0..<100 { try session.predict(x, steps: steps, into: y) }
                        let mallocs = rnnkit_malloc_count() - before
                        var times = [Double](repeating: 0, count: calls)
                        for i in 0..<calls {
                            let start = now()
                            try session.predict(x, steps: steps, into: y)
                            times[i] = now() - start
                        }
                        return (times, mallocs)
                    }
                }
                let sorted = times.sorted()
                let medianMicroseconds = median(times) * 1e6, p99 = sorted[Int(Double(sorted.count - 1) * 0.99)] * 1e6
                let name = "\(workload.name), \(steps == 1 ? "one step" : "\(steps) steps")"
                print(
                    String(
                        format: "  %-28@ median %8.2f µs   p99 %8.2f µs   mallocs/call %g", name as NSString, medianMicroseconds, p99,
                        Double(mallocs) / 100))
                if mallocs > 0 { allocating.append(name) }
                results.append(["engine": "rnnkit", "name": name, "median_us": medianMicroseconds, "p99_us": p99, "calls": calls])
            }
        }
        if let json {
            let report: [String: Any] = ["cpu": processor.summary, "kernels": SmallGEMM.instructionSet, "results": results]
            try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
        guard allocating.isEmpty else {
            print("latency: a streaming call allocated (\(allocating.joined(separator: "; "))): a session must not allocate per call")
            throw ExitCode(1)
        }
    }
}

/// A model timed at batch 1: its layers, and its input and output widths.
struct LatencyWorkload {
    var name: String
    var features: Int
    var outputs: Int
    var layers: () -> [any Layer<Float>]

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
