import Foundation

/// PyTorch's CPU training throughput on the same workloads, measured in the same run by
/// `Benchmarks/pytorch_baseline.py` (see its header for what it times).
struct PyTorchBaseline {
    struct Result: Decodable {
        var name: String
        var threads: Int
        var samplesPerSecond: Double
        var torch: String
        enum CodingKeys: String, CodingKey {
            case name, threads, torch
            case samplesPerSecond = "samples_per_second"
        }
    }

    var results: [String: Result] = [:]
    /// torch's version, or nil when it was not measured.
    var version: String?
    /// One line for the report: what ran, or why not.
    var summary: String

    /// The script beside this package's `Benchmarks/benchmarks` folder.
    static var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pytorch_baseline.py")
    }

    /// Runs the script over `workloads` (each timed for about `budget` seconds per thread
    /// setting); never throws: a missing python3 or torch, or a failing script, is reported.
    static func measure(_ workloads: [Workload], budget: Double) -> PyTorchBaseline {
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        guard run(python, ["-c", "import torch"], input: nil).status == 0 else {
            return PyTorchBaseline(
                summary: "PyTorch: skipped (no `\(python)` that can import torch; `pip install torch` brings the CPU build)")
        }
        let request = workloads.map {
            [
                "name": $0.name, "cell": $0.cell.rawValue, "batch": $0.batch, "steps": $0.steps, "inputs": $0.inputs,
                "units": $0.units, "classes": $0.classes,
            ] as [String: Any]
        }
        let input = try! JSONSerialization.data(withJSONObject: request)
        print("Timing PyTorch on the same workloads (\(script.path))…")
        fflush(nil)
        let output = run(python, [script.path, String(budget)], input: input)
        guard output.status == 0 else {
            return PyTorchBaseline(
                summary: "PyTorch: the baseline script failed (status \(output.status)): \(output.standardError.suffix(300))")
        }
        var baseline = PyTorchBaseline(summary: "")
        for line in output.standardOutput.split(separator: "\n") {
            guard let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8)) else { continue }
            baseline.results[result.name] = result
            baseline.version = result.torch
        }
        let threads = Set(baseline.results.values.map(\.threads)).sorted().map(String.init).joined(separator: " or ")
        baseline.summary =
            "PyTorch \(baseline.version ?? "?") measured on \(baseline.results.count) workloads in this run "
            + "(training step: forward, cross-entropy, backward, Adam; the better of 1 and 2 intra-op threads, here \(threads))"
        return baseline
    }

    private static func run(_ executable: String, _ arguments: [String], input: Data?) -> (
        status: Int32, standardOutput: String, standardError: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let (stdout, stderr, stdin) = (Pipe(), Pipe(), Pipe())
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        do { try process.run() } catch { return (127, "", "\(error)") }
        if let input { stdin.fileHandleForWriting.write(input) }
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }
}
