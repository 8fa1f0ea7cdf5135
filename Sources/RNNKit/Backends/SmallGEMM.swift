import CSmallKernels

/// Matrix products too small for OpenBLAS to run well, and the rule that sends them elsewhere.
///
/// OpenBLAS spends about a third of a microsecond getting ready for any `sgemm` (argument checks,
/// choosing a kernel, packing both operands into its panel layouts), and its small-matrix kernels
/// exist only for AVX-512 cores; a `[16, 10]·[10, 10]` product, the notebook model's recurrence per
/// step and worker, is 1,600 multiply-adds and costs it about as much as 10,000. The kernels in
/// `CSmallKernels` read A where it lies and keep a block of 4 rows × 16 columns of the result in
/// registers over the whole inner dimension; narrow even widths (n = 4, 6, 10, 12, 14, with a dense
/// C) run flattened, four rows of C as whole 8-lane vectors, against a copy of B with each row
/// repeated four times. AVX2 with FMA when the core has them (checked at run time), portable C
/// otherwise.
public enum SmallGEMM {
    /// The widest `op(B)` (`n`) and the largest product (`m·n·k` multiply-adds) that
    /// `BLASBackend` in `.auto` mode gives these kernels; beyond them OpenBLAS's packed kernels win.
    /// Measured with the benchmarks' table of the notebook models' products: a `[448, 28]·[28, 10]`
    /// input projection runs at 0.8× of OpenBLAS in the 4 × 16 block kernel but 1.1–1.3× in the
    /// flattened one that narrow even widths take, and the `Aᵀ·B` weight gradients at 1.2–1.3×.
    public static let widestColumns = 64
    public static let largestProduct = 1 << 19

    /// Whether a product of this size goes to the small kernels.
    @inline(__always)
    public static func suits(n: Int, k: Int, m: Int, transposeB: Bool) -> Bool {
        n <= widestColumns && m * n * k <= largestProduct
            && (!transposeB || n * k <= Int(RNNKIT_SMALL_TRANSPOSED_LIMIT))
    }

    /// The instruction set the `Float` kernel runs on here: `avx2-fma` or `portable`.
    public static var instructionSet: String { String(cString: rnnkit_small_kernels_isa()) }

    /// Runs the `Float` kernel in portable C (true) or on what the core supports (false); for tests
    /// that check both.
    public static func forcePortable(_ portable: Bool) { rnnkit_small_kernels_force_portable(portable ? 1 : 0) }
}
