/// A penalty on a weight's size added to the training loss, as Keras's `regularizers.L1`, `L2`
/// and `L1L2`: `l1 · Σ|w| + l2 · Σw²` (no ½), whose gradient `l1 · sign(w) + 2 · l2 · w`
/// (sign(0) = 0) is added to the weight's gradient.
///
/// Keras keeps a regulariser's factors in float32 even in a float64 model (`l2(0.01)` multiplies
/// by `Float(0.01)` = 0.009999999776…), so the factors here are rounded through `Float` too:
/// the penalty and its gradient then match Keras's in Double to the last bits.
public struct Regularizer: Equatable, Sendable {
    /// The factor of `Σ|w|`, rounded to float32 as Keras keeps it.
    public let l1: Double
    /// The factor of `Σw²`, rounded to float32 as Keras keeps it.
    public let l2: Double

    /// `l1 · Σ|w| + l2 · Σw²`; factors must be finite and non-negative.
    public init(l1: Double = 0, l2: Double = 0) {
        precondition(l1.isFinite && l2.isFinite && l1 >= 0 && l2 >= 0, "regulariser factors must be finite and ≥ 0, not \(l1), \(l2)")
        // Keras stores the factors as float32 (`regularizers.L2` casts them): match it.
        self.l1 = Double(Float(l1))
        self.l2 = Double(Float(l2))
    }

    /// Keras's `l1(factor)`: `factor · Σ|w|`.
    public static func l1(_ factor: Double) -> Regularizer { Regularizer(l1: factor) }
    /// Keras's `l2(factor)`: `factor · Σw²`.
    public static func l2(_ factor: Double) -> Regularizer { Regularizer(l2: factor) }
    /// Keras's `l1_l2(l1, l2)`: `l1 · Σ|w| + l2 · Σw²`.
    public static func l1l2(l1: Double, l2: Double) -> Regularizer { Regularizer(l1: l1, l2: l2) }

    /// The penalty of `count` weights at `values`.
    public func penalty<Scalar: BLASScalar>(_ values: UnsafePointer<Scalar>, count: Int) -> Double {
        var absolute = 0.0, squares = 0.0
        for i in 0..<count {
            let w = Double(values[i])
            absolute += abs(w)
            squares += w * w
        }
        var total = 0.0
        if l1 != 0 { total += l1 * absolute }
        if l2 != 0 { total += l2 * squares }
        return total
    }

    /// Adds the penalty's gradient `l1 · sign(w) + 2 · l2 · w` into `gradient`.
    public func addGradient<Scalar: BLASScalar>(_ values: UnsafePointer<Scalar>, into gradient: UnsafeMutablePointer<Scalar>, count: Int) {
        let l1 = Scalar(self.l1), twoL2 = 2 * Scalar(self.l2)
        for i in 0..<count {
            let w = values[i]
            var g = gradient[i]
            if self.l1 != 0 { g += w > 0 ? l1 : (w < 0 ? -l1 : 0) }
            if self.l2 != 0 { g += twoL2 * w }
            gradient[i] = g
        }
    }
}
