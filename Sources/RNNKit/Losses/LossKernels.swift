import RealModule

/// The losses' kernels: each loss over a batch of rows in one call, its gradient written in the
/// same pass. Requirements (with the shared bodies below) so that a loss's generic code lands in
/// a body specialised for the concrete scalar; behind `@_spi(Kernels)`, as they are not part of
/// RNNKit's promise (write a loss against `Loss` instead).
public protocol LossKernels: Real, BinaryFloatingPoint {
    @_spi(Kernels) static func softmaxCrossEntropy(
        logits: UnsafePointer<Self>, probabilities: UnsafePointer<Self>, labels: UnsafePointer<Int32>,
        rows: Int, classes: Int, gradientScale: Self, logitGradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int, invalidLabels: Int)
    @_spi(Kernels) static func probabilityCrossEntropy(
        outputs: UnsafePointer<Self>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
        gradientScale: Self, outputGradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int, invalidLabels: Int)
    @_spi(Kernels) static func binaryCrossEntropy(
        values: UnsafePointer<Self>, fromLogits: Bool, targets: UnsafePointer<Self>, rows: Int, columns: Int,
        gradientScale: Self, gradient: UnsafeMutablePointer<Self>?
    ) -> (lossSum: Double, correct: Int)
    @_spi(Kernels) static func meanSquaredError(
        outputs: UnsafePointer<Self>, targets: UnsafePointer<Self>, rows: Int, columns: Int,
        gradientScale: Self, gradient: UnsafeMutablePointer<Self>?
    ) -> Double
}

extension LossKernels {
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
    @_spi(Kernels) public static func softmaxCrossEntropy(
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
    @_spi(Kernels) public static func probabilityCrossEntropy(
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
    @_spi(Kernels) public static func binaryCrossEntropy(
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
    @_spi(Kernels) public static func meanSquaredError(
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
}

extension Float: LossKernels {}
extension Double: LossKernels {}
