import CLAPACKE
import RealModule

/// How a weight starts: Keras's initialisers, with Keras's names and defaults.
public enum Initializer: Sendable, Equatable {
    /// Uniform in ±√(6 / (fan_in + fan_out)): Keras's default for kernels.
    case glorotUniform
    /// A random orthogonal matrix (QR of a Gaussian matrix, signs fixed by R's diagonal) times
    /// `gain`: Keras's default for recurrent kernels.
    case orthogonal(gain: Double = 1)
    /// All zeros: Keras's default for biases.
    case zeros
    /// Uniform in [lower, upper].
    case uniform(lower: Double, upper: Double)

    /// Whether the initialiser can draw a weight of `shape`: the orthogonal one needs a matrix.
    public func accepts(shape: [Int]) -> Bool {
        if case .orthogonal = self { return shape.count == 2 }
        return true
    }

    /// Fills a weight of `shape` (`[fan_in, fan_out]` for matrices; vectors have fan_in = fan_out = n).
    public func fill<S: BLASScalar>(_ buffer: BufferSlice<S>, shape: [Int], generator: inout RandomGenerator) {
        precondition(buffer.count == shape.reduce(1, *), "buffer of \(buffer.count) does not hold shape \(shape)")
        let values = sample(shape: shape, generator: &generator)
        for (i, value) in values.enumerated() { buffer.pointer[i] = S(value) }
    }

    /// The initial values of a weight of `shape`, row-major, in Double.
    public func sample(shape: [Int], generator: inout RandomGenerator) -> [Double] {
        let count = shape.reduce(1, *)
        switch self {
        case .zeros:
            return Array(repeating: 0, count: count)
        case .uniform(let lower, let upper):
            return (0..<count).map { _ in lower + (upper - lower) * generator.nextUnitDouble() }
        case .glorotUniform:
            let fanIn = shape.count >= 2 ? shape[0] : count
            let fanOut = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : count
            let limit = (6 / Double(fanIn + fanOut)).squareRoot()
            return (0..<count).map { _ in -limit + 2 * limit * generator.nextUnitDouble() }
        case .orthogonal(let gain):
            precondition(shape.count == 2, "the orthogonal initialiser needs a matrix, not shape \(shape)")
            return Self.orthogonal(rows: shape[0], columns: shape[1], gain: gain, generator: &generator)
        }
    }

    /// Keras's recipe: draw a Gaussian `[max(r, c), min(r, c)]` matrix, factor it `A = QR`, flip
    /// the sign of each column of Q where R's diagonal is negative (so the distribution is
    /// uniform over orthogonal matrices), and transpose when the weight is wider than tall.
    static func orthogonal(rows: Int, columns: Int, gain: Double, generator: inout RandomGenerator) -> [Double] {
        let m = max(rows, columns), n = min(rows, columns)
        var a = (0..<(m * n)).map { _ in generator.nextGaussian() }
        var tau = [Double](repeating: 0, count: n)
        BLASConfiguration.prepare()
        var diagonal = [Double](repeating: 0, count: n)
        a.withUnsafeMutableBufferPointer { a in
            tau.withUnsafeMutableBufferPointer { tau in
                let info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a.baseAddress, Int32(n), tau.baseAddress)
                precondition(info == 0, "LAPACKE_dgeqrf failed with info \(info)")
                for i in 0..<n { diagonal[i] = a[i * n + i] }
                let info2 = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(n), Int32(n), a.baseAddress, Int32(n), tau.baseAddress)
                precondition(info2 == 0, "LAPACKE_dorgqr failed with info \(info2)")
            }
        }
        // Q is [m, n]; scale column j by sign(R_jj).
        for i in 0..<m {
            for j in 0..<n where diagonal[j] < 0 { a[i * n + j] = -a[i * n + j] }
        }
        if rows >= columns { return a.map { $0 * gain } }
        var transposed = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { transposed[j * m + i] = a[i * n + j] * gain } }
        return transposed
    }
}
