import CBLAS
import Foundation

/// OpenBLAS's process-wide settings.
public enum BLASConfiguration {
    /// The number of threads OpenBLAS uses for one call. Tiny GEMMs, like a small RNN's
    /// per-step `[B, H]·[H, H]`, lose badly to waking threads: 1 is right for them.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            precondition(newValue > 0, "OpenBLAS needs at least one thread, not \(newValue)")
            openblas_set_num_threads(Int32(newValue))
        }
    }

    /// OpenBLAS's build description, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64`.
    public static var configuration: String {
        String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    /// The kernel family OpenBLAS chose for this processor (`SkylakeX`, `Zen`, `Haswell`, …).
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
