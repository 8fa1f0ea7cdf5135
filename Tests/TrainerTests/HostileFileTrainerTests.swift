import Foundation
import XCTest

/// `train-blas --load` on every hostile file `hostile-files` writes, as a user would run it: each
/// refused with exit status 1 and a short message naming the problem, within two seconds and under
/// 200 MB of peak memory (the process's own, measured by wait4), with nothing written to its output
/// folder and no byte of another file in what it prints. The valid files load and evaluate.
final class HostileFileTrainerTests: XCTestCase {
    struct Outcome {
        var status: Int32, seconds: Double, peakBytes: Int, errors: String
    }

    /// Runs `executable` with `arguments`, returning its exit status, wall time, peak resident memory and stderr.
    static func measure(_ executable: String, _ arguments: [String]) throws -> Outcome {
        let errorsFile = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-stderr-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: errorsFile) }
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorsFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let start = Date()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw XCTSkip("cannot start \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let seconds = Date().timeIntervalSince(start)
        let exit = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let errors = (try? String(contentsOf: errorsFile, encoding: .utf8)) ?? ""
        return Outcome(status: exit, seconds: seconds, peakBytes: usage.ru_maxrss * 1024, errors: errors)
    }

    func testTrainBlasRefusesEveryHostileFile() throws {
        let mnist = try TrainerCommandTests.requireMNIST()
        let products = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        let trainer = products.appendingPathComponent("train-blas").path
        let generator = products.appendingPathComponent("hostile-files").path
        guard FileManager.default.isExecutableFile(atPath: trainer), FileManager.default.isExecutableFile(atPath: generator) else {
            throw XCTSkip("train-blas and hostile-files are not built beside the tests (swift build --build-tests builds them)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-hostile-trainer-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let made = try Self.measure(generator, [folder.path])
        XCTAssertEqual(made.status, 0, made.errors)
        let table = try String(contentsOf: folder.appendingPathComponent("cases.tsv"), encoding: .utf8)
        var refused = 0
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let (name, file, flags, expected) = (fields[0], fields[1], fields[3], fields[4])
            let output = folder.appendingPathComponent("run-\(file)")
            let arguments =
                [
                    "--data", mnist.path, "--load", folder.appendingPathComponent(file).path, "--epochs", "0",
                    "--output", output.path,
                ] + flags.split(separator: " ").map(String.init)
            let run = try Self.measure(trainer, arguments)
            XCTAssertLessThan(run.peakBytes, 200_000_000, "\(name) peaked at \(run.peakBytes >> 20) MiB")
            let lines = run.errors.split(separator: "\n").filter { !$0.contains("this is a debug build") }
            guard !expected.isEmpty else {
                // A valid file loads, then the model is evaluated on the test set (seconds in a debug build).
                XCTAssertEqual(run.status, 0, "\(name) is valid and must load:\n\(run.errors)")
                continue
            }
            // A debug build's own start (MNIST read, the trainer built) is part of the time.
            XCTAssertLessThan(run.seconds, 2, "\(name) took \(run.seconds) s")
            refused += 1
            XCTAssertEqual(run.status, 1, "\(name): exit status \(run.status)\n\(run.errors)")
            XCTAssertTrue(run.errors.contains(expected), "\(name): \(run.errors)")
            XCTAssertLessThanOrEqual(lines.count, 40, "\(name) printed \(lines.count) lines")
            XCTAssertFalse(run.errors.contains("root:x:0:0"), "\(name) printed another file's bytes")
            // Nothing but the lock is written for a refused file.
            let written = ((try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []).filter { $0 != ".rnnkit.lock" }
            XCTAssertEqual(written, [], "\(name) wrote \(written)")
        }
        XCTAssertGreaterThan(refused, 35)
    }
}
