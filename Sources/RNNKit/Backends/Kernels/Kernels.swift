import RealModule

// The shared bodies of the engine's elementwise kernels required by `EngineScalar`. Each is a
// protocol extension member, so the compiler emits a copy specialised for `Float` and one for
// `Double` behind the conformances' witness tables.

extension EngineScalar {
    /// Applies `activation` in place to a row-major `[rows, columns]` matrix.
    public static func activateInPlace(_ activation: Activation, _ values: UnsafeMutablePointer<Self>, rows: Int, columns: Int) {
        let count = rows * columns
        switch activation {
        case .linear:
            break
        case .tanh:
            tanhInPlace(values, count: count)
        case .relu:
            for i in 0..<count where values[i] < 0 { values[i] = 0 }
        case .sigmoid:
            sigmoidInPlace(values, count: count)
        case .hardSigmoid:
            for i in 0..<count { values[i] = Swift.min(Swift.max(values[i] / 6 + 0.5, 0), 1) }
        case .softmax:
            softmaxInPlace(values, rows: rows, columns: columns)
        }
    }

    /// The softmax of each row of a row-major `[rows, columns]` matrix, in place:
    /// `e^(x − max)` over the row's sum.
    public static func softmaxInPlace(_ values: UnsafeMutablePointer<Self>, rows: Int, columns: Int) {
        guard columns > 0 else { return }
        for r in 0..<rows {
            let row = values + r * columns
            var maximum = row[0]
            for j in 1..<columns where row[j] > maximum { maximum = row[j] }
            var sum: Self = 0
            for j in 0..<columns {
                row[j] = Self.exp(row[j] - maximum)
                sum += row[j]
            }
            let inverse = 1 / sum
            for j in 0..<columns { row[j] *= inverse }
        }
    }

    /// Applies an elementwise `activation` in place to `columns` values in each of `rows` rows
    /// that lie `stride` apart: one gate block of a `[rows, stride]` matrix of concatenated gates.
    @inline(__always)
    public static func activateInPlace(
        _ activation: Activation, _ values: UnsafeMutablePointer<Self>, rows: Int, columns: Int, stride: Int
    ) {
        if stride == columns { return activateInPlace(activation, values, rows: rows, columns: columns) }
        for r in 0..<rows { activateInPlace(activation, values + r * stride, rows: 1, columns: columns) }
    }

    /// `f′` of an elementwise activation, from its output `y = f(z)`.
    @inline(__always)
    public static func derivative(_ activation: Activation, output y: Self) -> Self {
        switch activation {
        case .linear: return 1
        case .tanh: return 1 - y * y
        case .relu: return y > 0 ? 1 : 0
        case .sigmoid: return y * (1 - y)
        // The slope is 1/6 strictly inside the clip and 0 on it (where the output is 0 or 1).
        case .hardSigmoid: return y > 0 && y < 1 ? 1 / 6 : 0
        case .softmax: preconditionFailure("softmax's derivative needs its rows: use softmaxBackward")
        }
    }

    /// `gradient ← gradient ⊙ f′`, with `f′` computed from the activation's `outputs`.
    /// Elementwise activations only.
    public static func multiplyByActivationDerivative(
        _ activation: Activation, outputs: UnsafePointer<Self>, gradient: UnsafeMutablePointer<Self>, count: Int
    ) {
        addAndMultiplyByActivationDerivative(activation, outputs: outputs, upstream: nil, carried: nil, into: gradient, count: count)
    }

    /// `gradient ← (upstream + carried) ⊙ f′(outputs)`, where a nil `upstream` or `carried`
    /// counts as zero and, when both are nil, `gradient` itself is the incoming gradient.
    /// This fuses the BPTT step `dz_t = (dh_t + g) ⊙ f′(h_t)` into one pass. Elementwise
    /// activations only.
    @_spi(Kernels) public static func addAndMultiplyByActivationDerivative(
        _ activation: Activation, outputs: UnsafePointer<Self>, upstream: UnsafePointer<Self>?,
        carried: UnsafePointer<Self>?, into gradient: UnsafeMutablePointer<Self>, count: Int
    ) {
        precondition(activation.isElementwise, "softmax's derivative needs its rows: use softmaxBackward")
        if let upstream, let carried {
            for i in 0..<count { gradient[i] = upstream[i] + carried[i] }
        } else if let single = upstream ?? carried {
            for i in 0..<count { gradient[i] = single[i] }
        }
        switch activation {
        case .linear, .softmax:
            break
        case .tanh:
            for i in 0..<count { gradient[i] *= 1 - outputs[i] * outputs[i] }
        case .relu:
            for i in 0..<count where !(outputs[i] > 0) { gradient[i] = 0 }
        case .sigmoid:
            for i in 0..<count { gradient[i] *= outputs[i] * (1 - outputs[i]) }
        case .hardSigmoid:
            for i in 0..<count { gradient[i] *= derivative(.hardSigmoid, output: outputs[i]) }
        }
    }

    /// Softmax's backward pass over a `[rows, columns]` matrix: `g ← y ⊙ (g − Σⱼ gⱼyⱼ)` per row.
    public static func softmaxBackward(outputs: UnsafePointer<Self>, gradient: UnsafeMutablePointer<Self>, rows: Int, columns: Int) {
        for r in 0..<rows {
            let y = outputs + r * columns, g = gradient + r * columns
            var dot: Self = 0
            for j in 0..<columns { dot += g[j] * y[j] }
            for j in 0..<columns { g[j] = y[j] * (g[j] - dot) }
        }
    }

    /// Copies `row` (`columns` long) into every row of the `[rows, columns]` `matrix`.
    @_spi(Kernels) public static func broadcastRows(
        _ row: UnsafePointer<Self>, into matrix: UnsafeMutablePointer<Self>, rows: Int, columns: Int
    ) {
        guard rows > 0 else { return }
        // The rows written so far copied after themselves, doubling: log₂(rows) copies instead of
        // one (a call to memmove) per row, which for a narrow layer's bias cost more than its GEMM.
        matrix.update(from: row, count: columns)
        let total = rows * columns
        var filled = columns
        while filled < total {
            let count = Swift.min(filled, total - filled)
            (matrix + filled).update(from: matrix, count: count)
            filled += count
        }
    }

    /// `result[j] = Σᵢ matrix[i, j]` over a `[rows, columns]` matrix (overwrites `result`).
    @_spi(Kernels) public static func sumRows(
        _ matrix: UnsafePointer<Self>, rows: Int, columns: Int, into result: UnsafeMutablePointer<Self>
    ) {
        result.update(repeating: 0, count: columns)
        // Four rows at a time: a quarter of the read-modify-writes of `result`.
        var r = 0
        while r + 4 <= rows {
            let row = matrix + r * columns
            for j in 0..<columns {
                result[j] += (row[j] + row[columns + j]) + (row[2 * columns + j] + row[3 * columns + j])
            }
            r += 4
        }
        while r < rows {
            let row = matrix + r * columns
            for j in 0..<columns { result[j] += row[j] }
            r += 1
        }
    }

    /// `destination += source`, elementwise: how the workers' gradients are summed.
    @_spi(Kernels) public static func add(_ source: UnsafePointer<Self>, into destination: UnsafeMutablePointer<Self>, count: Int) {
        for i in 0..<count { destination[i] += source[i] }
    }

    /// `Σ values²`, accumulated in Double: the squared L2 norm gradient clipping needs.
    @_spi(Kernels) public static func sumOfSquares(_ values: UnsafePointer<Self>, count: Int) -> Double {
        var sum = 0.0
        for i in 0..<count { sum += Double(values[i]) * Double(values[i]) }
        return sum
    }

    /// `values *= factor`, in place.
    @_spi(Kernels) public static func scale(_ values: UnsafeMutablePointer<Self>, by factor: Self, count: Int) {
        for i in 0..<count { values[i] *= factor }
    }

    /// Every value clipped into `[−limit, limit]`, in place.
    @_spi(Kernels) public static func clamp(_ values: UnsafeMutablePointer<Self>, to limit: Self, count: Int) {
        for i in 0..<count { values[i] = Swift.min(Swift.max(values[i], -limit), limit) }
    }

    /// `c = scale · (a ⊙ b)` with `multiply`, else `c = scale · (a + b)` (`b` nil: `scale · a`):
    /// how Bidirectional merges its two directions and splits the gradient between them.
    @_spi(Kernels) public static func combine(
        _ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>?, into c: UnsafeMutablePointer<Self>, count: Int,
        multiply: Bool, scale: Self
    ) {
        guard let b else {
            for i in 0..<count { c[i] = scale * a[i] }
            return
        }
        if multiply {
            for i in 0..<count { c[i] = scale * (a[i] * b[i]) }
        } else {
            for i in 0..<count { c[i] = scale * (a[i] + b[i]) }
        }
    }

    /// Whether no value is NaN or infinite.
    @_spi(Kernels) public static func allFinite(_ values: UnsafePointer<Self>, count: Int) -> Bool {
        // Summing x·0 turns any NaN or infinity into NaN in one vectorisable pass.
        var probe: Self = 0
        for i in 0..<count { probe += values[i] * 0 }
        return probe == 0
    }
}
