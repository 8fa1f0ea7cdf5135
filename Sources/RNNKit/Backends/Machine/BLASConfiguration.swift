import CBLAS
import Foundation

/// OpenBLAS's process-wide settings, and the check that its kernels match the processor.
///
/// RNNKit prepares OpenBLAS once, before its first BLAS call (the first `BLASBackend`, the first
/// orthogonal initialisation, or the first use of anything here): when OpenBLAS chose kernels
/// narrower than the processor's vectors, RNNKit initialises it again with the right ones (see
/// `BLASCoreReport`). `report` says what it found and did.
public enum BLASConfiguration {
    /// Whether RNNKit may replace a fallback core OpenBLAS chose (true unless the environment
    /// variable `RNNKIT_BLAS_CORE_REPAIR` is `off`, `0`, `no` or `false`). Read once, when
    /// RNNKit first prepares OpenBLAS: set it before creating any backend or model.
    public static var repairsFallbackCore: Bool {
        get { settingsLock.withLock { repairSetting } }
        set { settingsLock.withLock { repairSetting = newValue } }
    }

    private static let settingsLock = NSLock()
    nonisolated(unsafe) private static var repairSetting = true

    /// What RNNKit found and did when it prepared OpenBLAS: the processor, OpenBLAS's version,
    /// its core before and after, and whether the core was repaired. Prepares OpenBLAS if nothing
    /// has yet.
    public static var report: BLASCoreReport { prepared }

    /// Prepares OpenBLAS now (once per process; later calls do nothing). RNNKit calls it itself
    /// before its first BLAS call; an application that also calls OpenBLAS from other threads
    /// calls it at start, before they do, because changing kernels needs OpenBLAS idle.
    public static func prepare() { _ = prepared }

    private static let prepared: BLASCoreReport = passGate.exclusively {
        BLASCoreRepair.run(enabled: repairsFallbackCore)
    }

    /// The number of threads OpenBLAS uses for one call. Tiny GEMMs, like a small RNN's
    /// per-step `[B, H]·[H, H]`, lose badly to waking threads: 1 is right for them, and for a
    /// model whose `workers` share the cores.
    ///
    /// Setting 1 also stops OpenBLAS's idle helper threads: they otherwise spin (yielding) on the
    /// other cores for a while after start-up and after every threaded call, which costs a model's
    /// own worker threads about a quarter of their speed. A later setting above 1 starts them
    /// again.
    ///
    /// Safe to set at any time, from any thread: the setting waits until no model is in the
    /// middle of a batch (each batch of `Sequential` holds `passGate` shared), because OpenBLAS
    /// deadlocks when its threads are stopped during a call.
    public static var threads: Int {
        get { prepare(); return Int(openblas_get_num_threads()) }
        set {
            precondition(newValue > 0, "OpenBLAS needs at least one thread, not \(newValue)")
            prepare()
            passGate.exclusively {
                openblas_set_num_threads(Int32(newValue))
                if newValue == 1 { stopIdleThreads() }
            }
        }
    }

    /// For the benchmarks: runs `body` with OpenBLAS initialised as `core` (a name
    /// `openblas_get_corename` returns), then puts back the core in use before. Returns nil,
    /// running nothing, when OpenBLAS cannot switch (not `DYNAMIC_ARCH`) or reports another core
    /// once asked for this one. `body` must not run a model pass (the switch needs OpenBLAS idle).
    @_spi(Benchmarks) public static func withOpenBLASCore<T>(_ core: String, _ body: () throws -> T) rethrows -> T? {
        prepare()
        guard let entry = BLASCoreRepair.entryPoints else { return nil }
        let original = BLASCoreRepair.coreName
        defer { passGate.exclusively { _ = BLASCoreRepair.reinitialise(as: original, entry) } }
        let reached = passGate.exclusively { BLASCoreRepair.reinitialise(as: core, entry) }
        guard reached.lowercased() == core.lowercased() else { return nil }
        return try body()
    }

    /// For the benchmarks: the OpenBLAS cores (x86-64) whose kernels this processor can run,
    /// oldest first: Prescott (SSE3), Nehalem, Sandybridge (AVX), Haswell and Zen (AVX2 + FMA),
    /// SkylakeX (AVX-512), Cooperlake (AVX-512 with BF16).
    @_spi(Benchmarks) public static var openBLASCoresThisProcessorRuns: [String] {
        let processor = Processor.current
        return ["Prescott", "Nehalem", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"].filter { core in
            guard let level = BLASCoreRepair.coreLevels[core.lowercased()], level <= processor.vectorLevel else { return false }
            return core != "Cooperlake" || processor.has("avx512_bf16")
        }
    }

    /// Held shared by every batch a model runs, and exclusively while the thread count changes.
    static let passGate = ReadWriteGate()

    /// Calls OpenBLAS's `blas_thread_shutdown_`, which its pthread builds export (for fork
    /// safety) but `cblas.h` does not declare; looked up at run time so builds without it work.
    private static func stopIdleThreads() {
        typealias Shutdown = @convention(c) () -> Int32
        // A nil handle is RTLD_DEFAULT on glibc: search every loaded library.
        guard let symbol = dlsym(nil, "blas_thread_shutdown_") else { return }
        _ = unsafeBitCast(symbol, to: Shutdown.self)()
    }

    /// OpenBLAS's build description, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64`.
    public static var configuration: String {
        prepare()
        return String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    /// The kernel family OpenBLAS runs for this processor (`SkylakeX`, `Zen`, `Haswell`, …), after
    /// RNNKit's repair.
    public static var coreName: String {
        prepare()
        return String(cString: openblas_get_corename())
    }
}

/// A readers–writer lock (pthread's) for the BLAS settings: many passes at once, or one change.
final class ReadWriteGate: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        precondition(pthread_rwlock_init(lock, nil) == 0, "pthread_rwlock_init failed")
    }

    /// Runs `body` while holding the gate shared (a model's batch).
    @inline(__always)
    func shared<T>(_ body: () throws -> T) rethrows -> T {
        // OpenBLAS is prepared (which takes the gate alone) before the gate is held shared, so
        // that a first preparation inside a pass cannot wait on the pass itself.
        BLASConfiguration.prepare()
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` while holding the gate alone (a settings change).
    func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
