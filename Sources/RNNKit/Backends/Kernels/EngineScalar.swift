import CBLAS
import CSmallKernels
import RealModule

/// What the engine's products and activations need of a scalar: the matrix product, the
/// activations and their derivatives, and the few vector operations the passes run.
///
/// `Float` runs on OpenBLAS's `sgemm`, `Double` on `dgemm`. The elementwise kernels are
/// requirements (with their shared implementation in `Kernels.swift`) rather than free generic
/// functions so that every call from generic layer code lands in a body specialised for the
/// concrete type: unspecialised generic arithmetic is an order of magnitude slower, and these
/// loops run once per time step. The product, the activations and their derivatives are public,
/// for custom layers; the engine's own helpers are behind `@_spi(Kernels)`.
public protocol EngineScalar: Real, BinaryFloatingPoint, Codable, Sendable, CustomStringConvertible {
    /// Row-major general matrix multiply: `C ← α·op(A)·op(B) + β·C`, where `op(A)` is `[m, k]`,
    /// `op(B)` is `[k, n]` and `C` is `[m, n]`; `lda`, `ldb`, `ldc` are the row strides of the
    /// matrices as stored (before any transposition).
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// `tanh` of `count` values in place. `Float` uses the rational approximation every C kernel
    /// uses (`rnnkit_tanh_in_place`, a few ulps); `Double` uses the C library's `tanh`.
    static func tanhInPlace(_ values: UnsafeMutablePointer<Self>, count: Int)

    /// The logistic sigmoid `1 / (1 + e^−x)` of `count` values in place. `Float` computes it as
    /// `½ + ½·tanh(x/2)` on that `tanh`; `Double` uses the C library's `exp`.
    static func sigmoidInPlace(_ values: UnsafeMutablePointer<Self>, count: Int)

    // Kernels with a shared implementation (see Kernels.swift).
    static func activateInPlace(_ activation: Activation, _ values: UnsafeMutablePointer<Self>, rows: Int, columns: Int)
    static func multiplyByActivationDerivative(
        _ activation: Activation, outputs: UnsafePointer<Self>, gradient: UnsafeMutablePointer<Self>, count: Int)
    @_spi(Kernels) static func addAndMultiplyByActivationDerivative(
        _ activation: Activation, outputs: UnsafePointer<Self>, upstream: UnsafePointer<Self>?,
        carried: UnsafePointer<Self>?, into gradient: UnsafeMutablePointer<Self>, count: Int)
    /// The softmax of each row, in place. `Float` runs it on a vector exp (about 1 ulp) on the AVX2
    /// and AVX-512 instruction sets where rows have at most 64 columns.
    static func softmaxInPlace(_ values: UnsafeMutablePointer<Self>, rows: Int, columns: Int)
    static func softmaxBackward(outputs: UnsafePointer<Self>, gradient: UnsafeMutablePointer<Self>, rows: Int, columns: Int)
    @_spi(Kernels) static func broadcastRows(_ row: UnsafePointer<Self>, into matrix: UnsafeMutablePointer<Self>, rows: Int, columns: Int)
    @_spi(Kernels) static func sumRows(_ matrix: UnsafePointer<Self>, rows: Int, columns: Int, into result: UnsafeMutablePointer<Self>)
    /// As `gemm`, in `SmallGEMM`'s kernels (for products that `SmallGEMM.suits`).
    @_spi(Kernels) static func smallGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// `C ← tanh(C + A·B)` (`A [m, k]`, `B [k, n]`, row-major) in one pass, the activation
    /// applied in registers before the store: a small recurrent step fused with its activation.
    /// Returns false, doing nothing, where there is no such kernel (Double; the portable instruction set).
    @_spi(Kernels) static func smallGEMMTanh(
        m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int, c: UnsafeMutablePointer<Self>, ldc: Int
    ) -> Bool
    /// A small tanh SimpleRNN's whole recurrence in one call (`rnnkit_rnn_tanh_forward`): `gates`
    /// `[T, B, H]` holds `x_t·W + b` on entry and `h_t` on return. False, doing nothing, where there
    /// is no such kernel (Double; the portable instruction set; H above 64).
    @_spi(Kernels) static func tanhRecurrence(
        steps: Int, batch: Int, units: Int, gates: UnsafeMutablePointer<Self>,
        recurrentKernel: UnsafePointer<Self>, initialState: UnsafePointer<Self>?
    ) -> Bool
    /// Its backward pass through time (`rnnkit_rnn_tanh_backward`): every step's `dz_t` into
    /// `gateGradient`, and d loss / d h_0 left in `carried` when `toStart`.
    @_spi(Kernels) static func tanhRecurrenceBackward(
        steps: Int, batch: Int, units: Int, states: UnsafePointer<Self>,
        upstream: UnsafePointer<Self>, sequence: Bool, recurrentKernel: UnsafePointer<Self>,
        gateGradient: UnsafeMutablePointer<Self>, carried: UnsafeMutablePointer<Self>, toStart: Bool
    ) -> Bool
    @_spi(Kernels) static func add(_ source: UnsafePointer<Self>, into destination: UnsafeMutablePointer<Self>, count: Int)
    @_spi(Kernels) static func sumOfSquares(_ values: UnsafePointer<Self>, count: Int) -> Double
    @_spi(Kernels) static func scale(_ values: UnsafeMutablePointer<Self>, by factor: Self, count: Int)
    @_spi(Kernels) static func clamp(_ values: UnsafeMutablePointer<Self>, to limit: Self, count: Int)
    @_spi(Kernels) static func combine(
        _ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>?, into c: UnsafeMutablePointer<Self>, count: Int,
        multiply: Bool, scale: Self)
    @_spi(Kernels) static func allFinite(_ values: UnsafePointer<Self>, count: Int) -> Bool
}

extension EngineScalar {
    // Defaults for the engine's fast paths, which a scalar without such kernels does not take.

    /// `gemm` itself.
    @_spi(Kernels) public static func smallGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
            beta: beta, c: c, ldc: ldc)
    }

    /// No fused kernel: false.
    @_spi(Kernels) public static func smallGEMMTanh(
        m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int, c: UnsafeMutablePointer<Self>, ldc: Int
    ) -> Bool {
        false
    }

    /// No whole-sequence kernel: false.
    @_spi(Kernels) public static func tanhRecurrence(
        steps: Int, batch: Int, units: Int, gates: UnsafeMutablePointer<Self>,
        recurrentKernel: UnsafePointer<Self>, initialState: UnsafePointer<Self>?
    ) -> Bool {
        false
    }

    /// No whole-sequence kernel: false.
    @_spi(Kernels) public static func tanhRecurrenceBackward(
        steps: Int, batch: Int, units: Int, states: UnsafePointer<Self>, upstream: UnsafePointer<Self>, sequence: Bool,
        recurrentKernel: UnsafePointer<Self>, gateGradient: UnsafeMutablePointer<Self>, carried: UnsafeMutablePointer<Self>,
        toStart: Bool
    ) -> Bool {
        false
    }
}

@inline(__always)
private func blasTranspose(_ transposed: Bool) -> CBLAS_TRANSPOSE {
    transposed ? CblasTrans : CblasNoTrans
}

extension Float: EngineScalar {
    @inline(__always)
    @_spi(Kernels) public static func smallGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        rnnkit_small_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    @inline(__always)
    @_spi(Kernels) public static func smallGEMMTanh(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) -> Bool {
        rnnkit_small_sgemm_nn_tanh(m, n, k, a, lda, b, ldb, c, ldc) != 0
    }

    @_spi(Kernels) public static func tanhRecurrence(
        steps: Int, batch: Int, units: Int, gates: UnsafeMutablePointer<Float>,
        recurrentKernel: UnsafePointer<Float>, initialState: UnsafePointer<Float>?
    ) -> Bool {
        rnnkit_rnn_tanh_forward(steps, batch, units, gates, recurrentKernel, initialState) != 0
    }

    @_spi(Kernels) public static func tanhRecurrenceBackward(
        steps: Int, batch: Int, units: Int, states: UnsafePointer<Float>,
        upstream: UnsafePointer<Float>, sequence: Bool, recurrentKernel: UnsafePointer<Float>,
        gateGradient: UnsafeMutablePointer<Float>, carried: UnsafeMutablePointer<Float>,
        toStart: Bool
    ) -> Bool {
        rnnkit_rnn_tanh_backward(
            steps, batch, units, states, upstream, sequence ? 1 : 0, recurrentKernel, gateGradient, carried,
            toStart ? 1 : 0) != 0
    }

    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    // The one tanh of the C kernels (vector_tanh.h), so that a step gives the same bits whether
    // a fused kernel or this activation computed it.
    public static func tanhInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
        rnnkit_tanh_in_place(values, count)
    }

    public static func sigmoidInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
        rnnkit_sigmoid_in_place(values, count)
    }

    @_spi(Kernels) public static func sumRows(
        _ matrix: UnsafePointer<Float>, rows: Int, columns: Int, into result: UnsafeMutablePointer<Float>
    ) {
        rnnkit_sum_rows(matrix, rows, columns, result)
    }

    @_spi(Kernels) public static func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
        rnnkit_all_finite(values, count) != 0
    }

    public static func softmaxInPlace(_ values: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        rnnkit_softmax_rows(values, rows, columns)
    }
}

extension Double: EngineScalar {
    @inline(__always)
    @_spi(Kernels) public static func smallGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        rnnkit_small_dgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    public static func tanhInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { values[i] = Double.tanh(values[i]) }
    }

    public static func sigmoidInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { values[i] = 1 / (1 + Double.exp(-values[i])) }
    }
}
