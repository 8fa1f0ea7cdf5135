import ArgumentParser
import Foundation
import XCTest
@testable import RNNKit
@testable import TrainerSupport

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
        try FileManager.default.createSymbolicLink(atPath: output.appendingPathComponent(".rnnkit.lock").path, withDestinationPath: victim.path)
        XCTAssertThrowsError(try TrainBlas.parse(["--data", "/nonexistent", "--output", output.path]).run()) { error in
            XCTAssertTrue(error is TrainerFailure, "\(error)")
            XCTAssertEqual("\(error)", "--output \(output.path): cannot write \(output.path)/.rnnkit.lock: is a symbolic link; "
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
        assertRefused(["--units", Array(repeating: "1", count: 65).joined(separator: ",")], "--units lists 65 layers; at most 64 are allowed")
        assertRefused(["--learning-rate", "1e39"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e+39")
        assertRefused(["--learning-rate", "nan"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got nan")
        assertRefused(["--learning-rate", "1e-40"], "--learning-rate must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e-40")
        assertRefused(["--clipnorm", "inf"], "--clipnorm must be a positive number from 1.1754944e-38 to 3.4028235e+38, got inf")
        assertRefused(["--clipvalue", "1e300"], "--clipvalue must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 1e+300")
        assertRefused(["--global-clipnorm", "0"], "--global-clipnorm must be a positive number from 1.1754944e-38 to 3.4028235e+38, got 0.0")
        assertRefused(["--mask-value", "-inf"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got -inf")
        assertRefused(["--mask-value=-1e39"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got -1e+39")
        assertRefused(["--mask-value", "1e39"], "--mask-value must be a number from -3.4028235e+38 to 3.4028235e+38, got 1e+39")
        assertRefused(["--dropout", "nan"], "--dropout must be in [0, 1), got nan")
        assertRefused(["--recurrent-dropout", "1"], "--recurrent-dropout must be in [0, 1), got 1.0")
        assertRefused(["--validation-split", "nan"], "--validation-split must be in [0, 1) (0 for none), got nan")
        assertRefused(["--limit=-5"], "--limit must be 1 or more, got -5")
        assertRefused(["--checkpoint-every", "0"], "--checkpoint-every must be between 1 and --epochs (10), got 0")
        assertRefused(["--checkpoint-every", "11"], "--checkpoint-every must be between 1 and --epochs (10), got 11")
        assertRefused(["--epochs", "0", "--checkpoint-every", "1"], "--checkpoint-every needs --epochs of 1 or more (nothing is trained with --epochs 0)")
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
        let edges = try TrainBlas.parse(["--epochs", "1000000", "--batch-size", "1048576", "--units", "65536," + Array(repeating: "1", count: 63).joined(separator: ","),
                                         "--workers", "256", "--threads", "256", "--checkpoint-every", "1000000", "--seed", "18446744073709551615",
                                         "--learning-rate", "3.4028235e38", "--mask-value", "-3.4028235e38", "--clipvalue", "1.1754944e-38"])
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
        XCTAssertThrowsError(try TrainBlas.parse(common + ["--batch-size", "19", "--output", root.appendingPathComponent("big").path]).run()) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertEqual(TrainBlas.message(for: error),
                           "--batch-size must be between 1 and the 18 training samples (after --limit and --validation-split), got 19")
        }
        try TrainBlas.parse(common + ["--batch-size", "18", "--seed", "18446744073709551615", "--dropout", "0.2", "--recurrent-dropout", "0.2",
                                      "--bidirectional", "concat", "--output", root.appendingPathComponent("seed").path]).run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("seed/metrics.json").path))
    }
}
