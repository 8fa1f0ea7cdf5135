import CSmallKernels

/// Keras's `LSTM`: gates i, f, c̃, o (G = 4) in that order, one bias `[4H]`, state (h, c):
/// `c_t = σ(z_f) ⊙ c_{t−1} + σ(z_i) ⊙ f(z_c)`, `h_t = σ(z_o) ⊙ f(c_t)`. The tape's auxiliary is
/// `f(c_t)`.
///
/// Over 64 units with tanh and sigmoid, the product and the step run fused in registers on `U`
/// packed once per pass (`PackedRecurrence`); the step alone runs fused on vectors for `Float`
/// with tanh and sigmoid, and as plain loops otherwise.
struct LSTMCell: RecurrentCellExecutor {
    let activation: Activation
    let recurrentActivation: Activation

    var gates: Int { 4 }

    // MARK: Engine

    @inline(__always)
    func forward<S: BLASScalar>(_ step: ForwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units)
        if products.packed, PackedRecurrence.fusesStep(.lstm(activation: activation, recurrentActivation: recurrentActivation)) {
            // The product and the step in one pass over registers.
            PackedRecurrence.lstmStep(
                batch: B, units: H, packed: products.packedWeights, previousState: step.hasPrevious ? step.previousForU : nil,
                previousCell: step.previousCell, gates: step.gates, cell: step.cellState!, activatedCell: step.auxiliary!,
                state: step.state)
            return
        }
        // [z_i z_f z_c z_o] += h_{t−1} [B, H] · U [H, 4H]
        if step.hasPrevious { products.addStateProduct(step.previousForU, columns: 4 * H, into: step.gates) }
        S.lstmForwardStep(
            activation: activation, recurrentActivation: recurrentActivation, gates: step.gates,
            previousCell: step.previousCell, cell: step.cellState!, activatedCell: step.auxiliary!,
            state: step.state, rows: B, units: H)
    }

    @inline(__always)
    func backward<S: BLASScalar>(_ step: BackwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units)
        S.lstmBackwardStep(
            activation: activation, recurrentActivation: recurrentActivation, gates: step.gates,
            previousCell: step.previousCell, activatedCell: step.auxiliary!, upstream: step.upstream, carried: step.carried,
            cellGradient: step.carriedCell, hasLaterCell: step.hasLaterCell, gateGradient: step.inputGateGradient,
            rows: B, units: H)
        if step.carriesBack {
            // g [B, H] = dG_t [B, 4H] · Uᵀ [4H, H]   (× m under recurrent dropout)
            products.carry(step.inputGateGradient, lda: 4 * H, first: 0, columns: 4 * H, accumulate: false, into: step.carriedOut)
            if let mask = step.dropoutMask {
                S.combine(step.carriedOut, mask, into: step.carriedOut, count: B * H, multiply: true, scale: 1)
            }
        }
    }

    // MARK: Reference

    func referenceForward<S: BLASScalar>(_ step: ReferenceForwardStep<S>) {
        let H = step.units, (input, recurrent, gates) = (step.input, step.recurrent, step.gates)
        let (f, sigma) = (activation, recurrentActivation)
        for j in 0..<H {
            let i = Reference.apply(sigma, input[j] + recurrent[j])
            let forget = Reference.apply(sigma, input[H + j] + recurrent[H + j])
            let candidate = Reference.apply(f, input[2 * H + j] + recurrent[2 * H + j])
            let o = Reference.apply(sigma, input[3 * H + j] + recurrent[3 * H + j])
            let c = forget * step.previousCell[j] + i * candidate
            let activated = Reference.apply(f, c)
            gates[j] = i; gates[H + j] = forget; gates[2 * H + j] = candidate; gates[3 * H + j] = o
            step.cellState![j] = c
            step.auxiliary![j] = activated
            step.state[j] = o * activated
        }
    }

    func referenceBackward<S: BLASScalar>(_ step: ReferenceBackwardStep<S>) {
        let H = step.units, gates = step.gates, g = step.stateGradient, dx = step.dx, dc = step.cellGradient
        let (f, sigma) = (activation, recurrentActivation)
        for j in 0..<H {
            let (i, forget, candidate, o) = (gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j])
            let activated = step.auxiliary![j]
            let dcell = g[j] * o * Reference.derivative(f, output: activated) + dc[j]
            dx[j] = dcell * candidate * Reference.derivative(sigma, output: i)
            dx[H + j] = dcell * step.previousCell[j] * Reference.derivative(sigma, output: forget)
            dx[2 * H + j] = dcell * i * Reference.derivative(f, output: candidate)
            dx[3 * H + j] = g[j] * activated * Reference.derivative(sigma, output: o)
            dc[j] = dcell * forget
        }
        for j in 0..<(4 * H) { step.du[j] = dx[j] }
    }
}

// MARK: Elementwise steps

extension BLASScalar {
    /// LSTM forward step. On entry `gates [B, 4H]` holds the pre-activations `z_i z_f z_c z_o`;
    /// on return `i f c̃ o` after their activations, `cell = f ⊙ previousCell + i ⊙ c̃`,
    /// `activatedCell = activation(cell)`, `state = o ⊙ activatedCell`.
    @inline(__always)
    static func lstmForwardStep(
        activation: Activation, recurrentActivation: Activation, gates: UnsafeMutablePointer<Self>,
        previousCell: UnsafePointer<Self>, cell: UnsafeMutablePointer<Self>, activatedCell: UnsafeMutablePointer<Self>,
        state: UnsafeMutablePointer<Self>, rows: Int, units: Int
    ) {
        // Float with tanh and sigmoid: one pass over each row in C, on the one tanh.
        if usesFusedSteps(activation, recurrentActivation),
            rnnkit_lstm_step(
                rows, units, floats(gates), floats(previousCell), floats(cell), floats(activatedCell),
                floats(state)) != 0
        {
            return
        }
        let H = units, width = 4 * units
        activateInPlace(recurrentActivation, gates, rows: rows, columns: 2 * H, stride: width) // i, f
        activateInPlace(activation, gates + 2 * H, rows: rows, columns: H, stride: width) // c̃
        activateInPlace(recurrentActivation, gates + 3 * H, rows: rows, columns: H, stride: width) // o
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
}

extension Float {
    /// `lstmBackwardStep` for tanh and sigmoid.
    static func fusedLSTMBackwardStep(
        gates: UnsafePointer<Float>, previousCell: UnsafePointer<Float>, activatedCell: UnsafePointer<Float>,
        upstream: UnsafePointer<Float>?, carried: UnsafePointer<Float>?, cellGradient: UnsafeMutablePointer<Float>,
        hasLaterCell: Bool, gateGradient: UnsafeMutablePointer<Float>, rows: Int, units H: Int
    ) {
        // In C on 16 (AVX-512) or 8 (AVX2) lanes, where the small kernels run on either.
        if rnnkit_lstm_backward_step(
            rows, H, gates, previousCell, activatedCell, upstream, carried, cellGradient,
            hasLaterCell ? 1 : 0, gateGradient) != 0
        {
            return
        }
        for b in 0..<rows {
            let g = gates + b * 4 * H, dg = gateGradient + b * 4 * H, k = b * H
            Lanes.forEachGroup(H) { j, n in
                var dh = Lanes.V(repeating: 0)
                if let upstream { dh += Lanes.load(upstream + k + j, n) }
                if let carried { dh += Lanes.load(carried + k + j, n) }
                let i = Lanes.load(g + j, n), f = Lanes.load(g + H + j, n), candidate = Lanes.load(g + 2 * H + j, n),
                    o = Lanes.load(g + 3 * H + j, n)
                let a = Lanes.load(activatedCell + k + j, n)
                var dc = dh * o * (1 - a * a)
                if hasLaterCell { dc += Lanes.load(cellGradient + k + j, n) }
                Lanes.store(dc * candidate * i * (1 - i), dg + j, n)
                Lanes.store(dc * Lanes.load(previousCell + k + j, n) * f * (1 - f), dg + H + j, n)
                Lanes.store(dc * i * (1 - candidate * candidate), dg + 2 * H + j, n)
                Lanes.store(dh * a * o * (1 - o), dg + 3 * H + j, n)
                Lanes.store(dc * f, cellGradient + k + j, n)
            }
        }
    }
}
