import Foundation
import XCTest

/// `train-blas` started with OpenBLAS on a fallback core, as Debian's OpenBLAS 0.3.21 leaves it on
/// processors newer than its table: the repair picks the kernels this processor's features allow,
/// says so on its first line and in `metrics.json`, and trains to the same figures; a core the
/// user chose is kept, and the repair can be switched off.
///
/// OpenBLAS knows this machine's processor, so the fallback is rehearsed: with
/// `RNNKIT_BLAS_REHEARSE_FALLBACK=Prescott`, RNNKit first re-initialises OpenBLAS on Prescott (as
/// its own choice would be on such a server) and then repairs it through the same calls.
final class BLASCoreRepairTests: XCTestCase {
    struct Run {
        var status: Int32, output: String, errors: String, metrics: [String: Any]
        var machine: [String: Any] { metrics["machine"] as? [String: Any] ?? [:] }
    }

    func trainBlas(_ environment: [String: String]) throws -> Run {
        let mnist = try TrainerCommandTests.requireMNIST()
        let trainer = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("train-blas")
        guard FileManager.default.isExecutableFile(atPath: trainer.path) else {
            throw TrainerFailureForTests("train-blas is not built beside the tests (swift build --build-tests builds it)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-core-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let process = Process()
        process.executableURL = trainer
        process.arguments = ["--data", mnist.path, "--limit", "640", "--epochs", "1", "--no-shuffle", "--output", folder.path]
        var inherited = ProcessInfo.processInfo.environment
        for name in ["OPENBLAS_CORETYPE", "RNNKIT_BLAS_REHEARSE_FALLBACK", "RNNKIT_BLAS_CORE_REPAIR"] { inherited[name] = nil }
        process.environment = inherited.merging(environment) { $1 }
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let metrics =
            (try? Data(contentsOf: folder.appendingPathComponent("metrics.json")))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        return Run(
            status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
            errors: String(decoding: errors, as: UTF8.self), metrics: metrics)
    }

    func machineLine(_ run: Run) -> String {
        run.output.split(separator: "\n").first { $0.hasPrefix("Machine: ") }.map(String.init) ?? "(no Machine line)"
    }

    func testFallbackCoreIsRepairedToTheFeaturesKernels() throws {
        #if !arch(x86_64)
            throw XCTSkip("OpenBLAS's fallback cores are x86-64's")
        #else
            let linux = try BLASCoreTests.linuxFlags()
            let expected = try XCTUnwrap(
                BLASCoreTests.expectedCore(vendor: linux.vendor, flags: linux.flags),
                "a processor without AVX has nothing better than the fallback")
            let native = try trainBlas([:])
            let rehearsed = try trainBlas(["RNNKIT_BLAS_REHEARSE_FALLBACK": "Prescott"])
            XCTAssertEqual(native.status, 0, native.errors)
            XCTAssertEqual(rehearsed.status, 0, rehearsed.errors)
            XCTAssertEqual(rehearsed.machine["openblas_core_before"] as? String, "Prescott")
            XCTAssertEqual(rehearsed.machine["openblas_core"] as? String, expected)
            XCTAssertEqual(rehearsed.machine["openblas_core_repair"] as? String, "repaired")
            XCTAssertTrue(machineLine(rehearsed).contains("core Prescott → \(expected) (repaired"), machineLine(rehearsed))
            // On the same kernels the two runs compute the same figures, bit for bit; on another core
            // (OpenBLAS's own choice differs from the repair's) within rounding.
            let loss = try XCTUnwrap(native.metrics["test_loss"] as? Double)
            let repairedLoss = try XCTUnwrap(rehearsed.metrics["test_loss"] as? Double)
            if native.machine["openblas_core"] as? String == expected {
                XCTAssertEqual(repairedLoss, loss)
                XCTAssertEqual(rehearsed.metrics["example_prediction"] as? [Double], native.metrics["example_prediction"] as? [Double])
            } else {
                XCTAssertEqual(repairedLoss, loss, accuracy: 1e-4 * loss)
            }
        #endif
    }

    func testUsersOwnCoreIsKept() throws {
        #if !arch(x86_64)
            throw XCTSkip("OpenBLAS's fallback cores are x86-64's")
        #else
            let run = try trainBlas(["OPENBLAS_CORETYPE": "Prescott", "RNNKIT_BLAS_REHEARSE_FALLBACK": "Nehalem"])
            XCTAssertEqual(run.status, 0, run.errors)
            XCTAssertEqual(run.machine["openblas_core"] as? String, "Prescott")
            XCTAssertEqual(run.machine["openblas_core_repair"] as? String, "user-choice")
            XCTAssertNil(run.machine["rehearsed_fallback"], "a rehearsal must not replace the user's core either")
            XCTAssertTrue(machineLine(run).contains("core Prescott (OPENBLAS_CORETYPE, kept)"), machineLine(run))
        #endif
    }

    func testRepairCanBeSwitchedOff() throws {
        #if !arch(x86_64)
            throw XCTSkip("OpenBLAS's fallback cores are x86-64's")
        #else
            let run = try trainBlas(["RNNKIT_BLAS_REHEARSE_FALLBACK": "Prescott", "RNNKIT_BLAS_CORE_REPAIR": "off"])
            XCTAssertEqual(run.status, 0, run.errors)
            XCTAssertEqual(run.machine["openblas_core"] as? String, "Prescott")
            XCTAssertEqual(run.machine["openblas_core_repair"] as? String, "disabled")
        #endif
    }
}
