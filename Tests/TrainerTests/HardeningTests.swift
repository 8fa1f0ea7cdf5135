import ArgumentParser
import Foundation
import XCTest
@testable import RNNKit
@_spi(Fuzzing) @testable import TrainerSupport

/// Hostile inputs to the trainer: links planted where it writes, flags at the edge of their
/// arithmetic, crafted checkpoints. Each is refused with one clear line, never a trap.
final class TrainerHardeningTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-hardening-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    // MARK: Writes

    /// A `.rnnkit.lock` in --output linked to a file elsewhere: the run is refused before it
    /// reads anything, naming the lock file, and the file keeps its bytes.
    func testALinkedLockFileInTheOutputFolderIsRefused() throws {
        let output = root.appendingPathComponent("out"), victim = root.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(
            atPath: output.appendingPathComponent(".rnnkit.lock").path, withDestinationPath: victim.path)
        XCTAssertThrowsError(try TrainBlas.parse(["--data", "/nonexistent", "--output", output.path]).run()) { error in
            XCTAssertTrue(error is TrainerFailure, "\(error)")
            XCTAssertEqual(
                "\(error)",
                "--output \(output.path): cannot write \(output.path)/.rnnkit.lock: is a symbolic link; "
                    + "a lock file must be a regular file (remove the link if no run is writing there)")
        }
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "keep me")
    }

    // MARK: runs/latest

    /// `runs/latest` replaced by a rename over it: an old link to a folder elsewhere is not
    /// written into (that folder keeps its contents), a stale temporary is replaced, and a real
    /// folder of that name stays.
    func testTheLatestLinkIsReplacedWithoutFollowingIt() throws {
        let runs = root.appendingPathComponent("runs"), elsewhere = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: runs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let latest = runs.appendingPathComponent("latest").path
        try FileManager.default.createSymbolicLink(atPath: latest, withDestinationPath: elsewhere.path)
        let temporary = runs.appendingPathComponent(".latest.\(ProcessInfo.processInfo.processIdentifier).tmp").path
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: elsewhere.path)
        Trainer.link(latest: latest, to: "20260101-000000-simple_rnn-10")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: latest), "20260101-000000-simple_rnn-10")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs.path), ["latest"], "no temporary left")

        try FileManager.default.removeItem(atPath: latest)
        try FileManager.default.createDirectory(atPath: latest, withIntermediateDirectories: false)
        Trainer.link(latest: latest, to: "20260101-000001-simple_rnn-10")
        var status = stat()
        XCTAssertEqual(lstat(latest, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFDIR, "a real folder stays")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs.path), ["latest"])
    }

    // MARK: Flags

    /// `arguments` are refused at parsing with the usage status and exactly `expected`.
    func assertRefused(_ arguments: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TrainBlas.parse(arguments), "\(arguments)", file: file, line: line) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64, "\(arguments)", file: file, line: line)
            XCTAssertEqual(TrainBlas.message(for: error), expected, "\(arguments)", file: file, line: line)
        }
    }

    /// Every flag with arithmetic behind it has a range, and a value outside it is refused naming
    /// the flag and the range: the counts that used to overflow (--epochs 2^62, --batch-size
    /// 2^63 − 1), sizes, fractions and rates that Float cannot hold, NaN and infinity.
    func testEveryCountAndRateFlagHasARange() throws {
        assertRefused(["--epochs", "4611686018427387904"], "--epochs must be between 0 and 1000000, got 4611686018427387904")
        assertRefused(["--epochs", "1000001"], "--epochs must be between 0 and 1000000, got 1000001")
        assertRefused(["--batch-size", "9223372036854775807"], "--batch-size must be between 1 and 1048576, got 9223372036854775807")
        assertRefused(["--batch-size", "1048577"], "--batch-size must be between 1 and 1048576, got 1048577")
        assertRefused(["--units", "16,65537"], "--units: each layer's size must be between 1 and 65536, got 65537")
        assertRefused(
            ["--units", Array(repeating: "1", count: 65).joined(separator: ",")], "--units lists 65 layers; at most 64 are allowed")
        assertRefused(
            ["--learning-rate", "1e39"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e+39")
        assertRefused(["--learning-rate", "nan"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got nan")
        assertRefused(
            ["--learning-rate", "1e-40"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e-40")
        assertRefused(["--clipnorm", "inf"], "--clipnorm must be a positive number from 1.1754944e-38 to 3.4028235e+38, got inf")
        assertRefused(["--clipvalue", "1e300"], "--clipvalue must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e+300")
        assertRefused(
            ["--global-clipnorm", "0"], "--global-clipnorm must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 0.0")
        assertRefused(["--mask-value", "-inf"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got -inf")
        assertRefused(["--mask-value=-1e39"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got -1e+39")
        assertRefused(["--mask-value", "1e39"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got 1e+39")
        assertRefused(["--dropout", "nan"], "--dropout must be in [0, 1), got nan")
        assertRefused(["--recurrent-dropout", "1"], "--recurrent-dropout must be in [0, 1), got 1.0")
        assertRefused(["--validation-split", "nan"], "--validation-split must be in [0, 1) (0 for none), got nan")
        assertRefused(["--limit=-5"], "--limit must be 1 or more, got -5")
        assertRefused(["--checkpoint-every", "0"], "--checkpoint-every must be between 1 and --epochs (10), got 0")
        assertRefused(["--checkpoint-every", "11"], "--checkpoint-every must be between 1 and --epochs (10), got 11")
        assertRefused(
            ["--epochs", "0", "--checkpoint-every", "1"],
            "--checkpoint-every needs --epochs of 1 or more (nothing is trained with --epochs 0)")
        assertRefused(["--workers", "257"], "--workers must be between 1 and 256, got 257")
        assertRefused(["--threads", "9223372036854775807"], "--threads must be between 1 and 256, got 9223372036854775807")
        // Numbers that do not fit the type at all are refused by the parser, naming the flag.
        for (flag, value) in [("--seed", "18446744073709551616"), ("--seed", "-1"), ("--epochs", "99999999999999999999")] {
            XCTAssertThrowsError(try TrainBlas.parse([flag, value])) { error in
                XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
                XCTAssertTrue(TrainBlas.message(for: error).contains(flag), TrainBlas.message(for: error))
            }
        }
        XCTAssertThrowsError(try TrainBlas.parse(["--units", "99999999999999999999"])) { error in
            XCTAssertTrue(TrainBlas.message(for: error).contains("--units"), TrainBlas.message(for: error))
        }

        // The edges themselves are accepted.
        let edges = try TrainBlas.parse([
            "--epochs", "1000000", "--batch-size", "1048576", "--units", "65536," + Array(repeating: "1", count: 63).joined(separator: ","),
            "--workers", "256", "--threads", "256", "--checkpoint-every", "1000000", "--seed", "18446744073709551615",
            "--learning-rate", "3.4028235e38", "--mask-value", "-3.4028235e38", "--clipvalue", "1.1754944e-38",
        ])
        XCTAssertEqual(edges.units.sizes.count, 64)
        XCTAssertEqual(edges.seed, .max)
        XCTAssertEqual(edges.maskValue, -3.4028235e38, "a negative mask value is read as the value")
    }

    /// At run time, where the training samples are known, a batch larger than them is refused;
    /// the largest seed trains (its arithmetic wraps) with dropout in both directions.
    func testTheBatchIsAtMostTheTrainingSamplesAndAnySeedTrains() throws {
        let data = root.appendingPathComponent("data")
        try TrainerCommandTests.writeSmallMNIST(in: data, trainingImages: 20) { i in UInt8(i % 10) }
        let common = ["--data", data.path, "--epochs", "1", "--units", "3", "--example-index", "1", "--workers", "1"]
        XCTAssertThrowsError(
            try TrainBlas.parse(common + ["--batch-size", "19", "--output", root.appendingPathComponent("big").path]).run()
        ) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertEqual(
                TrainBlas.message(for: error),
                "--batch-size must be between 1 and the 18 training samples (after --limit and --validation-split), got 19")
        }
        try TrainBlas.parse(
            common + [
                "--batch-size", "18", "--seed", "18446744073709551615", "--dropout", "0.2", "--recurrent-dropout", "0.2",
                "--bidirectional", "concat", "--output", root.appendingPathComponent("seed").path,
            ]
        ).run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("seed/metrics.json").path))
    }

    // MARK: Checkpoints

    /// A real checkpoint of a small run (LSTM(4) with Adam, after epoch 1: 6 steps over 43 of 48 6×5 images), its
    /// tensors and metadata, and the flags that resume it.
    func smallCheckpoint() throws -> (tensors: [String: Tensor<Float>], metadata: [String: String], resume: (URL) -> [String]) {
        let data = root.appendingPathComponent("data")
        try TrainerCommandTests.writeSmallMNIST(in: data, trainingImages: 48) { i in UInt8(i * 7 % 10) }
        let common = ["--data", data.path, "--batch-size", "8", "--cell", "lstm", "--units", "4", "--workers", "1", "--example-index", "1"]
        let first = root.appendingPathComponent("first")
        try TrainBlas.parse(common + ["--epochs", "1", "--checkpoint-every", "1", "--output", first.path]).run()
        let file = try SafeTensors.decode(
            Data(contentsOf: first.appendingPathComponent(Checkpoint.fileName)), file: "checkpoint", as: Float.self)
        return (
            file.tensors, file.metadata,
            { common + ["--epochs", "2", "--resume", $0.path, "--output", self.root.appendingPathComponent("rest-\(UUID())").path] }
        )
    }

    /// Each crafted checkpoint is refused on --resume with a TrainerFailure naming the field or
    /// tensor and what is allowed: NaN and infinity in weights and optimiser slots (with the
    /// element), iteration and epoch counts out of range (negative, 2^63 − 1, not a number),
    /// slots of the wrong count or length, histories that do not match the epochs, and
    /// oversized JSON. The untouched checkpoint resumes.
    func testCraftedCheckpointsAreRefusedWithTheReason() throws {
        let (tensors, metadata, resume) = try smallCheckpoint()
        XCTAssertEqual(metadata["epoch"], "1")
        XCTAssertEqual(metadata["iterations"], "6")
        var count = 0
        func refusal(tensors changed: [String: Tensor<Float>]? = nil, metadata edited: [String: String]? = nil) throws -> String {
            count += 1
            let file = root.appendingPathComponent("crafted-\(count).safetensors")
            try SafeTensors.encode(changed ?? tensors, metadata: edited ?? metadata).write(to: file)
            var message = "(no error)"
            XCTAssertThrowsError(try TrainBlas.parse(resume(file)).run()) { error in
                XCTAssertTrue(error is TrainerFailure, "\(type(of: error)): \(error)")
                XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 1)
                message = TrainBlas.message(for: error)
                XCTAssertFalse(message.contains("\n"), message)
                XCTAssertTrue(message.hasPrefix("--resume \(file.path): "), message)
            }
            return String(message.dropFirst("--resume \(file.path): ".count))
        }
        func with(_ name: String, element index: Int, _ value: Float) -> [String: Tensor<Float>] {
            var changed = tensors
            var scalars = changed[name]!.scalars
            scalars[index] = value
            changed[name] = Tensor(shape: changed[name]!.shape, scalars: scalars)
            return changed
        }
        func editing(_ key: String, _ value: String?) -> [String: String] {
            var edited = metadata
            edited[key] = value
            return edited
        }

        XCTAssertEqual(
            try refusal(tensors: with("lstm/kernel", element: 3, .nan)), "tensor lstm/kernel holds nan at element 3; weights must be finite"
        )
        XCTAssertEqual(
            try refusal(tensors: with("dense/bias", element: 9, -.infinity)),
            "tensor dense/bias holds -inf at element 9; weights must be finite")
        XCTAssertEqual(
            try refusal(tensors: with("optimizer/slot1", element: 17, .infinity)),
            "tensor optimizer/slot1 holds inf at element 17; the optimiser's state must be finite")
        let iterationRange = "is not a whole number in 0...9007199254740992 (2^53)"
        XCTAssertEqual(try refusal(metadata: editing("iterations", "-1")), "its iteration count «-1» \(iterationRange)")
        XCTAssertEqual(
            try refusal(metadata: editing("iterations", "9223372036854775807")),
            "its iteration count «9223372036854775807» \(iterationRange)")
        XCTAssertEqual(
            try refusal(metadata: editing("iterations", "9007199254740993")), "its iteration count «9007199254740993» \(iterationRange)")
        XCTAssertEqual(
            try refusal(metadata: editing("iterations", String(repeating: "9", count: 100))),
            "its iteration count «\(String(repeating: "9", count: 40))…» \(iterationRange)")
        XCTAssertEqual(try refusal(metadata: editing("epoch", "-3")), "its epoch count «-3» is not a whole number in 0...1000000")
        XCTAssertEqual(try refusal(metadata: editing("epoch", "1000001")), "its epoch count «1000001» is not a whole number in 0...1000000")
        XCTAssertEqual(
            try refusal(metadata: editing("epoch", "2")),
            "its history holds 1 losses, 1 accuracies, 1 and 1 validation figures and 1 epoch times for its 2 epochs")
        XCTAssertEqual(try refusal(metadata: editing("history", "[1, 2]")), "its history is not a training history in JSON")
        XCTAssertEqual(
            try refusal(metadata: editing("history", "{\"loss\": [" + String(repeating: "1.0,", count: 300) + "1.0]}")),
            "its history is 1215 bytes of JSON; at most 1152 are read for 1 epoch")
        XCTAssertEqual(
            try refusal(metadata: editing("configuration", "{\"seed\": \"" + String(repeating: "0", count: 70_000) + "\"}")),
            "its settings are 70012 bytes of JSON; at most 65536 are read")
        XCTAssertEqual(try refusal(metadata: editing("configuration", "{\"seed\": 0}")), "its settings are not a JSON object of strings")
        XCTAssertTrue(try refusal(metadata: editing("iterations", nil)).hasPrefix("is not an RNNKit checkpoint"))

        // The optimiser's slots must be the model's optimiser's, in count and length.
        let parameters = tensors["optimizer/slot0"]!.scalars.count
        var oneSlot = tensors
        oneSlot["optimizer/slot1"] = nil
        XCTAssertEqual(
            try refusal(tensors: oneSlot),
            "the checkpoint's optimiser state is 1 slot of \(parameters) values; adam over this model keeps 2 of \(parameters)")
        var short = tensors
        short["optimizer/slot1"] = Tensor(shape: [3], scalars: [0, 0, 0])
        XCTAssertEqual(
            try refusal(tensors: short),
            "the checkpoint's optimiser state is 2 slots of 3, \(parameters) values; adam over this model keeps 2 of \(parameters)")
        var gap = tensors
        gap["optimizer/slot3"] = Tensor(shape: [1], scalars: [0])
        XCTAssertEqual(
            try refusal(tensors: gap),
            "tensor optimizer/slot3 is not one of the optimiser's slots (optimizer/slot0, optimizer/slot1, … in turn)")

        // The checkpoint as written resumes.
        let file = root.appendingPathComponent("untouched.safetensors")
        try SafeTensors.encode(tensors, metadata: metadata).write(to: file)
        try TrainBlas.parse(resume(file)).run()
    }

    /// The checkpoint reader's refusals are `FileFormatError`s naming the file: `.safetensors`
    /// for bytes that are no safetensors file, `.checkpoint` for what the run's metadata lacks
    /// or a missing file (the trainer prefixes `--resume`, as the test above reads).
    func testTheCheckpointReaderThrowsFileFormatErrors() throws {
        XCTAssertThrowsError(try Checkpoint.decode(Data([1, 2, 3]), file: "c.safetensors")) { error in
            XCTAssertEqual(
                error as? FileFormatError,
                FileFormatError(file: "c.safetensors", format: .safetensors, reason: "too short for a safetensors file (3 bytes)"))
        }
        let bare = try SafeTensors.encode([String: Tensor<Float>](), metadata: ["format": "rnnkit-checkpoint-1"])
        XCTAssertThrowsError(try Checkpoint.decode(bare, file: "c.safetensors")) { error in
            XCTAssertEqual((error as? FileFormatError)?.format, .checkpoint)
            XCTAssertTrue("\(error)".hasPrefix("c.safetensors: is not an RNNKit checkpoint"), "\(error)")
        }
        let absent = root.appendingPathComponent("absent.safetensors").path
        XCTAssertThrowsError(try Checkpoint.read(absent)) { error in
            XCTAssertEqual(
                error as? FileFormatError,
                FileFormatError(
                    file: absent, format: .checkpoint,
                    reason: "no checkpoint there (write one with --checkpoint-every N)"))
        }
    }

    // MARK: Messages

    /// train-blas run as a process with a flag value of 20,000 characters (which the message
    /// repeats): the error printed is one line of at most about 4,000 characters, saying how
    /// much was left out, and the status is the usage one. Likewise for a run's error (a missing
    /// data folder of a long name).
    func testPrintedErrorsAreBounded() throws {
        let executable = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "train-blas")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            return XCTFail("train-blas is not built beside the tests at \(executable.path)")
        }
        func run(_ arguments: [String]) throws -> (status: Int32, errors: String) {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let stderr = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = stderr
            try process.run()
            let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, errors)
        }
        let long = String(repeating: "x", count: 20_000)
        let flag = try run(["--save", root.appendingPathComponent(long + ".bin").path])
        XCTAssertEqual(flag.status, 64)
        XCTAssertTrue(flag.errors.hasPrefix("train-blas: error: --save \(root.path)/xxx"), String(flag.errors.prefix(200)))
        XCTAssertTrue(flag.errors.hasSuffix(" more characters)\n"), String(flag.errors.suffix(200)))
        XCTAssertEqual(flag.errors.split(separator: "\n").count, 1)
        XCTAssertLessThanOrEqual(flag.errors.count, 4001)

        let data = (0..<40).map { _ in String(repeating: "d", count: 200) }.joined(separator: "/")
        let failure = try run(["--data", "/nonexistent/" + data, "--output", root.appendingPathComponent("out").path])
        XCTAssertEqual(failure.status, 1, failure.errors)
        XCTAssertTrue(failure.errors.contains("train-blas: error: /nonexistent/ddd"), String(failure.errors.prefix(200)))
        XCTAssertTrue(failure.errors.contains(" more characters)\n"), String(failure.errors.suffix(200)))
        XCTAssertLessThanOrEqual(failure.errors.split(separator: "\n").count, 2, "the debug build's note and the error")
        XCTAssertLessThanOrEqual(failure.errors.count, 4001 + 200)
    }
}
