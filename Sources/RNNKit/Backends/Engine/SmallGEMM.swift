import CSmallKernels
import Foundation

/// Matrix products too small for OpenBLAS to run well, and the rule that sends them elsewhere.
///
/// OpenBLAS spends about a third of a microsecond getting ready for any `sgemm` (argument checks,
/// choosing a kernel, packing both operands into its panel layouts), and its small-matrix kernels
/// exist only for AVX-512 cores; a `[16, 10]·[10, 10]` product, the notebook model's recurrence per
/// step and worker, is 1,600 multiply-adds and costs it about as much as 10,000. The kernels in
/// `CSmallKernels` read A where it lies and keep a block of 4 rows × 16 columns of the result in
/// registers over the whole inner dimension; narrow even widths (n = 4, 6, 10, 12, 14, with a dense
/// C) run flattened, four rows of C as whole 8-lane vectors, against a copy of B with each row
/// repeated four times.
///
/// One instruction set per process, chosen at first use from the CPU's features (cpuid, and XGETBV
/// for the registers the OS saves; never from a model number): `avx512` (AVX-512 F, BW, DQ and VL),
/// `avx2-fma` (AVX2 with FMA) or `portable` C, the best this CPU runs unless the environment
/// variable `RNNKIT_SMALL_KERNELS` names another it runs (so that a benchmark or test can run a
/// child process on one path). The `avx512` path has its own bodies for the shapes where they
/// measured faster (16-lane rows without a ragged end, long weight-gradient sums, the transposed
/// weight gradient; the recurrence for 16, 32, 48 or 64 units; the softmax) and runs the AVX2
/// bodies of the rest, chosen by shape (`CSmallKernels/include/small_kernels.h` lists them). Every
/// path gives the same bits for the same inputs on every run; the paths differ from each other in
/// the last bits.
package enum SmallGEMM {
    /// The widest `op(B)` (`n`) and the largest product (`m·n·k` multiply-adds) that
    /// `BLASBackend` in `.auto` mode gives these kernels; beyond them OpenBLAS's packed kernels win.
    /// Set from the benchmarks' table of the notebook models' products (docs/BENCHMARKS.md): a
    /// `[448, 28]·[28, 10]` input projection loses to OpenBLAS in the 4 × 16 block kernel but beats
    /// it in the flattened one that narrow even widths take, and so do the `Aᵀ·B` weight gradients.
    package static let widestColumns = 64
    package static let largestProduct = 1 << 19

    /// Whether a product of this size goes to the small kernels.
    @inline(__always)
    package static func suits(n: Int, k: Int, m: Int, transposeB: Bool) -> Bool {
        n <= widestColumns && m * n * k <= largestProduct
            && (!transposeB || n * k <= Int(RNNKIT_SMALL_TRANSPOSED_LIMIT))
    }

    /// The instruction set the `Float` kernels run on now: `avx512`, `avx2-fma` or `portable`.
    package static var instructionSet: String { String(cString: rnnkit_small_kernels_isa()) }

    /// The instruction sets this CPU runs, best first (always ending with `portable`): the names
    /// `force(_:)` accepts here.
    package static var availableInstructionSets: [String] {
        ["avx512", "avx2-fma", "portable"].filter { rnnkit_small_kernels_supports($0) != 0 }
    }

    /// Runs the `Float` kernels on the instruction set `name` (`avx512`, `avx2-fma`, `portable`),
    /// or on the best this CPU runs for `nil` or `""`. Returns false, changing nothing, when the name
    /// is unknown or this CPU lacks that instruction set. For tests and benchmarks: call it while no
    /// product runs on another thread (a running kernel finishes on the set it started with).
    @discardableResult
    package static func force(_ name: String?) -> Bool {
        guard let name else { return rnnkit_small_kernels_force(nil) != 0 }
        return rnnkit_small_kernels_force(name) != 0
    }

    /// What `RNNKIT_SMALL_KERNELS` asked for, when it is set and not empty, and whether this CPU
    /// runs it: the kernels ignore an unknown or unsupported name there silently (running the best
    /// set instead), so a program that times or tests one path reports it from here.
    package static var environmentRequest: (name: String, honoured: Bool)? {
        guard let value = ProcessInfo.processInfo.environment["RNNKIT_SMALL_KERNELS"], !value.isEmpty else { return nil }
        return (value, rnnkit_small_kernels_supports(value) != 0)
    }

    /// Runs the `Float` kernels in portable C (true) or on the best instruction set the CPU runs
    /// (false); for tests that check both. `force(_:)` chooses any of them.
    package static func forcePortable(_ portable: Bool) { rnnkit_small_kernels_force_portable(portable ? 1 : 0) }
}
