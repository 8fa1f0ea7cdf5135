/// `tanh` for `Float` as a [13/6] rational approximation (the one Eigen uses), clamped where
/// `tanh` rounds to ±1. It has no branches and no calls, so the loop vectorises to AVX-512; the
/// C library's scalar `tanhf` would cost as much as all the GEMMs of a small model.
/// Maximum error about 2 ulp on [-9, 9]; NaN stays NaN.
@inline(__always)
func fastTanh(_ x: Float) -> Float {
    let clampBound: Float = 7.90531110763549805
    let c = x < -clampBound ? -clampBound : (x > clampBound ? clampBound : x)
    let x2 = c * c
    var p: Float = -2.76076847742355e-16
    p = x2 * p + 2.00018790482477e-13
    p = x2 * p + -8.60467152213735e-11
    p = x2 * p + 5.12229709037114e-08
    p = x2 * p + 1.48572235717979e-05
    p = x2 * p + 6.37261928875436e-04
    p = x2 * p + 4.89352455891786e-03
    p = c * p
    var q: Float = 1.19825839466702e-06
    q = x2 * q + 1.18534705686654e-04
    q = x2 * q + 2.26843463243900e-03
    q = x2 * q + 4.89352518554385e-03
    // Below 4e-4 the rational form loses relative accuracy; tanh(x) == x to float precision there.
    return abs(c) < 0.0004 ? c : p / q
}

func fastTanhInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { values[i] = fastTanh(values[i]) }
}
