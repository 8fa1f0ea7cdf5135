/// `tanh` for `Float` as a [13/6] rational approximation (the one Eigen uses), clamped where
/// `tanh` rounds to ±1. Written on 8-lane vectors with no branches and no calls, so it runs
/// at vector speed; the C library's scalar `tanhf` would cost as much as all the GEMMs of a
/// small model. Maximum error about 2 ulp; NaN stays NaN (so a diverging model is noticed).
@inline(__always)
func fastTanh(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let bound: Float = 7.90531110763549805
    // Clamp with comparisons (false for NaN) rather than min/max, which would turn NaN into ±1.
    var c = x.replacing(with: bound, where: x .> bound)
    c.replace(with: -bound, where: c .< -bound)
    let x2 = c * c
    var p = x2 * -2.76076847742355e-16 + 2.00018790482477e-13
    p = x2 * p + -8.60467152213735e-11
    p = x2 * p + 5.12229709037114e-08
    p = x2 * p + 1.48572235717979e-05
    p = x2 * p + 6.37261928875436e-04
    p = x2 * p + 4.89352455891786e-03
    p = c * p
    var q = x2 * 1.19825839466702e-06 + 1.18534705686654e-04
    q = x2 * q + 2.26843463243900e-03
    q = x2 * q + 4.89352518554385e-03
    // Below 4e-4 the rational form loses relative accuracy; tanh(x) == x to float precision there.
    return (p / q).replacing(with: c, where: c .< 0.0004 .& c .> -0.0004)
}

/// The scalar form, for tails and tests.
@inline(__always)
func fastTanh(_ x: Float) -> Float { fastTanh(SIMD8<Float>(repeating: x))[0] }

func fastTanhInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let raw = UnsafeMutableRawPointer(values + i)
        raw.storeBytes(of: fastTanh(raw.loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        values[i] = fastTanh(values[i])
        i += 1
    }
}

/// The logistic sigmoid as `½ + ½·tanh(x/2)`: the same vector code as `fastTanh`, so an LSTM's
/// three sigmoid gates cost no more than its tanh. Absolute error about 1e-7.
func fastSigmoidInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let raw = UnsafeMutableRawPointer(values + i)
        let x = raw.loadUnaligned(as: SIMD8<Float>.self)
        raw.storeBytes(of: 0.5 + 0.5 * fastTanh(0.5 * x), as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        values[i] = 0.5 + 0.5 * fastTanh(0.5 * values[i])
        i += 1
    }
}
