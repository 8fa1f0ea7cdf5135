import CSmallKernels

// The cells' elementwise steps for `Float` with Keras's default activations (tanh, sigmoid
// gates), fused into one pass over each row on 8-lane vectors: the generic steps in
// CellKernels.swift take several passes (one per activation block, then the state update) and
// evaluate derivatives through a switch per element, which costs as much as the GEMMs for
// H ≈ 128. Same formulas, same layouts; `BLASScalar`'s steps call these when they apply.

private typealias V = SIMD8<Float>

@inline(__always) private func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
@inline(__always) private func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
@inline(__always) private func sigmoid(_ x: V) -> V { 0.5 + 0.5 * fastTanh(0.5 * x) }

/// Runs `body` on lane groups of 8 starting at `j`, then on the tail as lanes of a vector padded
/// from scalars (so the same vector formula serves the tail, with no second scalar copy of it).
@inline(__always)
private func forEachLaneGroup(_ count: Int, _ body: (Int, Int) -> Void) {
    var j = 0
    while j + 8 <= count {
        body(j, 8)
        j += 8
    }
    if j < count { body(j, count - j) }
}

/// Loads `n ≤ 8` lanes (the rest zero) and stores them back.
@inline(__always) private func load(_ p: UnsafePointer<Float>, _ n: Int) -> V {
    if n == 8 { return load(p) }
    var v = V(repeating: 0)
    for lane in 0..<n { v[lane] = p[lane] }
    return v
}
@inline(__always) private func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == 8 { return store(v, p) }
    for lane in 0..<n { p[lane] = v[lane] }
}

extension Float {
    /// `lstmForwardStep` for tanh and sigmoid.
    static func fusedLSTMForwardStep(
        gates: UnsafeMutablePointer<Float>, previousCell: UnsafePointer<Float>, cell: UnsafeMutablePointer<Float>,
        activatedCell: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        for b in 0..<rows {
            let g = gates + b * 4 * H, k = b * H
            forEachLaneGroup(H) { j, n in
                let i = sigmoid(load(g + j, n)), f = sigmoid(load(g + H + j, n))
                let candidate = fastTanh(load(g + 2 * H + j, n)), o = sigmoid(load(g + 3 * H + j, n))
                let c = f * load(previousCell + k + j, n) + i * candidate
                let a = fastTanh(c)
                store(i, g + j, n); store(f, g + H + j, n); store(candidate, g + 2 * H + j, n); store(o, g + 3 * H + j, n)
                store(c, cell + k + j, n); store(a, activatedCell + k + j, n); store(o * a, state + k + j, n)
            }
        }
    }

    /// `lstmBackwardStep` for tanh and sigmoid.
    static func fusedLSTMBackwardStep(
        gates: UnsafePointer<Float>, previousCell: UnsafePointer<Float>, activatedCell: UnsafePointer<Float>,
        upstream: UnsafePointer<Float>?, carried: UnsafePointer<Float>?, cellGradient: UnsafeMutablePointer<Float>,
        hasLaterCell: Bool, gateGradient: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        // In C on 16 (AVX-512) or 8 (AVX2) lanes, where the small kernels run on either.
        if rnnkit_lstm_backward_step(rows, H, gates, previousCell, activatedCell, upstream, carried, cellGradient,
                                     hasLaterCell ? 1 : 0, gateGradient) != 0 { return }
        for b in 0..<rows {
            let g = gates + b * 4 * H, dg = gateGradient + b * 4 * H, k = b * H
            forEachLaneGroup(H) { j, n in
                var dh = V(repeating: 0)
                if let upstream { dh += load(upstream + k + j, n) }
                if let carried { dh += load(carried + k + j, n) }
                let i = load(g + j, n), f = load(g + H + j, n), candidate = load(g + 2 * H + j, n), o = load(g + 3 * H + j, n)
                let a = load(activatedCell + k + j, n)
                var dc = dh * o * (1 - a * a)
                if hasLaterCell { dc += load(cellGradient + k + j, n) }
                store(dc * candidate * i * (1 - i), dg + j, n)
                store(dc * load(previousCell + k + j, n) * f * (1 - f), dg + H + j, n)
                store(dc * i * (1 - candidate * candidate), dg + 2 * H + j, n)
                store(dh * a * o * (1 - o), dg + 3 * H + j, n)
                store(dc * f, cellGradient + k + j, n)
            }
        }
    }

    /// `gruForwardStepResetAfter` for tanh and sigmoid.
    static func fusedGRUForwardStepResetAfter(
        gates: UnsafeMutablePointer<Float>, recurrent: UnsafePointer<Float>, previousState: UnsafePointer<Float>,
        auxiliary: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        for b in 0..<rows {
            let g = gates + b * 3 * H, u = recurrent + b * 3 * H, k = b * H
            forEachLaneGroup(H) { j, n in
                let z = sigmoid(load(g + j, n) + load(u + j, n)), r = sigmoid(load(g + H + j, n) + load(u + H + j, n))
                let uh = load(u + 2 * H + j, n)
                let candidate = fastTanh(load(g + 2 * H + j, n) + r * uh)
                store(z, g + j, n); store(r, g + H + j, n); store(candidate, g + 2 * H + j, n)
                store(uh, auxiliary + k + j, n)
                store(z * load(previousState + k + j, n) + (1 - z) * candidate, state + k + j, n)
            }
        }
    }

    /// `gruBackwardStepResetAfter` for tanh and sigmoid.
    static func fusedGRUBackwardStepResetAfter(
        gates: UnsafePointer<Float>, auxiliary: UnsafePointer<Float>, previousState: UnsafePointer<Float>,
        upstream: UnsafePointer<Float>?, carried: UnsafePointer<Float>?,
        inputGateGradient: UnsafeMutablePointer<Float>, recurrentGateGradient: UnsafeMutablePointer<Float>,
        direct: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        for b in 0..<rows {
            let g = gates + b * 3 * H, dx = inputGateGradient + b * 3 * H, du = recurrentGateGradient + b * 3 * H, k = b * H
            forEachLaneGroup(H) { j, n in
                var dh = V(repeating: 0)
                if let upstream { dh += load(upstream + k + j, n) }
                if let carried { dh += load(carried + k + j, n) }
                let z = load(g + j, n), r = load(g + H + j, n), candidate = load(g + 2 * H + j, n)
                let dCandidate = dh * (1 - z) * (1 - candidate * candidate)
                let dz = dh * (load(previousState + k + j, n) - candidate) * z * (1 - z)
                let dr = dCandidate * load(auxiliary + k + j, n) * r * (1 - r)
                store(dz, dx + j, n); store(dr, dx + H + j, n); store(dCandidate, dx + 2 * H + j, n)
                store(dz, du + j, n); store(dr, du + H + j, n); store(dCandidate * r, du + 2 * H + j, n)
                store(dh * z, direct + k + j, n)
            }
        }
    }
}
