import Foundation
import XCTest
@_spi(Benchmarks) @testable import RNNKit

/// The processor's features, and the choice of OpenBLAS kernels made from them (never from a
/// model number). The repair itself, in a process whose OpenBLAS starts on a fallback core, is
/// tested through `train-blas` (TrainerTests' `BLASCoreRepairTests`) and by `make test`'s second
/// pass, which runs the agreement and fixture tests with `RNNKIT_BLAS_REHEARSE_FALLBACK=Prescott`.
final class BLASCoreTests: XCTestCase {
    /// The flags Linux lists for this processor (the kernel drops those it does not enable).
    static func linuxFlags() throws -> (vendor: String, flags: Set<String>) {
        #if os(Linux) && arch(x86_64)
            let text = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
            let lines = text.split(separator: "\n")
            func field(_ name: String) -> String? {
                lines.first { $0.hasPrefix(name) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
            }
            return (field("vendor_id") ?? "", Set((field("flags") ?? "").split(separator: " ").map(String.init)))
        #else
            throw XCTSkip("the processor's flags are read from /proc/cpuinfo, on x86-64 Linux only")
        #endif
    }

    /// The core the repair must choose for these flags, worked out here from Linux's view.
    static func expectedCore(vendor: String, flags: Set<String>) -> String? {
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            return flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        }
        if flags.isSuperset(of: ["avx2", "fma"]) { return ["AuthenticAMD", "HygonGenuine"].contains(vendor) ? "Zen" : "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        return nil
    }

    func testProcessorFeaturesAgreeWithLinux() throws {
        let linux = try Self.linuxFlags()
        let processor = Processor.current
        XCTAssertEqual(processor.vendor, linux.vendor)
        // Linux calls SSE3 "pni"; the rest share their names.
        for feature in [
            "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16",
            "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "ssse3", "sse4_1", "sse4_2",
        ] {
            XCTAssertEqual(processor.has(feature), linux.flags.contains(feature), feature)
        }
        XCTAssertEqual(processor.has("sse3"), linux.flags.contains("pni"))
        XCTAssertFalse(processor.summary.isEmpty)
    }

    func testCandidatesFollowFeaturesNotModelNumbers() {
        func processor(_ vendor: String, model: Int, _ features: [String]) -> Processor {
            Processor(vendor: vendor, brand: "", family: 6, model: model, features: features)
        }
        let avx512 = ["avx", "fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
        // The server (family 6, model 207) and an unknown future model alike.
        for model in [207, 0, 255] {
            XCTAssertEqual(
                BLASCoreRepair.candidates(for: processor("GenuineIntel", model: model, avx512 + ["avx512_bf16", "amx_tile"])),
                ["Cooperlake", "SkylakeX"])
            XCTAssertEqual(BLASCoreRepair.candidates(for: processor("GenuineIntel", model: model, avx512)), ["SkylakeX"])
            XCTAssertEqual(BLASCoreRepair.candidates(for: processor("GenuineIntel", model: model, ["avx", "fma", "avx2"])), ["Haswell"])
            XCTAssertEqual(
                BLASCoreRepair.candidates(for: processor("AuthenticAMD", model: model, ["avx", "fma", "avx2"])), ["Zen", "Haswell"])
            XCTAssertEqual(BLASCoreRepair.candidates(for: processor("GenuineIntel", model: model, ["avx"])), ["Sandybridge"])
            XCTAssertEqual(BLASCoreRepair.candidates(for: processor("GenuineIntel", model: model, ["sse3"])), [])
        }
        // AVX-512 F alone (without BW, DQ, VL) is not enough for OpenBLAS's SkylakeX kernels.
        XCTAssertEqual(processor("GenuineIntel", model: 85, ["avx", "fma", "avx2", "avx512f"]).vectorLevel, .avx2)
        // FMA without AVX2 is not the AVX2 level.
        XCTAssertEqual(processor("AuthenticAMD", model: 2, ["avx", "fma"]).vectorLevel, .avx)
    }

    func testEveryFallbackCoreIsBelowAVX() {
        for core in ["Prescott", "Core2", "Nehalem", "Katmai", "Atom", "Banias", "Unknown", "Penryn", "Dunnington", "Barcelona"] {
            XCTAssertEqual(BLASCoreRepair.coreLevels[core.lowercased()], .sse, core)
        }
        XCTAssertEqual(BLASCoreRepair.coreLevels["skylakex"], .avx512)
        XCTAssertEqual(BLASCoreRepair.coreLevels["zen"], .avx2)
        XCTAssertTrue(BLASCoreRepair.switchesOff("OFF"))
        XCTAssertTrue(BLASCoreRepair.switchesOff("0"))
        XCTAssertFalse(BLASCoreRepair.switchesOff("on"))
        XCTAssertFalse(BLASCoreRepair.switchesOff(nil))
    }

    /// In this process (plain, or `make test`'s rehearsal pass): after preparation OpenBLAS runs
    /// kernels as wide as the processor's, unless the user chose the core.
    func testThisProcessRunsKernelsAsWideAsTheProcessor() throws {
        let linux = try Self.linuxFlags()
        let report = BLASConfiguration.report
        let environment = ProcessInfo.processInfo.environment
        XCTAssertEqual(report.coreAfter, BLASConfiguration.coreName)
        XCTAssertEqual(report.openBLASVersion.split(separator: ".").count, 3, report.openBLASConfiguration)
        if let chosen = environment["OPENBLAS_CORETYPE"], !chosen.isEmpty {
            return XCTAssertEqual(report.outcome, .userChoice)
        }
        if let rehearsed = environment["RNNKIT_BLAS_REHEARSE_FALLBACK"], !rehearsed.isEmpty {
            XCTAssertEqual(report.rehearsedFallback?.lowercased(), rehearsed.lowercased())
            XCTAssertEqual(
                report.outcome, BLASCoreRepair.switchesOff(environment["RNNKIT_BLAS_CORE_REPAIR"]) ? .disabled : .repaired,
                report.summary)
        }
        guard report.outcome == .repaired || report.outcome == .kept else { return }
        let level = try XCTUnwrap(BLASCoreRepair.coreLevels[report.coreAfter.lowercased()], report.coreAfter)
        XCTAssertEqual(level, report.processor.vectorLevel, report.summary)
        if report.outcome == .repaired {
            XCTAssertEqual(report.coreAfter, Self.expectedCore(vendor: linux.vendor, flags: linux.flags), report.summary)
            XCTAssertTrue(report.summary.contains("→ \(report.coreAfter) (repaired"), report.summary)
        }
    }

    /// An `n × n` product through OpenBLAS of two fixed matrices, as a closure to run on each core.
    static func squareProduct(_ n: Int) -> () -> [Float] {
        let a = (0..<(n * n)).map { Float(($0 * 37) % 101) / 50 - 1 }, b = (0..<(n * n)).map { Float(($0 * 53) % 97) / 48 - 1 }
        return {
            var c = [Float](repeating: 0, count: n * n)
            Float.gemm(
                transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n,
                beta: 0, c: &c, ldc: n)
            return c
        }
    }

    /// Switching cores and back leaves OpenBLAS computing what it computed before, bit for bit.
    func testSwitchingCoresAndBackChangesNothing() throws {
        let product = Self.squareProduct(96)
        let before = product(), core = BLASConfiguration.coreName
        let old = BLASConfiguration.withOpenBLASCore("Prescott") { product() }
        XCTAssertEqual(BLASConfiguration.coreName, core)
        XCTAssertEqual(product(), before)
        // The SSE3 kernels compute the same product in another order: close, not equal.
        let prescott = try XCTUnwrap(old, "OpenBLAS (DYNAMIC_ARCH) could not switch to Prescott")
        for (x, y) in zip(prescott, before) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
    }

    /// OpenBLAS's threads and buffers survive switching back and forth: a product large enough to
    /// be split over threads, on every core this processor runs, then again on the first.
    func testThreadedProductsAcrossSwitches() throws {
        let product = Self.squareProduct(384)
        let threads = BLASConfiguration.threads
        BLASConfiguration.threads = 2
        defer { BLASConfiguration.threads = threads }
        let reference = product()
        let cores = BLASConfiguration.openBLASCoresThisProcessorRuns
        XCTAssertFalse(cores.isEmpty)
        for core in cores {
            let result = try XCTUnwrap(BLASConfiguration.withOpenBLASCore(core) { product() }, "could not switch to \(core)")
            for (x, y) in zip(result, reference) { XCTAssertEqual(x, y, accuracy: 1e-3 * max(1, abs(y)), core) }
        }
        XCTAssertEqual(product(), reference, "the core in use computes what it did before the switches")
    }
}
