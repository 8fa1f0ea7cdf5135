/// The engine: every pass as OpenBLAS GEMM calls over time-major buffers.
///
/// Forward: one GEMM projects all `T·B` input rows at once; then one `[B, H]·[H, H]` GEMM per
/// step adds the recurrence. Backward: one GEMM per step carries the gradient back through `U`,
/// then one GEMM each for `dW`, `dU` and `dX` over all steps. Nothing allocates.
public struct BLASBackend: Backend {
    public init() {}

    public var name: String { "blas" }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simpleRNNForward<S: BLASScalar>(
        _ d: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        states: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        let stepSize = B * H
        // Z [T·B, H] = b (broadcast) + X [T·B, D] · W [D, H]
        S.broadcastRows(bias, into: states, rows: T * B, columns: H)
        S.gemm(transposeA: false, transposeB: false, m: T * B, n: H, k: D,
               alpha: 1, a: x, lda: D, b: kernel, ldb: H, beta: 1, c: states, ldc: H)
        // h_1 = f(z_1), as h_0 = 0
        S.activateInPlace(activation, states, rows: B, columns: H)
        for t in 1..<T {
            let previous = states + (t - 1) * stepSize, current = states + t * stepSize
            // z_t += h_{t−1} [B, H] · U [H, H]
            S.gemm(transposeA: false, transposeB: false, m: B, n: H, k: H,
                   alpha: 1, a: previous, lda: H, b: recurrentKernel, ldb: H, beta: 1, c: current, ldc: H)
            S.activateInPlace(activation, current, rows: B, columns: H)
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simpleRNNBackward<S: BLASScalar>(
        _ d: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, states: UnsafePointer<S>,
        kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>,
        stateGradient: UnsafePointer<S>, sequenceGradient: Bool,
        kernelGradient: UnsafeMutablePointer<S>, recurrentKernelGradient: UnsafeMutablePointer<S>,
        biasGradient: UnsafeMutablePointer<S>, inputGradient: UnsafeMutablePointer<S>?,
        workspace: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        let stepSize = B * H
        let dZ = workspace                     // [T, B, H]
        let carried = workspace + T * stepSize // g [B, H] = dz_{t+1} · Uᵀ
        for t in stride(from: T - 1, through: 0, by: -1) {
            let upstream: UnsafePointer<S>? =
                sequenceGradient ? stateGradient + t * stepSize : (t == T - 1 ? stateGradient : nil)
            let dz = dZ + t * stepSize
            // dz_t = (dh_t + g) ⊙ f′(h_t)
            S.addAndMultiplyByActivationDerivative(
                activation, outputs: states + t * stepSize, upstream: upstream,
                carried: t == T - 1 ? nil : UnsafePointer(carried), into: dz, count: stepSize)
            if t > 0 {
                // g [B, H] = dz_t [B, H] · Uᵀ
                S.gemm(transposeA: false, transposeB: true, m: B, n: H, k: H,
                       alpha: 1, a: dz, lda: H, b: recurrentKernel, ldb: H, beta: 0, c: carried, ldc: H)
            }
        }
        // dW [D, H] = Xᵀ [D, T·B] · dZ [T·B, H]
        S.gemm(transposeA: true, transposeB: false, m: D, n: H, k: T * B,
               alpha: 1, a: x, lda: D, b: dZ, ldb: H, beta: 0, c: kernelGradient, ldc: H)
        // dU [H, H] = H_prevᵀ [H, (T−1)·B] · dZ[1…] [(T−1)·B, H]; h_0 = 0 contributes nothing.
        if T > 1 {
            S.gemm(transposeA: true, transposeB: false, m: H, n: H, k: (T - 1) * B,
                   alpha: 1, a: states, lda: H, b: dZ + stepSize, ldb: H, beta: 0,
                   c: recurrentKernelGradient, ldc: H)
        } else {
            recurrentKernelGradient.update(repeating: 0, count: H * H)
        }
        // db [H] = Σ rows of dZ
        S.sumRows(dZ, rows: T * B, columns: H, into: biasGradient)
        // dX [T·B, D] = dZ [T·B, H] · Wᵀ [H, D]
        if let inputGradient {
            S.gemm(transposeA: false, transposeB: true, m: T * B, n: D, k: H,
                   alpha: 1, a: dZ, lda: H, b: kernel, ldb: H, beta: 0, c: inputGradient, ldc: D)
        }
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
        S.gemm(transposeA: false, transposeB: false, m: rows, n: units, k: inputs,
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
        S.gemm(transposeA: true, transposeB: false, m: inputs, n: units, k: rows,
               alpha: 1, a: x, lda: inputs, b: preActivationGradient, ldb: units, beta: 0, c: kernelGradient, ldc: units)
        S.sumRows(preActivationGradient, rows: rows, columns: units, into: biasGradient)
        // dX [rows, inputs] = dZ · Vᵀ
        if let inputGradient {
            S.gemm(transposeA: false, transposeB: true, m: rows, n: inputs, k: units,
                   alpha: 1, a: preActivationGradient, lda: units, b: kernel, ldb: units, beta: 0,
                   c: inputGradient, ldc: inputs)
        }
    }
}
