import Foundation
@testable import RNNKit
@_spi(Fuzzing) @testable import TrainerSupport
import XCTest

/// Data-parallel training over MPI, run for real: `mpirun` starting 2 and 3 ranks of
/// `train-blas` and of `rnnkit-mpi-check` on this machine (`--oversubscribe`: more ranks than
/// cores is fine for correctness). Open MPI comes with `make deps`; these tests fail, not skip,
/// without it.
final class MPITests: XCTestCase {
    /// The build folder the tests run from, where `train-blas` and `rnnkit-mpi-check` sit.
    static let products = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()

    struct Run {
        var status: Int32
        var output: String
        var errors: String
        var seconds: Double
    }

    /// Runs `mpirun` with `arguments` (after its own flags), failing the test after `timeout` seconds.
    func mpirun(_ arguments: [String], timeout: Double = 180) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun", "--oversubscribe", "--allow-run-as-root"] + arguments
        var environment = ProcessInfo.processInfo.environment
        // Open MPI's shared-memory transport looks for other users' segments under /dev/shm; a
        // plain loopback run needs nothing else.
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        // Under `make test-sanitizers`: Open MPI's plugins leak at MPI_Finalize and are unloaded
        // before LeakSanitizer reports, so their stacks cannot be named or suppressed. The ranks
        // keep every other AddressSanitizer check; leaks are checked in the test process.
        environment["ASAN_OPTIONS"] = (environment["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "detect_leaks=0"
        process.environment = environment
        let (stdout, stderr) = (Pipe(), Pipe())
        process.standardOutput = stdout
        process.standardError = stderr
        let started = Date()
        try process.run()
        let watchdog = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        watchdog.cancel()
        return Run(status: process.terminationStatus, output: output, errors: errors, seconds: Date().timeIntervalSince(started))
    }

    func executable(_ name: String) throws -> String {
        let path = Self.products.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TrainerFailureForTests("\(name) is not built beside the tests at \(path)")
        }
        return path
    }

    /// The collectives, the reducer's global-batch sum (batches larger and smaller than the ranks)
    /// and the divergence check (a flipped bit on the last rank), on 2 and 3 ranks.
    func testCollectivesAndReducerOnTwoAndThreeRanks() throws {
        let check = try executable("rnnkit-mpi-check")
        for ranks in [2, 3] {
            let run = try mpirun(["-np", "\(ranks)", check])
            XCTAssertEqual(run.status, 0, "\(ranks) ranks:\n\(run.output)\n\(run.errors)")
            XCTAssertEqual(run.output.split(separator: "\n").filter { $0.hasPrefix("ok: ") }.count, 14, run.output)
            XCTAssertTrue(
                run.output.contains("ok: masked sequence loss: loss and accuracy over the kept steps equal one process's"), run.output)
            XCTAssertTrue(
                run.output.contains("a flipped bit on rank \(ranks - 1) is noticed: the weights on rank \(ranks - 1)"), run.output)
        }
    }

    /// `mpirun -np 2` and `-np 3` (with 2 worker threads each) train as one process with the same
    /// global batch: the weights after 36 steps within float rounding (5e-7) of the single
    /// process's, the history and test accuracy equal to their printed digits, and every rank's
    /// weights identical bit for bit (checked by the trainer itself).
    func testRanksTrainAsOneProcessWithTheSameGlobalBatch() throws {
        let data = try TrainerCommandTests.requireMNIST()
        let trainer = try executable("train-blas")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-mpi-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let common = ["--data", data.path, "--limit", "1280", "--epochs", "2", "--batch-size", "64", "--cell", "gru", "--units", "12"]

        let single = Process()
        single.executableURL = URL(fileURLWithPath: trainer)
        single.arguments = common + ["--workers", "1", "--output", root.appendingPathComponent("single").path]
        single.standardOutput = FileHandle.nullDevice
        single.standardError = FileHandle.nullDevice
        try single.run()
        single.waitUntilExit()
        XCTAssertEqual(single.terminationStatus, 0)
        let reference = try Outputs(root.appendingPathComponent("single"))

        for (ranks, workers) in [(2, 1), (3, 2)] {
            let folder = root.appendingPathComponent("ranks\(ranks)")
            let run = try mpirun(["-np", "\(ranks)", trainer] + common + ["--workers", "\(workers)", "--output", folder.path])
            XCTAssertEqual(run.status, 0, run.errors)
            XCTAssertTrue(run.output.contains("\(ranks) MPI ranks, \(workers) worker"), run.output)
            XCTAssertTrue(run.output.contains("The weights are identical on all \(ranks) ranks"), run.output)
            XCTAssertEqual(run.output.components(separatedBy: "Model: \"sequential\"").count, 2, "only rank 0 prints")
            let outputs = try Outputs(folder)
            XCTAssertEqual(outputs.weights.keys.sorted(), reference.weights.keys.sorted())
            var largest: Float = 0
            for (name, tensor) in reference.weights {
                for (a, b) in zip(tensor.scalars, outputs.weights[name]!.scalars) { largest = max(largest, abs(a - b)) }
            }
            XCTAssertLessThan(largest, 5e-7, "\(ranks) ranks: weights differ from one process's by \(largest)")
            XCTAssertEqual(outputs.printedHistory, reference.printedHistory, "\(ranks) ranks")
            XCTAssertEqual(outputs.printedTestAccuracy, reference.printedTestAccuracy, "\(ranks) ranks")
            XCTAssertEqual(outputs.metrics["mpi_ranks"] as? Int, ranks)
        }
    }

    /// One rank whose data folder is missing (mpirun's MPMD form gives it its own flags) ends the
    /// whole job: a non-zero status within seconds, the message printed once and naming the rank.
    func testARankThatFailsEndsTheJob() throws {
        let data = try TrainerCommandTests.requireMNIST()
        let trainer = try executable("train-blas")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-mpi-fail-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let missing = "/nonexistent/rnnkit-mnist"
        let flags = ["--limit", "640", "--epochs", "1", "--output", output.path]
        let run = try mpirun(
            ["-np", "2", trainer, "--data", data.path] + flags + [":", "-np", "1", trainer, "--data", missing] + flags, timeout: 60)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertLessThan(run.seconds, 30)
        let message = "train-blas: error: rank 2: \(missing)/train-images-idx3-ubyte: not found"
        XCTAssertEqual(run.errors.components(separatedBy: message).count, 2, "printed once:\n\(run.errors)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.appendingPathComponent("history.json").path))

        // A bad flag, the same on every rank: one message, the usage status.
        let flag = try mpirun(["-np", "3", trainer, "--batch-size", "0"], timeout: 60)
        XCTAssertNotEqual(flag.status, 0)
        XCTAssertEqual(flag.errors.components(separatedBy: "train-blas: error: --batch-size must be").count, 2, flag.errors)
    }

    /// Ranks started with different flags (mpirun's MPMD form gives each its own) are refused
    /// before the first step with one RNNKit message naming the ranks that differ from rank 0,
    /// and a non-zero status: no MPI error (a truncated broadcast of weights of another count,
    /// steps of another count) and no hang. A different --data path to the same data, and
    /// different --workers, are not a difference.
    func testRanksWithDifferentSettingsAreRefusedByName() throws {
        let trainer = try executable("train-blas")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-mpi-agree-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data"), copy = root.appendingPathComponent("copy")
        try TrainerCommandTests.writeSmallMNIST(in: data, trainingImages: 48) { i in UInt8(i % 10) }
        try TrainerCommandTests.writeSmallMNIST(in: copy, trainingImages: 48) { i in UInt8(i % 10) }
        func flags(_ extra: [String], data folder: URL = data, workers: Int = 1) -> [String] {
            [
                trainer, "--data", folder.path, "--epochs", "1", "--units", "4", "--example-index", "1", "--workers", "\(workers)",
                "--output", root.appendingPathComponent("out").path,
            ] + extra
        }
        let message = "MPI ranks disagree on their settings"

        let two = try mpirun(
            ["-np", "1"] + flags(["--batch-size", "8"]) + [":", "-np", "1"] + flags(["--batch-size", "16"]), timeout: 60)
        XCTAssertNotEqual(two.status, 0)
        XCTAssertLessThan(two.seconds, 30)
        XCTAssertEqual(
            two.errors.components(
                separatedBy: "train-blas: error: \(message): rank 1 differs from rank 0 "
                    + "(start every rank with the same flags)\n"
            ).count, 2, "printed once:\n\(two.errors)")
        XCTAssertFalse(two.errors.contains("MPI_ERR"), two.errors)
        XCTAssertFalse(two.output.contains("Epoch 1/1"), "no step is taken")

        // Weights of another count on ranks 1 and 2 (their broadcast would be truncated).
        let three = try mpirun(
            ["-np", "1"] + flags(["--batch-size", "8"]) + [":", "-np", "2"] + flags(["--batch-size", "8", "--units", "5"]), timeout: 60)
        XCTAssertNotEqual(three.status, 0)
        XCTAssertEqual(
            three.errors.components(
                separatedBy: "train-blas: error: \(message): ranks 1, 2 differ from rank 0 "
                    + "(start every rank with the same flags)\n"
            ).count, 2, "printed once:\n\(three.errors)")
        XCTAssertFalse(three.errors.contains("MPI_ERR"), three.errors)

        let same = try mpirun(
            ["-np", "1"] + flags(["--batch-size", "8"]) + [":", "-np", "1"] + flags(["--batch-size", "8"], data: copy, workers: 2),
            timeout: 120)
        XCTAssertEqual(same.status, 0, same.errors)
        XCTAssertFalse(same.errors.contains(message), same.errors)
        XCTAssertTrue(same.output.contains("The weights are identical on all 2 ranks"), same.output)
    }

    /// The agreement hash is FNV-1a (its published test vectors), over sorted lines that leave
    /// out the data folder's path and the worker count; the message names the ranks that differ.
    func testTheSettingsHashAndTheMessage() throws {
        XCTAssertEqual(Trainer.fnv1a([]), 0xcbf2_9ce4_8422_2325)
        XCTAssertEqual(Trainer.fnv1a(["a"]), 0xaf63_dc4c_8601_ec8c)
        XCTAssertEqual(Trainer.fnv1a(["foobar"]), 0x8594_4171_f739_67e8)
        let train = try ImageDataset(pixels: [UInt8](repeating: 0, count: 4 * 6), labels: [0, 1, 2, 3], rows: 2, columns: 3)
        func lines(_ configuration: [String: String], epochs: Int = 2) -> [String] {
            Trainer.agreementLines(
                configuration: configuration, epochs: epochs, initialEpoch: 0, train: train, testSamples: 10, parameters: 99)
        }
        XCTAssertEqual(
            lines(["seed": "0", "data": "/a", "workers": "1"]),
            [
                "epochs=2", "initial-epoch=0", "parameters=99", "sample-shape=2x3, 10 classes", "seed=0", "test-samples=10",
                "training-samples=4",
            ])
        XCTAssertEqual(lines(["seed": "0", "data": "/a", "workers": "1"]), lines(["seed": "0", "data": "/b", "workers": "4"]))
        XCTAssertNotEqual(Trainer.fnv1a(lines(["seed": "0"])), Trainer.fnv1a(lines(["seed": "1"])))
        XCTAssertNotEqual(Trainer.fnv1a(lines(["seed": "0"])), Trainer.fnv1a(lines(["seed": "0"], epochs: 3)))
        XCTAssertNil(Trainer.disagreement([7, 7, 7]))
        XCTAssertEqual(
            Trainer.disagreement([7, 7, 8]),
            "MPI ranks disagree on their settings: rank 2 differs from rank 0 (start every rank with the same flags)")
        XCTAssertEqual(
            Trainer.disagreement([7, 8, 7, 9]),
            "MPI ranks disagree on their settings: ranks 1, 3 differ from rank 0 (start every rank with the same flags)")
    }

    /// Ctrl-C (SIGINT) to one rank only: its stop request travels in the next step's all-reduce, so
    /// every rank stops after the same step, rank 0 writes what was trained (marked interrupted),
    /// the weights are still identical on every rank, and the job ends with status 130.
    func testAnInterruptOnOneRankStopsEveryRankAfterTheSameStep() throws {
        let data = try TrainerCommandTests.requireMNIST()
        let trainer = try executable("train-blas")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-mpi-interrupt-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2", trainer, "--data", data.path,
            "--limit", "3000", "--epochs", "200", "--workers", "1", "--output", output.path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["ASAN_OPTIONS"] = (environment["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "detect_leaks=0"
        process.environment = environment
        let (stdout, stderr) = (Pipe(), Pipe())
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        var seen = Data()
        let started = Date()
        while String(decoding: seen, as: UTF8.self).range(of: "Epoch 2/200") == nil, Date().timeIntervalSince(started) < 120 {
            seen.append(stdout.fileHandleForReading.availableData)
        }
        // The ranks are mpirun's children; signal the last one started (not rank 0's printer).
        let finder = Process(), found = Pipe()
        finder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        finder.arguments = ["pgrep", "-P", "\(process.processIdentifier)", "-f", "train-blas"]
        finder.standardOutput = found
        try finder.run()
        finder.waitUntilExit()
        let ranks = String(decoding: found.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").compactMap { Int32($0) }.sorted()
        XCTAssertEqual(ranks.count, 2, "the two ranks of mpirun \(process.processIdentifier)")
        if let last = ranks.last { kill(last, SIGINT) }
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let printed = String(decoding: seen + rest, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 130, errors)
        XCTAssertTrue(printed.contains("The weights are identical on all 2 ranks"), printed)
        XCTAssertEqual(errors.components(separatedBy: "train-blas: stopped: training was interrupted after epoch").count, 2, errors)
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertEqual(metrics["interrupted"] as? Bool, true)
    }

    /// A checkpoint records the rank count of an MPI run (and none for one process, as before),
    /// so resuming with another count is refused by name; the same count continues.
    func testCheckpointsRecordTheRankCount() throws {
        let options = try TrainBlas.parse(["--workers", "1"])
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)])
        let adam = Adam<Float>()
        try model.compile(optimizer: adam)
        let built = BuiltModel(model: model, optimizer: adam, fileConfig: nil, notes: [])
        let single = Checkpoint.configuration(of: options, built: built),
            ranks = Checkpoint.configuration(of: options, built: built, ranks: 2)
        XCTAssertEqual(single["units"], "10")
        XCTAssertEqual(single["learning-rate"], "0.001")
        XCTAssertNil(single["mpi-ranks"])
        let checkpoint = Checkpoint(epoch: 1, history: History(), configuration: ranks, weights: [:], iterations: 0, slots: [])
        XCTAssertEqual(checkpoint.differences(from: ranks), [])
        XCTAssertEqual(checkpoint.differences(from: single), ["MPI ranks: the checkpoint's run used 2, this one 1"])
        XCTAssertEqual(
            checkpoint.differences(from: Checkpoint.configuration(of: options, built: built, ranks: 3)),
            ["MPI ranks: the checkpoint's run used 2, this one 3"])
    }

    /// What a run wrote, as the trainer prints it.
    struct Outputs {
        var weights: [String: Tensor<Float>]
        var printedHistory: [String]
        var printedTestAccuracy: String
        var metrics: [String: Any]

        init(_ folder: URL) throws {
            weights = try SafeTensors.decode(
                Data(contentsOf: folder.appendingPathComponent("weights.safetensors")), file: "weights", as: Float.self
            ).tensors
            let history = try JSONDecoder().decode(History.self, from: Data(contentsOf: folder.appendingPathComponent("history.json")))
            printedHistory = (history.loss + history.categoricalAccuracy + history.valLoss + history.valCategoricalAccuracy)
                .map { String(format: "%.4f", $0) }
            metrics =
                try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("metrics.json"))) as! [String: Any]
            printedTestAccuracy = String(format: "%.4f", metrics["test_categorical_accuracy"] as! Double)
        }
    }
}

struct TrainerFailureForTests: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
