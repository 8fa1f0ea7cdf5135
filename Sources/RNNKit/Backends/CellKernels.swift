// The elementwise step of each recurrent cell, after the GEMMs: the only part of a recurrent
// pass that differs from cell to cell. Each works on one time step of a batch: `rows` = B
// samples, `units` = H, gate blocks of H laid side by side in each row (`[B, G·H]`), states
// `[B, H]`. Called from the `BLASBackend` driver, whose specialised bodies specialise these too.

extension BLASScalar {
    /// Whether the fused `Float` steps apply (the comparison folds away in specialised code).
    @inline(__always)
    static func usesFusedSteps(_ activation: Activation, _ recurrentActivation: Activation) -> Bool {
        Self.self == Float.self && activation == .tanh && recurrentActivation == .sigmoid
    }

    /// LSTM forward step. On entry `gates [B, 4H]` holds the pre-activations `z_i z_f z_c z_o`;
    /// on return `i f c̃ o` after their activations, `cell = f ⊙ previousCell + i ⊙ c̃`,
    /// `activatedCell = activation(cell)`, `state = o ⊙ activatedCell`.
    @inline(__always)
    static func lstmForwardStep(
        activation: Activation, recurrentActivation: Activation, gates: UnsafeMutablePointer<Self>,
        previousCell: UnsafePointer<Self>, cell: UnsafeMutablePointer<Self>, activatedCell: UnsafeMutablePointer<Self>,
        state: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        if usesFusedSteps(activation, recurrentActivation) {
            return Float.fusedLSTMForwardStep(gates: floats(gates), previousCell: floats(previousCell), cell: floats(cell),
                                              activatedCell: floats(activatedCell), state: floats(state), rows: rows, units: units)
        }
        let H = units, width = 4 * units
        activateInPlace(recurrentActivation, gates, rows: rows, columns: 2 * H, stride: width)        // i, f
        activateInPlace(activation, gates + 2 * H, rows: rows, columns: H, stride: width)             // c̃
        activateInPlace(recurrentActivation, gates + 3 * H, rows: rows, columns: H, stride: width)    // o
        for b in 0..<rows {
            let g = gates + b * width, k = b * H
            for j in 0..<H {
                let c = g[H + j] * previousCell[k + j] + g[j] * g[2 * H + j]
                cell[k + j] = c
                activatedCell[k + j] = c
            }
        }
        activateInPlace(activation, activatedCell, rows: rows, columns: H)
        for b in 0..<rows {
            let o = gates + b * width + 3 * H, k = b * H
            for j in 0..<H { state[k + j] = o[j] * activatedCell[k + j] }
        }
    }

    /// LSTM backward step. `dh = upstream + carried` (nil counts as zero); `cellGradient [B, H]`
    /// holds d loss / d c_t from the later step when `hasLaterCell`, and receives d loss / d c_{t−1}.
    /// Writes d loss / d each gate's pre-activation into `gateGradient [B, 4H]`.
    @inline(__always)
    static func lstmBackwardStep(
        activation: Activation, recurrentActivation: Activation, gates: UnsafePointer<Self>,
        previousCell: UnsafePointer<Self>, activatedCell: UnsafePointer<Self>,
        upstream: UnsafePointer<Self>?, carried: UnsafePointer<Self>?,
        cellGradient: UnsafeMutablePointer<Self>, hasLaterCell: Bool, gateGradient: UnsafeMutablePointer<Self>,
        rows: Int, units: Int
    ) {
        if usesFusedSteps(activation, recurrentActivation) {
            return Float.fusedLSTMBackwardStep(
                gates: floats(gates), previousCell: floats(previousCell), activatedCell: floats(activatedCell),
                upstream: upstream.map(floats), carried: carried.map(floats), cellGradient: floats(cellGradient),
                hasLaterCell: hasLaterCell, gateGradient: floats(gateGradient), rows: rows, units: units)
        }
        let H = units, width = 4 * units
        for b in 0..<rows {
            let g = gates + b * width, dg = gateGradient + b * width, k = b * H
            for j in 0..<H {
                let dh = (upstream?[k + j] ?? 0) + (carried?[k + j] ?? 0)
                let (i, f, candidate, o, a) = (g[j], g[H + j], g[2 * H + j], g[3 * H + j], activatedCell[k + j])
                let dc = dh * o * derivative(activation, output: a) + (hasLaterCell ? cellGradient[k + j] : 0)
                dg[j] = dc * candidate * derivative(recurrentActivation, output: i)
                dg[H + j] = dc * previousCell[k + j] * derivative(recurrentActivation, output: f)
                dg[2 * H + j] = dc * i * derivative(activation, output: candidate)
                dg[3 * H + j] = dh * a * derivative(recurrentActivation, output: o)
                cellGradient[k + j] = dc * f
            }
        }
    }

    /// GRU (reset after) forward step. On entry `gates [B, 3H]` holds the input projections
    /// `x·W + b` and `recurrent [B, 3H]` holds `h_{t−1}·U + b′`; on return `gates` holds z, r, h̃,
    /// `auxiliary` the recurrent candidate part `h_{t−1}·U_h + b′_h`, and `state` the new h.
    @inline(__always)
    static func gruForwardStepResetAfter(
        activation: Activation, recurrentActivation: Activation, gates: UnsafeMutablePointer<Self>,
        recurrent: UnsafePointer<Self>, previousState: UnsafePointer<Self>, auxiliary: UnsafeMutablePointer<Self>,
        state: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        if usesFusedSteps(activation, recurrentActivation) {
            return Float.fusedGRUForwardStepResetAfter(
                gates: floats(gates), recurrent: floats(recurrent), previousState: floats(previousState),
                auxiliary: floats(auxiliary), state: floats(state), rows: rows, units: units)
        }
        let H = units, width = 3 * units
        for b in 0..<rows {
            let g = gates + b * width, u = recurrent + b * width
            for j in 0..<(2 * H) { g[j] += u[j] }
        }
        activateInPlace(recurrentActivation, gates, rows: rows, columns: 2 * H, stride: width)
        for b in 0..<rows {
            let g = gates + b * width, u = recurrent + b * width, k = b * H
            for j in 0..<H {
                auxiliary[k + j] = u[2 * H + j]
                g[2 * H + j] += g[H + j] * u[2 * H + j]
            }
        }
        gruCandidateAndBlend(activation: activation, gates: gates, previousState: previousState, state: state, rows: rows, units: units)
    }

    /// GRU (reset before), between its two GEMMs: `gates` holds `z r` pre-activations; activates
    /// them and writes `resetState = r ⊙ h_{t−1}`, the input of the candidate's GEMM.
    @inline(__always)
    static func gruResetState(
        recurrentActivation: Activation, gates: UnsafeMutablePointer<Self>, previousState: UnsafePointer<Self>,
        resetState: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        let H = units, width = 3 * units
        activateInPlace(recurrentActivation, gates, rows: rows, columns: 2 * H, stride: width)
        for b in 0..<rows {
            let r = gates + b * width + H, k = b * H
            for j in 0..<H { resetState[k + j] = r[j] * previousState[k + j] }
        }
    }

    /// GRU's last part: `h̃ = f(candidate pre-activation)` in place, `h = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`.
    @inline(__always)
    static func gruCandidateAndBlend(
        activation: Activation, gates: UnsafeMutablePointer<Self>, previousState: UnsafePointer<Self>,
        state: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        let H = units, width = 3 * units
        activateInPlace(activation, gates + 2 * H, rows: rows, columns: H, stride: width)
        for b in 0..<rows {
            let g = gates + b * width, k = b * H
            for j in 0..<H {
                let z = g[j]
                state[k + j] = z * previousState[k + j] + (1 - z) * g[2 * H + j]
            }
        }
    }

    /// GRU (reset after) backward step: from `dh = upstream + carried`, the gradients of the
    /// input-side pre-activations (`inputGateGradient [B, 3H]`) and of the recurrent side
    /// (`recurrentGateGradient [B, 3H]`, whose candidate block is scaled by r); `direct [B, H]`
    /// receives the part of d loss / d h_{t−1} that does not pass through U (`dh ⊙ z`). `direct`
    /// may be the same memory as `carried`.
    @inline(__always)
    static func gruBackwardStepResetAfter(
        activation: Activation, recurrentActivation: Activation, gates: UnsafePointer<Self>,
        auxiliary: UnsafePointer<Self>, previousState: UnsafePointer<Self>,
        upstream: UnsafePointer<Self>?, carried: UnsafePointer<Self>?,
        inputGateGradient: UnsafeMutablePointer<Self>, recurrentGateGradient: UnsafeMutablePointer<Self>,
        direct: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        if usesFusedSteps(activation, recurrentActivation) {
            return Float.fusedGRUBackwardStepResetAfter(
                gates: floats(gates), auxiliary: floats(auxiliary), previousState: floats(previousState),
                upstream: upstream.map(floats), carried: carried.map(floats), inputGateGradient: floats(inputGateGradient),
                recurrentGateGradient: floats(recurrentGateGradient), direct: floats(direct), rows: rows, units: units)
        }
        let H = units, width = 3 * units
        for b in 0..<rows {
            let g = gates + b * width, dx = inputGateGradient + b * width, du = recurrentGateGradient + b * width, k = b * H
            for j in 0..<H {
                let dh = (upstream?[k + j] ?? 0) + (carried?[k + j] ?? 0)
                let (z, r, candidate) = (g[j], g[H + j], g[2 * H + j])
                let dCandidate = dh * (1 - z) * derivative(activation, output: candidate)
                let dz = dh * (previousState[k + j] - candidate) * derivative(recurrentActivation, output: z)
                let dr = dCandidate * auxiliary[k + j] * derivative(recurrentActivation, output: r)
                dx[j] = dz; dx[H + j] = dr; dx[2 * H + j] = dCandidate
                du[j] = dz; du[H + j] = dr; du[2 * H + j] = dCandidate * r
                direct[k + j] = dh * z
            }
        }
    }

    /// GRU (reset before) backward, first half: writes the z and candidate blocks of
    /// `gateGradient [B, 3H]` and `direct = dh ⊙ z`. (`direct` may be the same memory as `carried`.)
    @inline(__always)
    static func gruBackwardCandidate(
        activation: Activation, recurrentActivation: Activation, gates: UnsafePointer<Self>,
        previousState: UnsafePointer<Self>, upstream: UnsafePointer<Self>?, carried: UnsafePointer<Self>?,
        gateGradient: UnsafeMutablePointer<Self>, direct: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        let H = units, width = 3 * units
        for b in 0..<rows {
            let g = gates + b * width, dg = gateGradient + b * width, k = b * H
            for j in 0..<H {
                let dh = (upstream?[k + j] ?? 0) + (carried?[k + j] ?? 0)
                let (z, candidate) = (g[j], g[2 * H + j])
                dg[j] = dh * (previousState[k + j] - candidate) * derivative(recurrentActivation, output: z)
                dg[2 * H + j] = dh * (1 - z) * derivative(activation, output: candidate)
                direct[k + j] = dh * z
            }
        }
    }

    /// GRU (reset before) backward, second half, given `resetStateGradient` = d loss / d (r ⊙ h_{t−1})
    /// `[B, H]`: writes the r block of `gateGradient` and adds `dResetState ⊙ r` to `direct`.
    @inline(__always)
    static func gruBackwardReset(
        recurrentActivation: Activation, gates: UnsafePointer<Self>, previousState: UnsafePointer<Self>,
        resetStateGradient: UnsafePointer<Self>, gateGradient: UnsafeMutablePointer<Self>,
        direct: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        let H = units, width = 3 * units
        for b in 0..<rows {
            let r = gates + b * width + H, dr = gateGradient + b * width + H, k = b * H
            for j in 0..<H {
                let ds = resetStateGradient[k + j]
                dr[j] = ds * previousState[k + j] * derivative(recurrentActivation, output: r[j])
                direct[k + j] += ds * r[j]
            }
        }
    }
}

/// The same memory seen as `Float`s, for the fused steps (only reached when `S` is `Float`).
@inline(__always)
private func floats<S>(_ pointer: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Float.self)
}

@inline(__always)
private func floats<S>(_ pointer: UnsafePointer<S>) -> UnsafePointer<Float> {
    UnsafeRawPointer(pointer).assumingMemoryBound(to: Float.self)
}
