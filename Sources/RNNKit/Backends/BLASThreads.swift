import CBLAS
import Foundation

/// OpenBLAS's process-wide settings.
public enum BLASConfiguration {
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
        get { Int(openblas_get_num_threads()) }
        set {
            precondition(newValue > 0, "OpenBLAS needs at least one thread, not \(newValue)")
            passGate.exclusively {
                openblas_set_num_threads(Int32(newValue))
                if newValue == 1 { stopIdleThreads() }
            }
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
        String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    /// The kernel family OpenBLAS chose for this processor (`SkylakeX`, `Zen`, `Haswell`, …).
    public static var coreName: String { String(cString: openblas_get_corename()) }
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
