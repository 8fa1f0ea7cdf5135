import CSmallKernels

/// Keras's `GRU` with `reset_after=True` (its default): gates z, r, h̃ (G = 3), bias `[2, 3H]`
/// (input row, recurrent row), `h̃ = f(x·W_h + b_h + r ⊙ (h_{t−1}·U_h + b′_h))`,
/// `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`. The tape's auxiliary is `h_{t−1}·U_h + b′_h`, which the
/// reset gate's gradient needs.
///
/// The recurrent side has its own bias and its candidate block is scaled by r, so its gate
/// gradients differ from the input side's: the driver keeps both. Over 64 units with tanh and
/// sigmoid, the product and the step run fused on `U` packed once per pass.
struct GRUResetAfterCell: RecurrentCellExecutor {
    let activation: Activation
    let recurrentActivation: Activation

    var gates: Int { 3 }

    // MARK: Engine

    @inline(__always)
    func forward<S: BLASScalar>(_ step: ForwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units), GH = 3 * H
        let recurrentBias = products.bias + GH
        if products.packed,
            PackedRecurrence.fusesStep(.gru(activation: activation, recurrentActivation: recurrentActivation, resetAfter: true))
        {
            // The product (from the recurrent bias) and the step in one pass over registers.
            PackedRecurrence.gruStep(
                batch: B, units: H, packed: products.packedWeights, recurrentBias: recurrentBias,
                previousForProduct: step.hasPrevious ? step.previousForU : nil, previousState: step.previous, gates: step.gates,
                auxiliary: step.auxiliary!, state: step.state)
            return
        }
        // u [B, 3H] = b′ (broadcast) + h_{t−1} [B, H] · U [H, 3H]
        S.broadcastRows(recurrentBias, into: products.projection, rows: B, columns: GH)
        if step.hasPrevious { products.addStateProduct(step.previousForU, columns: GH, into: products.projection) }
        S.gruForwardStepResetAfter(
            activation: activation, recurrentActivation: recurrentActivation, gates: step.gates, recurrent: products.projection,
            previousState: step.previous, auxiliary: step.auxiliary!, state: step.state, rows: B, units: H)
    }

    @inline(__always)
    func backward<S: BLASScalar>(_ step: BackwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units), GH = 3 * H
        S.gruBackwardStepResetAfter(
            activation: activation, recurrentActivation: recurrentActivation, gates: step.gates, auxiliary: step.auxiliary!,
            previousState: step.previous, upstream: step.upstream, carried: step.carried,
            inputGateGradient: step.inputGateGradient, recurrentGateGradient: step.recurrentGateGradient,
            direct: step.carriedOut, rows: B, units: H)
        guard step.carriesBack else { return }
        // g [B, H] = dh ⊙ z + dU_t [B, 3H] · Uᵀ [3H, H]   (the product × m under recurrent dropout)
        if let mask = step.dropoutMask {
            products.carry(step.recurrentGateGradient, lda: GH, first: 0, columns: GH, accumulate: false, into: step.droppedGradient)
            addElementwiseProduct(step.droppedGradient, mask, into: step.carriedOut, count: B * H)
        } else {
            products.carry(step.recurrentGateGradient, lda: GH, first: 0, columns: GH, accumulate: true, into: step.carriedOut)
        }
    }

    // MARK: Reference

    func referenceForward<S: BLASScalar>(_ step: ReferenceForwardStep<S>) {
        let H = step.units
        GRUReference.updateAndResetGates(step, recurrentActivation: recurrentActivation)
        for j in 0..<H {
            let r = step.gates[H + j]
            step.auxiliary![j] = step.recurrent[2 * H + j]
            step.gates[2 * H + j] = Reference.apply(activation, step.input[2 * H + j] + r * step.recurrent[2 * H + j])
        }
        GRUReference.blend(step)
    }

    func referenceBackward<S: BLASScalar>(_ step: ReferenceBackwardStep<S>) {
        let H = step.units, (dx, du, gates) = (step.dx, step.du, step.gates)
        GRUReference.updateAndCandidateGradients(step, activation: activation, recurrentActivation: recurrentActivation)
        for j in 0..<H {
            let r = gates[H + j]
            dx[H + j] = dx[2 * H + j] * step.auxiliary![j] * Reference.derivative(recurrentActivation, output: r)
        }
        for j in 0..<(3 * H) { du[j] = dx[j] }
        for j in 0..<H { du[2 * H + j] = dx[2 * H + j] * gates[H + j] }
    }
}

/// The reference's steps both GRU variants share.
enum GRUReference {
    /// z and r from their pre-activations.
    static func updateAndResetGates<S: BLASScalar>(_ step: ReferenceForwardStep<S>, recurrentActivation sigma: Activation) {
        let H = step.units, (input, recurrent, gates) = (step.input, step.recurrent, step.gates)
        for j in 0..<H {
            gates[j] = Reference.apply(sigma, input[j] + recurrent[j])
            gates[H + j] = Reference.apply(sigma, input[H + j] + recurrent[H + j])
        }
    }

    /// `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`.
    static func blend<S: BLASScalar>(_ step: ReferenceForwardStep<S>) {
        for j in 0..<step.units {
            let z = step.gates[j]
            step.state[j] = z * step.previous[j] + (1 - z) * step.gates[2 * step.units + j]
        }
    }

    /// The z and candidate blocks of `dx`, and `direct = dh ⊙ z`.
    static func updateAndCandidateGradients<S: BLASScalar>(
        _ step: ReferenceBackwardStep<S>, activation f: Activation, recurrentActivation sigma: Activation
    ) {
        let H = step.units, g = step.stateGradient
        for j in 0..<H {
            let (z, candidate) = (step.gates[j], step.gates[2 * H + j])
            step.dx[j] = g[j] * (step.previous[j] - candidate) * Reference.derivative(sigma, output: z)
            step.dx[2 * H + j] = g[j] * (1 - z) * Reference.derivative(f, output: candidate)
            step.direct[j] = g[j] * z
        }
    }
}

// MARK: Elementwise steps

extension BLASScalar {
    /// GRU (reset after) forward step. On entry `gates [B, 3H]` holds the input projections
    /// `x·W + b` and `recurrent [B, 3H]` holds `h_{t−1}·U + b′`; on return `gates` holds z, r, h̃,
    /// `auxiliary` the recurrent candidate part `h_{t−1}·U_h + b′_h`, and `state` the new h.
    @inline(__always)
    static func gruForwardStepResetAfter(
        activation: Activation, recurrentActivation: Activation, gates: UnsafeMutablePointer<Self>,
        recurrent: UnsafePointer<Self>, previousState: UnsafePointer<Self>, auxiliary: UnsafeMutablePointer<Self>,
        state: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        // Float with tanh and sigmoid: one pass over each row in C, on the one tanh.
        if usesFusedSteps(activation, recurrentActivation),
            rnnkit_gru_step(
                rows, units, floats(gates), floats(recurrent), floats(previousState), floats(auxiliary),
                floats(state)) != 0
        {
            return
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
}

extension Float {
    /// `gruBackwardStepResetAfter` for tanh and sigmoid.
    static func fusedGRUBackwardStepResetAfter(
        gates: UnsafePointer<Float>, auxiliary: UnsafePointer<Float>, previousState: UnsafePointer<Float>,
        upstream: UnsafePointer<Float>?, carried: UnsafePointer<Float>?,
        inputGateGradient: UnsafeMutablePointer<Float>, recurrentGateGradient: UnsafeMutablePointer<Float>,
        direct: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        for b in 0..<rows {
            let g = gates + b * 3 * H, dx = inputGateGradient + b * 3 * H, du = recurrentGateGradient + b * 3 * H, k = b * H
            Lanes.forEachGroup(H) { j, n in
                var dh = Lanes.V(repeating: 0)
                if let upstream { dh += Lanes.load(upstream + k + j, n) }
                if let carried { dh += Lanes.load(carried + k + j, n) }
                let z = Lanes.load(g + j, n), r = Lanes.load(g + H + j, n), candidate = Lanes.load(g + 2 * H + j, n)
                let dCandidate = dh * (1 - z) * (1 - candidate * candidate)
                let dz = dh * (Lanes.load(previousState + k + j, n) - candidate) * z * (1 - z)
                let dr = dCandidate * Lanes.load(auxiliary + k + j, n) * r * (1 - r)
                Lanes.store(dz, dx + j, n); Lanes.store(dr, dx + H + j, n); Lanes.store(dCandidate, dx + 2 * H + j, n)
                Lanes.store(dz, du + j, n); Lanes.store(dr, du + H + j, n); Lanes.store(dCandidate * r, du + 2 * H + j, n)
                Lanes.store(dh * z, direct + k + j, n)
            }
        }
    }
}
