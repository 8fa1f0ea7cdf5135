/// Keras's `GRU` with `reset_after=False`: gates z, r, h̃ (G = 3), bias `[3H]`,
/// `h̃ = f(x·W_h + (r ⊙ h_{t−1})·U_h + b_h)`, `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`. The tape's
/// auxiliary is `r ⊙ h_{t−1}` (`r ⊙ h_{t−1} ⊙ m` under recurrent dropout), the input of the
/// candidate's product.
///
/// The reset gate scales the state before the candidate's product, so each step runs two
/// products (`[B, H]·[H, 2H]`, then `[B, H]·[H, H]` on `r ⊙ h_{t−1}`), and only the z and r
/// columns of `dU` read `h_{t−1}`: the candidate's read the auxiliary.
struct GRUResetBeforeCell: RecurrentCellExecutor {
    let activation: Activation
    let recurrentActivation: Activation

    var gates: Int { 3 }

    // MARK: Engine

    @inline(__always)
    func forward<S: BLASScalar>(_ step: ForwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units)
        // [z_z z_r] += h_{t−1} [B, H] · U[:, 0..<2H] [H, 2H]
        if step.hasPrevious { products.addStateProduct(step.previousForU, columns: 2 * H, into: step.gates) }
        let resetState = step.auxiliary!
        S.gruResetState(
            recurrentActivation: recurrentActivation, gates: step.gates, previousState: step.previousForU,
            resetState: resetState, rows: B, units: H)
        // z_h += (r ⊙ h_{t−1}) [B, H] · U[:, 2H..<3H] [H, H]
        if step.hasPrevious { products.addStateProduct(resetState, first: 2 * H, columns: H, into: step.gates + 2 * H) }
        S.gruCandidateAndBlend(
            activation: activation, gates: step.gates, previousState: step.previous, state: step.state,
            rows: B, units: H)
    }

    @inline(__always)
    func backward<S: BLASScalar>(_ step: BackwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units), GH = 3 * H
        let (dGates, sigma) = (step.inputGateGradient, recurrentActivation)
        S.gruBackwardCandidate(
            activation: activation, recurrentActivation: sigma, gates: step.gates, previousState: step.previous,
            upstream: step.upstream, carried: step.carried, gateGradient: dGates, direct: step.carriedOut, rows: B, units: H)
        // d(r ⊙ h_{t−1}) [B, H] = dz_h [B, H] · U_hᵀ [H, H]
        products.carry(dGates + 2 * H, lda: GH, first: 2 * H, columns: H, accumulate: false, into: step.resetStateGradient)
        if let mask = step.dropoutMask, let droppedState = step.droppedState {
            // Every term below is d loss / d (h_{t−1} ⊙ m): gathered apart, then × m into g.
            step.droppedGradient.update(repeating: 0, count: B * H)
            S.gruBackwardReset(
                recurrentActivation: sigma, gates: step.gates, previousState: droppedState,
                resetStateGradient: step.resetStateGradient, gateGradient: dGates, direct: step.droppedGradient,
                rows: B, units: H)
            if step.carriesBack {
                products.carry(dGates, lda: GH, first: 0, columns: 2 * H, accumulate: true, into: step.droppedGradient)
            }
            addElementwiseProduct(step.droppedGradient, mask, into: step.carriedOut, count: B * H)
        } else {
            S.gruBackwardReset(
                recurrentActivation: sigma, gates: step.gates, previousState: step.previous,
                resetStateGradient: step.resetStateGradient, gateGradient: dGates, direct: step.carriedOut,
                rows: B, units: H)
            if step.carriesBack {
                // g [B, H] += [dz_z dz_r] [B, 2H] · U[:, 0..<2H]ᵀ [2H, H]
                products.carry(dGates, lda: GH, first: 0, columns: 2 * H, accumulate: true, into: step.carriedOut)
            }
        }
    }

    /// Only the z and r columns of `U` meet `h_{t−1}`.
    func stateColumns(units: Int) -> Int { 2 * units }

    /// dU_h [H, H] = (r ⊙ H_prev)ᵀ [H, rows] · dz_h [rows, H]
    func finishRecurrentKernelGradient<S: BLASScalar>(_ step: WeightGradientStep<S>) {
        let H = step.units
        step.product(
            m: H, n: H, k: step.rows, a: step.auxiliary!, lda: H, b: step.gateGradient + 2 * H, ldb: 3 * H,
            c: step.recurrentKernelGradient + 2 * H, ldc: 3 * H)
    }

    // MARK: Reference

    func referenceForward<S: BLASScalar>(_ step: ReferenceForwardStep<S>) {
        let H = step.units, GH = 3 * H, U = step.recurrentKernel
        GRUReference.updateAndResetGates(step, recurrentActivation: recurrentActivation)
        for j in 0..<H {
            let r = step.gates[H + j]
            // h̃ = f(x·W_h + b_h + (r ⊙ h_{t−1}) · U_h)
            var sum = step.input[2 * H + j]
            for k in 0..<H { sum += step.gates[H + k] * step.previousForU[k] * U[k * GH + 2 * H + j] }
            step.auxiliary![j] = r * step.previousForU[j]
            step.gates[2 * H + j] = Reference.apply(activation, sum)
        }
        GRUReference.blend(step)
    }

    func referenceBackward<S: BLASScalar>(_ step: ReferenceBackwardStep<S>) {
        let H = step.units, GH = 3 * H, U = step.recurrentKernel, (dx, du, dReset) = (step.dx, step.du, step.scratch)
        GRUReference.updateAndCandidateGradients(step, activation: activation, recurrentActivation: recurrentActivation)
        // d(r ⊙ h_{t−1})_k = Σ_j dz_h[j] · U_h[k, j]
        for k in 0..<H {
            var sum: S = 0
            for j in 0..<H { sum += dx[2 * H + j] * U[k * GH + 2 * H + j] }
            dReset[k] = sum
        }
        for k in 0..<H {
            let r = step.gates[H + k]
            dx[H + k] = dReset[k] * step.previous[k] * step.keep(k) * Reference.derivative(recurrentActivation, output: r)
            step.direct[k] += dReset[k] * r * step.keep(k)
        }
        // The candidate's block of U sees r ⊙ h_{t−1}, not h_{t−1}: it is added here.
        for j in 0..<GH { du[j] = j < 2 * H ? dx[j] : 0 }
        for k in 0..<H {
            for j in 0..<H { step.recurrentKernelGradient[k * GH + 2 * H + j] += step.auxiliary![k] * dx[2 * H + j] }
        }
    }
}

// MARK: Elementwise steps

extension BLASScalar {
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
