import CBLAS
import Foundation

/// Which kernels OpenBLAS runs, and RNNKit's repair when it chose kernels older than the processor.
///
/// Debian's OpenBLAS is built with `DYNAMIC_ARCH`: it carries kernels for many processors and picks
/// one set at load time, by vendor and model number. A processor newer than the library is not in
/// its table, and it then falls back to kernels as old as SSE3 ("Prescott") — on a current
/// AVX-512 server a fifth of the speed its own `SkylakeX` kernels reach. OpenBLAS reads
/// `OPENBLAS_CORETYPE` when it initialises and exports `gotoblas_dynamic_quit` and
/// `gotoblas_dynamic_init` to initialise again; RNNKit uses them once, before its first BLAS call,
/// when the core's instructions are narrower than the processor's own (`Processor.vectorLevel`):
///
/// - AVX-512 F/BW/DQ/VL: `Cooperlake` when AVX512_BF16 is there too, else `SkylakeX`;
/// - AVX2 with FMA: `Zen` on AMD and Hygon, `Haswell` otherwise;
/// - AVX: `Sandybridge`.
///
/// It never picks kernels the processor lacks, never replaces a core the user chose
/// (`OPENBLAS_CORETYPE` set when the process started), never touches a core it does not know (a
/// newer OpenBLAS's), and does nothing when `RNNKIT_BLAS_CORE_REPAIR` is `off` (or `0`, `no`,
/// `false`) or `BLASConfiguration.repairsFallbackCore` was set to false before the first use.
///
/// Why initialising again in the process is safe (OpenBLAS 0.3.21, `driver/others`): every BLAS
/// call reads the kernels and their blocking sizes through the one `gotoblas` pointer at the time
/// of the call; the work buffers have one size for every core of a `DYNAMIC_ARCH` build
/// (`BUFFER_SIZE`), and the thread pool holds no per-core state. What must hold is that no BLAS
/// call is running at that moment: RNNKit makes the change holding `BLASConfiguration`'s gate
/// alone, so none of its own calls is, and it does so at its first use, which in an application
/// that also calls OpenBLAS from other threads should be `BLASConfiguration.prepare()` at start.
/// The variable is set only for the call to `gotoblas_dynamic_init` and then restored, so child
/// processes do not inherit it as if the user had chosen it.
public struct BLASCoreReport: Sendable, Codable, Equatable {
    /// What the repair did.
    public enum Outcome: String, Sendable, Codable {
        /// OpenBLAS's own choice already uses the processor's widest vectors.
        case kept
        /// OpenBLAS had chosen narrower kernels; RNNKit initialised it again with `coreAfter`.
        case repaired
        /// `OPENBLAS_CORETYPE` was set by the user: left as it is.
        case userChoice = "user-choice"
        /// Switched off (`RNNKIT_BLAS_CORE_REPAIR=off` or `BLASConfiguration.repairsFallbackCore`).
        case disabled
        /// OpenBLAS was built for one processor (no `DYNAMIC_ARCH`): it cannot change kernels.
        case notDynamic = "not-dynamic"
        /// A core name RNNKit does not know (a newer OpenBLAS): left as it is.
        case unknownCore = "unknown-core"
        /// No candidate core initialised; OpenBLAS was put back on `coreBefore`.
        case failed
    }

    /// The processor the repair judged by.
    public let processor: Processor
    /// `openblas_get_config()`: version, build options and the core, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH …`.
    public let openBLASConfiguration: String
    /// The core OpenBLAS had chosen (or was made to choose, in a rehearsal) before the repair.
    public let coreBefore: String
    /// The core in use after it.
    public let coreAfter: String
    /// What the repair did.
    public let outcome: Outcome
    /// A fallback core forced by `RNNKIT_BLAS_REHEARSE_FALLBACK` to exercise the repair on a
    /// processor OpenBLAS knows; nil in normal runs.
    public let rehearsedFallback: String?

    /// Whether the kernels were changed.
    public var repaired: Bool { outcome == .repaired }

    /// OpenBLAS's version number, from its configuration string (`0.3.21`).
    public var openBLASVersion: String {
        let words = openBLASConfiguration.split(separator: " ")
        guard let index = words.firstIndex(of: "OpenBLAS"), index + 1 < words.count else { return "unknown" }
        return String(words[index + 1])
    }

    /// One line for a log: the processor, OpenBLAS's version and core, and what the repair did.
    public var summary: String {
        let core: String
        switch outcome {
        case .repaired: core = "core \(coreBefore) → \(coreAfter) (repaired: \(coreBefore) lacks \(processor.vectorLevel))"
        case .kept: core = "core \(coreAfter)"
        case .userChoice: core = "core \(coreAfter) (OPENBLAS_CORETYPE, kept)"
        case .disabled: core = "core \(coreAfter) (repair switched off)"
        case .notDynamic: core = "core \(coreAfter) (single-core build, no repair possible)"
        case .unknownCore: core = "core \(coreAfter) (not in RNNKit's table, kept)"
        case .failed: core = "core \(coreAfter) (repair to \(processor.vectorLevel) kernels failed)"
        }
        let rehearsal = rehearsedFallback.map { ", rehearsing a fallback to \($0)" } ?? ""
        return "CPU \(processor.vendor) family \(processor.family) model \(processor.model), \(processor.vectorLevel)"
            + "\(processor.has("avx512_bf16") ? " BF16" : "")\(processor.has("amx_tile") ? " AMX" : ""); "
            + "OpenBLAS \(openBLASVersion) \(core)\(rehearsal); small kernels \(SmallGEMM.instructionSet)"
    }
}

/// The repair itself; `BLASConfiguration.prepare()` runs it once.
enum BLASCoreRepair {
    /// OpenBLAS's x86-64 cores (the names `openblas_get_corename` returns) by the widest
    /// instructions their single-precision kernels use.
    static let coreLevels: [String: Processor.VectorLevel] = {
        var levels: [String: Processor.VectorLevel] = [:]
        for name in [
            "Unknown", "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn",
            "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano", "Bobcat",
        ] {
            levels[name.lowercased()] = .sse
        }
        for name in ["Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"] { levels[name.lowercased()] = .avx }
        for name in ["Haswell", "Zen"] { levels[name.lowercased()] = .avx2 }
        for name in ["SkylakeX", "Cooperlake", "SapphireRapids"] { levels[name.lowercased()] = .avx512 }
        return levels
    }()

    /// The cores to try for this processor, best first; empty below AVX.
    static func candidates(for processor: Processor) -> [String] {
        switch processor.vectorLevel {
        case .avx512: return processor.has("avx512_bf16") ? ["Cooperlake", "SkylakeX"] : ["SkylakeX"]
        case .avx2:
            return ["AuthenticAMD", "HygonGenuine"].contains(processor.vendor) ? ["Zen", "Haswell"] : ["Haswell"]
        case .avx: return ["Sandybridge"]
        case .sse: return []
        }
    }

    /// Whether `value` (an environment variable) switches the repair off.
    static func switchesOff(_ value: String?) -> Bool {
        guard let value else { return false }
        return ["off", "0", "no", "false"].contains(value.lowercased())
    }

    typealias Initialise = @convention(c) () -> Void

    /// OpenBLAS's re-initialisation entry points, present in `DYNAMIC_ARCH` builds only.
    static var entryPoints: (quit: Initialise, initialise: Initialise)? {
        guard let quit = dlsym(nil, "gotoblas_dynamic_quit"), let initialise = dlsym(nil, "gotoblas_dynamic_init") else { return nil }
        return (unsafeBitCast(quit, to: Initialise.self), unsafeBitCast(initialise, to: Initialise.self))
    }

    static var coreName: String { String(cString: openblas_get_corename()) }

    /// Initialises OpenBLAS again with `core` forced; returns the core it then reports.
    static func reinitialise(as core: String, _ entry: (quit: Initialise, initialise: Initialise)) -> String {
        setenv("OPENBLAS_CORETYPE", core, 1)
        entry.quit()
        entry.initialise()
        unsetenv("OPENBLAS_CORETYPE")
        return coreName
    }

    /// Runs the repair (caller holds the gate alone). `environment` is the process's, read once.
    static func run(enabled: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) -> BLASCoreReport {
        let processor = Processor.current
        let dynamic = String(cString: openblas_get_config()).contains("DYNAMIC_ARCH")
        let entry = dynamic ? entryPoints : nil
        var before = coreName
        var rehearsed: String?
        func report(_ outcome: BLASCoreReport.Outcome) -> BLASCoreReport {
            BLASCoreReport(
                processor: processor,
                openBLASConfiguration: String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces),
                coreBefore: before,
                coreAfter: coreName, outcome: outcome, rehearsedFallback: rehearsed)
        }
        let userCore = environment["OPENBLAS_CORETYPE"]
        // A rehearsal stands in for OpenBLAS not knowing the processor: it forces an old core first,
        // as OpenBLAS's own choice would be, then lets the repair run as it would there.
        if let fallback = environment["RNNKIT_BLAS_REHEARSE_FALLBACK"], !fallback.isEmpty, userCore == nil, let entry {
            before = reinitialise(as: fallback, entry)
            rehearsed = before
        }
        if let userCore, !userCore.isEmpty { return report(.userChoice) }
        guard enabled, !switchesOff(environment["RNNKIT_BLAS_CORE_REPAIR"]) else { return report(.disabled) }
        guard let entry else { return report(.notDynamic) }
        guard let level = coreLevels[before.lowercased()] else { return report(.unknownCore) }
        guard level < processor.vectorLevel else { return report(.kept) }
        for candidate in candidates(for: processor) where reinitialise(as: candidate, entry).lowercased() == candidate.lowercased() {
            return report(.repaired)
        }
        _ = reinitialise(as: before, entry)
        return report(.failed)
    }
}
