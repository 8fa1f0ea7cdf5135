/// The per-step products against the recurrent kernel `U [H, G·H]`, as the driver prepared them
/// for one pass: `U` (forward) or `Uᵀ` (backward) packed into panels once for a large gated layer
/// (`PackedRecurrence`), `Uᵀ` transposed once where the small kernels take the backward products,
/// otherwise `gemm` on `U` as it lies. Cells call these instead of choosing a kernel themselves.
struct RecurrentProducts<S: BLASScalar> {
    let backend: BLASBackend
    let batch: Int, units: Int
    /// `G·H`, the row stride of `U` and of the gate matrices.
    let gateColumns: Int
    /// `U [H, G·H]` and the bias in Keras's layout (GRU reset-after: the recurrent row at `G·H`).
    let recurrentKernel: UnsafePointer<S>
    let bias: UnsafePointer<S>
    /// Whether `packedWeights` holds `U` (forward) or `Uᵀ` (backward) packed this pass.
    let packed: Bool
    let packedWeights: UnsafeMutablePointer<S>
    /// Backward: `Uᵀ [G·H, H]` written once this pass; nil where the products read `U` itself.
    let transposedRecurrentKernel: UnsafePointer<S>?
    /// `[B, G·H]` scratch for a cell's own projection (GRU reset-after's `h_{t−1}·U + b′`).
    let projection: UnsafeMutablePointer<S>

    /// Forward: `c [B, columns] += a [B, H] · U[:, first..<first + columns]` (`c`'s row stride `G·H`).
    /// Packed weights serve the whole width only, which is what the packed cells ask for.
    @inline(__always)
    func addStateProduct(_ a: UnsafePointer<S>, first: Int = 0, columns: Int, into c: UnsafeMutablePointer<S>) {
        let (B, H, GH) = (batch, units, gateColumns)
        if packed {
            precondition(first == 0 && columns == GH, "packed weights serve the whole width")
            PackedRecurrence.product(
                rows: B, columns: GH, depth: H, a: a, lda: H, packed: packedWeights,
                panelDepth: H, accumulate: true, c: c, ldc: GH)
        } else {
            backend.gemm(
                transposeA: false, transposeB: false, m: B, n: columns, k: H,
                alpha: 1, a: a, lda: H, b: recurrentKernel + first, ldb: GH, beta: 1, c: c, ldc: GH)
        }
    }

    /// Backward: `c [B, H] (+)= a [B, columns] · U[:, first..<first + columns]ᵀ` (`+=` with `accumulate`),
    /// the gradient carried to `h_{t−1}` through `U`.
    @inline(__always)
    func carry(_ a: UnsafePointer<S>, lda: Int, first: Int, columns: Int, accumulate: Bool, into c: UnsafeMutablePointer<S>) {
        let (B, H, GH) = (batch, units, gateColumns)
        if packed {
            PackedRecurrence.product(
                rows: B, columns: H, depth: columns, a: a, lda: lda, packed: packedWeights,
                first: first, panelDepth: GH, accumulate: accumulate, c: c, ldc: H)
        } else if let transposedRecurrentKernel {
            backend.gemm(
                transposeA: false, transposeB: false, m: B, n: H, k: columns, alpha: 1, a: a, lda: lda,
                b: transposedRecurrentKernel + first * H, ldb: H, beta: accumulate ? 1 : 0, c: c, ldc: H)
        } else {
            backend.gemm(
                transposeA: false, transposeB: true, m: B, n: H, k: columns, alpha: 1, a: a, lda: lda,
                b: recurrentKernel + first, ldb: GH, beta: accumulate ? 1 : 0, c: c, ldc: H)
        }
    }
}
