/// The engine: every pass as OpenBLAS GEMM calls over time-major buffers, one driver for every
/// cell kind.
///
/// Forward: one GEMM projects all `T·B` input rows for every gate at once (`[T·B, D]·[D, G·H]`);
/// then per step one `[B, H]·[H, G·H]` GEMM adds the recurrence (GRU without reset-after needs a
/// second, `[B, H]·[H, H]`, because its reset gate scales the state before the product), and the
/// cell's elementwise step follows. Backward: per step the cell's elementwise step gives the gate
/// gradients and one GEMM carries the gradient back through `U`; then one GEMM each for `dW`,
/// `dU` and `dX` over all steps. Nothing allocates.
///
/// Products too small for OpenBLAS to run well (a small model's per-step recurrence, its narrow
/// projections) go to `SmallGEMM`'s SIMD kernels instead, chosen per call by size (`kernels:
/// .auto`, the default); `.blas` sends every product to OpenBLAS, as a baseline to measure against.
public struct BLASBackend: Backend {
    /// Which code multiplies the matrices.
    public enum Kernels: String, Sendable, CaseIterable {
        /// Small products in `SmallGEMM`, the rest in OpenBLAS.
        case auto
        /// Every product in OpenBLAS.
        case blas
    }

    /// Which code multiplies the matrices (`.auto` by default).
    public let kernels: Kernels

    /// The engine with `kernels`; prepares OpenBLAS first (`BLASConfiguration.prepare()`, once per process).
    public init(kernels: Kernels = .auto) {
        BLASConfiguration.prepare()
        self.kernels = kernels
    }

    public var name: String { kernels == .auto ? "blas" : "blas (OpenBLAS only)" }

    /// Every product of the engine: to `SmallGEMM` when small enough (in `.auto`), else OpenBLAS.
    @inline(__always)
    func gemm<S: BLASScalar>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: S, a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int,
        beta: S, c: UnsafeMutablePointer<S>, ldc: Int
    ) {
        if kernels == .auto, SmallGEMM.suits(n: n, k: k, m: m, transposeB: transposeB) {
            S.smallGEMM(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            S.gemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// The workspace's regions for one cell and batch size.
    struct Workspace<S: BLASScalar> {
        /// `[B, H]` of zeros: `h_0` and `c_0`.
        let zeros: UnsafeMutablePointer<S>
        /// `[B, G·H]`: GRU (reset after)'s per-step recurrent projection.
        let projection: UnsafeMutablePointer<S>
        /// `[T, B, G·H]`: d loss / d gate pre-activations, input side.
        let inputGateGradient: UnsafeMutablePointer<S>
        /// `[T, B, G·H]`: the recurrent side, which differs only for GRU (reset after).
        let recurrentGateGradient: UnsafeMutablePointer<S>
        /// `[B, H]` each: the gradient carried to h_{t−1}, to c_{t−1} (LSTM), and to r ⊙ h_{t−1} (GRU reset before).
        let carried: UnsafeMutablePointer<S>, carriedCell: UnsafeMutablePointer<S>, resetState: UnsafeMutablePointer<S>
        /// Masking: what masked samples pass to the step before (d h, d c).
        let passedState: UnsafeMutablePointer<S>, passedCell: UnsafeMutablePointer<S>
        /// Recurrent dropout: d loss / d (h_{t−1} ⊙ m), before the mask takes it to h_{t−1}.
        let droppedGradient: UnsafeMutablePointer<S>
        /// `[G·H, H]`: `Uᵀ`, written once per backward pass when the per-step products are small,
        /// so that each step's `dG·Uᵀ` reads it in place instead of transposing `U` again.
        let transposedRecurrentKernel: UnsafeMutablePointer<S>
        /// `U` packed once per pass for `PackedRecurrence` (layers over 64 units; empty otherwise).
        let packedWeights: UnsafeMutablePointer<S>

        static func count(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
            let state = d.batch * d.units, gates = cell.gates * state
            // Only GRU with reset-after has a recurrent side that differs (its own bias, and r in
            // the candidate block), so only it needs a second gradient buffer.
            return 7 * state + gates + d.steps * gates * (cell.hasRecurrentBias ? 2 : 1) + transposedKernelCount(cell, d)
                + PackedRecurrence.workspaceCount(cell, d)
        }

        /// Room for `Uᵀ` only where the small kernels can take the per-step products (H ≤ 64):
        /// a 512-unit LSTM would otherwise carry 4 MB it never uses.
        static func transposedKernelCount(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
            d.units <= SmallGEMM.widestColumns ? cell.gates * d.units * d.units : 0
        }

        init(_ cell: RecurrentCell, _ d: RNNDimensions, _ memory: UnsafeMutablePointer<S>) {
            let state = d.batch * d.units, gates = cell.gates * state
            zeros = memory
            carried = memory + state
            carriedCell = memory + 2 * state
            resetState = memory + 3 * state
            passedState = memory + 4 * state
            passedCell = memory + 5 * state
            droppedGradient = memory + 6 * state
            projection = memory + 7 * state
            inputGateGradient = projection + gates
            recurrentGateGradient = cell.hasRecurrentBias ? inputGateGradient + d.steps * gates : inputGateGradient
            transposedRecurrentKernel = inputGateGradient + d.steps * gates * (cell.hasRecurrentBias ? 2 : 1)
            packedWeights = transposedRecurrentKernel + Self.transposedKernelCount(cell, d)
        }
    }

    public func recurrentWorkspaceCount(_ cell: RecurrentCell, _ dims: RNNDimensions) -> Int {
        Workspace<Float>.count(cell, dims)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentForward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, workspace: UnsafeMutablePointer<S>
    ) {
        cell.run(
            RecurrentForwardPass(
                backend: self, kind: cell, dimensions: d, x: x, weights: weights, mask: SequenceMask.effective(mask, d),
                initialState: initialState, tape: tape,
                workspace: Workspace(cell, d, workspace)))
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentBackward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, stateGradient: UnsafePointer<S>,
        sequenceGradient: Bool, finalCellGradient: UnsafePointer<S>?, gradients: RecurrentGradients<S>,
        inputGradient: UnsafeMutablePointer<S>?, initialStateGradient: RecurrentStateGradient<S>?, workspace: UnsafeMutablePointer<S>
    ) {
        cell.run(
            RecurrentBackwardPass(
                backend: self, kind: cell, dimensions: d, x: x, weights: weights, mask: SequenceMask.effective(mask, d),
                initialState: initialState, tape: tape,
                stateGradient: stateGradient, sequenceGradient: sequenceGradient, finalCellGradient: finalCellGradient,
                gradients: gradients, inputGradient: inputGradient, initialStateGradient: initialStateGradient,
                workspace: Workspace(cell, d, workspace)))
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseForward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        preActivation: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>
    ) {
        // Z [rows, units] = c (broadcast) + X · V
        S.broadcastRows(bias, into: preActivation, rows: rows, columns: units)
        gemm(
            transposeA: false, transposeB: false, m: rows, n: units, k: inputs,
            alpha: 1, a: x, lda: inputs, b: kernel, ldb: units, beta: 1, c: preActivation, ldc: units)
        if output != preActivation { output.update(from: preActivation, count: rows * units) }
        S.activateInPlace(activation, output, rows: rows, columns: units)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseBackward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, preActivationGradient: UnsafePointer<S>,
        kernelGradient: UnsafeMutablePointer<S>, biasGradient: UnsafeMutablePointer<S>,
        inputGradient: UnsafeMutablePointer<S>?
    ) {
        // dV [inputs, units] = Xᵀ · dZ
        gemm(
            transposeA: true, transposeB: false, m: inputs, n: units, k: rows,
            alpha: 1, a: x, lda: inputs, b: preActivationGradient, ldb: units, beta: 0, c: kernelGradient, ldc: units)
        S.sumRows(preActivationGradient, rows: rows, columns: units, into: biasGradient)
        // dX [rows, inputs] = dZ · Vᵀ
        if let inputGradient {
            gemm(
                transposeA: false, transposeB: true, m: rows, n: inputs, k: units,
                alpha: 1, a: preActivationGradient, lda: units, b: kernel, ldb: units, beta: 0,
                c: inputGradient, ldc: inputs)
        }
    }
}
