import RealModule

// The shared bodies of the elementwise kernels required by `BLASScalar`. Each is a protocol
// extension member, so the compiler emits a copy specialised for `Float` and one for `Double`
// behind the conformances' witness tables.

extension BLASScalar {
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
    public static func addAndMultiplyByActivationDerivative(
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
    public static func broadcastRows(_ row: UnsafePointer<Self>, into matrix: UnsafeMutablePointer<Self>, rows: Int, columns: Int) {
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
    public static func sumRows(_ matrix: UnsafePointer<Self>, rows: Int, columns: Int, into result: UnsafeMutablePointer<Self>) {
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

    /// Gathers byte images time-major: image `indices[b]` (`rows × columns` bytes at
    /// `pixels + indices[b] · rows · columns`), scaled, lands at `destination[t, b, :]` of a
    /// `[rows, indices.count, columns]` batch. One call a batch, so the loop runs specialised.
    public static func gatherImages(
        _ pixels: UnsafePointer<UInt8>, indices: UnsafeBufferPointer<Int>, rows: Int, columns: Int, scale: Self,
        into destination: UnsafeMutablePointer<Self>
    ) {
        let batch = indices.count
        for (b, index) in indices.enumerated() {
            let image = pixels + index * rows * columns
            for t in 0..<rows {
                let source = image + t * columns, target = destination + (t * batch + b) * columns
                for i in 0..<columns { target[i] = Self(source[i]) * scale }
            }
        }
    }

    /// Categorical cross-entropy of softmax outputs against integer labels, computed from the
    /// logits by log-sum-exp so it stays finite when a probability underflows.
    ///
    /// - Parameters:
    ///   - logits: `[rows, classes]`.
    ///   - probabilities: `[rows, classes]`, the softmax of `logits`. The loss is `−log p_label`
    ///     from `probabilities`, and from the logits (`log Σ e^(z − max) + max − z_label`) only
    ///     where `p_label` is not a normal number.
    ///   - labels: `rows` class indices in `0..<classes`; a row whose label is outside is
    ///     skipped (no loss, zero gradient) and counted, never used as an index.
    ///   - rows: the number of rows.
    ///   - classes: the number of classes, the columns of each row.
    ///   - gradientScale: the gradient is `(p − y) · gradientScale`.
    ///   - logitGradient: `[rows, classes]` output, or nil when only the loss is wanted.
    /// - Returns: the summed loss, the number of rows whose arg-max (first on ties, as Keras)
    ///   equals the label, and the number of rows skipped for a label outside the classes.
    public static func softmaxCrossEntropy(
        logits: UnsafePointer<Self>, probabilities: UnsafePointer<Self>, labels: UnsafePointer<Int32>,
        rows: Int, classes: Int, gradientScale: Self, logitGradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int, invalidLabels: Int) {
        var lossSum = 0.0
        var correct = 0, invalid = 0
        for r in 0..<rows {
            let z = logits + r * classes, p = probabilities + r * classes
            let label = Int(labels[r])
            guard label >= 0 && label < classes else {
                invalid += 1
                logitGradient.map { ($0 + r * classes).update(repeating: 0, count: classes) }
                continue
            }
            var maximum = z[0], best = 0
            for j in 1..<classes where z[j] > maximum { maximum = z[j]; best = j }
            // −log p_label, from the softmax the forward pass already took (the exponentials cost
            // more than the rest of a small model's head); where p_label is not a normal number
            // (it underflowed, or is NaN), log Σ e^(z − max) + max − z_label from the logits.
            let probability = p[label]
            if probability >= Self.leastNormalMagnitude {
                lossSum -= Double(Self.log(probability))
            } else {
                var sum: Self = 0
                for j in 0..<classes { sum += Self.exp(z[j] - maximum) }
                lossSum += Double(Self.log(sum) + maximum - z[label])
            }
            if best == label { correct += 1 }
            if let logitGradient {
                let g = logitGradient + r * classes
                for j in 0..<classes { g[j] = p[j] * gradientScale }
                g[label] -= gradientScale
            }
        }
        return (lossSum, correct, invalid)
    }

    /// Categorical cross-entropy of outputs that are not a fused softmax, as Keras computes it
    /// from probabilities: each row normalised to sum 1, clipped to `[ε, 1 − ε]` (ε = 1e-7), then
    /// `−log q_label`. The gradient (times `gradientScale`) is with respect to the outputs, zero
    /// where the clip holds.
    public static func probabilityCrossEntropy(
        outputs: UnsafePointer<Self>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
        gradientScale: Self, outputGradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int, invalidLabels: Int) {
        let epsilon: Self = 1e-7
        var lossSum = 0.0, correct = 0, invalid = 0
        for r in 0..<rows {
            let y = outputs + r * classes, label = Int(labels[r])
            guard label >= 0 && label < classes else {
                invalid += 1
                outputGradient.map { ($0 + r * classes).update(repeating: 0, count: classes) }
                continue
            }
            var sum: Self = 0, best = 0
            for j in 0..<classes {
                sum += y[j]
                if y[j] > y[best] { best = j }
            }
            let q = y[label] / sum
            let clipped = Swift.min(Swift.max(q, epsilon), 1 - epsilon)
            lossSum -= Double(Self.log(clipped))
            if best == label { correct += 1 }
            if let outputGradient {
                let g = outputGradient + r * classes
                let inside = q > epsilon && q < 1 - epsilon
                for j in 0..<classes { g[j] = inside ? gradientScale / sum : 0 }
                if inside { g[label] -= gradientScale / y[label] }
            }
        }
        return (lossSum, correct, invalid)
    }

    /// Binary cross-entropy, mean over each row's `columns` outputs, against targets in [0, 1].
    /// With `fromLogits`, `values` are the logits of a sigmoid head and the loss is computed
    /// stably from them (`max(z, 0) − z·y + log(1 + e^−|z|)`), the gradient being d/dz; otherwise
    /// `values` are probabilities, treated as Keras does (clipped to `[ε, 1 − ε]`, `log(p + ε)`).
    /// `correct` counts elements whose thresholded prediction (> 0.5) equals the rounded target.
    public static func binaryCrossEntropy(
        values: UnsafePointer<Self>, fromLogits: Bool, targets: UnsafePointer<Self>, rows: Int, columns: Int,
        gradientScale: Self, gradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int) {
        let epsilon: Self = 1e-7
        var lossSum = 0.0, correct = 0
        let scale = gradientScale / Self(columns)
        for r in 0..<rows {
            var rowSum: Self = 0
            for j in 0..<columns {
                let k = r * columns + j, y = targets[k], v = values[k]
                let p: Self
                if fromLogits {
                    p = 1 / (1 + Self.exp(-v))
                    rowSum += Swift.max(v, 0) - v * y + Self.log(1 + Self.exp(-Swift.abs(v)))
                    gradient?[k] = (p - y) * scale
                } else {
                    p = Swift.min(Swift.max(v, epsilon), 1 - epsilon)
                    rowSum -= y * Self.log(p + epsilon) + (1 - y) * Self.log(1 - p + epsilon)
                    let inside = v > epsilon && v < 1 - epsilon
                    gradient?[k] = inside ? (-y / (p + epsilon) + (1 - y) / (1 - p + epsilon)) * scale : 0
                }
                if (p > 0.5) == (y > 0.5) { correct += 1 }
            }
            lossSum += Double(rowSum / Self(columns))
        }
        return (lossSum, correct)
    }

    /// Mean squared error, mean over each row's `columns` outputs; the gradient is
    /// `2 (y − t) / columns · gradientScale`.
    public static func meanSquaredError(
        outputs: UnsafePointer<Self>, targets: UnsafePointer<Self>, rows: Int, columns: Int,
        gradientScale: Self, gradient: UnsafeMutablePointer<Self>?
    ) -> Double {
        var lossSum = 0.0
        let scale = 2 * gradientScale / Self(columns)
        for r in 0..<rows {
            var rowSum: Self = 0
            for j in 0..<columns {
                let k = r * columns + j, difference = outputs[k] - targets[k]
                rowSum += difference * difference
                gradient?[k] = difference * scale
            }
            lossSum += Double(rowSum / Self(columns))
        }
        return lossSum
    }

    /// One Adam update of `count` weights, Keras's form:
    /// `m += (g − m)(1 − β1)`, `v += (g² − v)(1 − β2)`, `w −= stepSize · m / (√v + ε)`,
    /// where the caller folds the bias corrections into `stepSize` and passes `1 − β` computed in
    /// Double (in Float, `1 − Float(0.999)` is off by 1.3e-5 relative).
    public static func adamStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, m: UnsafeMutablePointer<Self>,
        v: UnsafeMutablePointer<Self>, count: Int, oneMinusBeta1: Self, oneMinusBeta2: Self, epsilon: Self, stepSize: Self
    ) {
        for i in 0..<count {
            let g = gradients[i]
            m[i] += (g - m[i]) * oneMinusBeta1
            v[i] += (g * g - v[i]) * oneMinusBeta2
            weights[i] -= stepSize * m[i] / (v[i].squareRoot() + epsilon)
        }
    }

    /// One SGD update, Keras's form. Without `velocity`: `w −= lr · g`. With it:
    /// `v = momentum · v − lr · g`, then `w += v`, or with Nesterov `w += momentum · v − lr · g`.
    public static func sgdStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, velocity: UnsafeMutablePointer<Self>?,
        count: Int, learningRate: Self, momentum: Self, nesterov: Bool
    ) {
        guard let velocity else {
            for i in 0..<count { weights[i] -= learningRate * gradients[i] }
            return
        }
        for i in 0..<count {
            let v = momentum * velocity[i] - learningRate * gradients[i]
            velocity[i] = v
            weights[i] += nesterov ? momentum * v - learningRate * gradients[i] : v
        }
    }

    /// One RMSprop update, Keras 3's form (ε inside the square root):
    /// `s = ρ·s + (1 − ρ)·g²`, `w −= lr · g / √(s + ε)`.
    public static func rmspropStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, meanSquare: UnsafeMutablePointer<Self>,
        count: Int, learningRate: Self, rho: Self, oneMinusRho: Self, epsilon: Self
    ) {
        for i in 0..<count {
            let g = gradients[i]
            meanSquare[i] = rho * meanSquare[i] + oneMinusRho * g * g
            weights[i] -= learningRate * g / (meanSquare[i] + epsilon).squareRoot()
        }
    }

    /// `destination += source`, elementwise: how the workers' gradients are summed.
    public static func add(_ source: UnsafePointer<Self>, into destination: UnsafeMutablePointer<Self>, count: Int) {
        for i in 0..<count { destination[i] += source[i] }
    }

    /// Inverted dropout: each value 0 with probability `rate`, else `1 / (1 − rate)`.
    public static func drawDropoutMask(_ values: UnsafeMutablePointer<Self>, count: Int, rate: Double, generator: inout RandomGenerator) {
        let kept = Self(1 / (1 - rate))
        for i in 0..<count { values[i] = generator.nextUnitDouble() < rate ? 0 : kept }
    }

    /// Keras's Masking over `rows` rows of `features`: `mask[r]` is 0 when every feature of row r
    /// equals `maskValue` (and that row of `output` is zero), else 1 (and the row is copied).
    public static func maskSteps(_ x: UnsafePointer<Self>, rows: Int, features: Int, maskValue: Self,
                                 mask: UnsafeMutablePointer<UInt8>, output: UnsafeMutablePointer<Self>) {
        for row in 0..<rows {
            let source = x + row * features, destination = output + row * features
            var keep = false
            for i in 0..<features where source[i] != maskValue {
                keep = true
                break
            }
            mask[row] = keep ? 1 : 0
            if keep { destination.update(from: source, count: features) } else { destination.update(repeating: 0, count: features) }
        }
    }

    /// `Σ values²`, accumulated in Double: the squared L2 norm gradient clipping needs.
    public static func sumOfSquares(_ values: UnsafePointer<Self>, count: Int) -> Double {
        var sum = 0.0
        for i in 0..<count { sum += Double(values[i]) * Double(values[i]) }
        return sum
    }

    /// `values *= factor`, in place.
    public static func scale(_ values: UnsafeMutablePointer<Self>, by factor: Self, count: Int) {
        for i in 0..<count { values[i] *= factor }
    }

    /// Every value clipped into `[−limit, limit]`, in place.
    public static func clamp(_ values: UnsafeMutablePointer<Self>, to limit: Self, count: Int) {
        for i in 0..<count { values[i] = Swift.min(Swift.max(values[i], -limit), limit) }
    }

    /// `c = scale · (a ⊙ b)` with `multiply`, else `c = scale · (a + b)` (`b` nil: `scale · a`):
    /// how Bidirectional merges its two directions and splits the gradient between them.
    public static func combine(_ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>?, into c: UnsafeMutablePointer<Self>, count: Int,
                               multiply: Bool, scale: Self) {
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
    public static func allFinite(_ values: UnsafePointer<Self>, count: Int) -> Bool {
        // Summing x·0 turns any NaN or infinity into NaN in one vectorisable pass.
        var probe: Self = 0
        for i in 0..<count { probe += values[i] * 0 }
        return probe == 0
    }
}
