/// The reference's forward pass: for every step and every sample, the projections written out as
/// sums, then the cell's reference step. Masked steps carry the state over; nothing is batched.
struct ReferenceForwardPass<S: BLASScalar>: CellPass {
    let kind: RecurrentCell
    let dimensions: RNNDimensions
    let x: UnsafePointer<S>
    let weights: RecurrentWeights<S>
    let mask: UnsafePointer<UInt8>?
    let initialState: RecurrentState<S>?
    let tape: RecurrentTape<S>
    let workspace: UnsafeMutablePointer<S>

    func run<Cell: RecurrentCellExecutor>(_ cell: Cell) {
        let (B, T, D, H) = (dimensions.batch, dimensions.steps, dimensions.inputs, dimensions.units)
        let GH = cell.gates * H
        let (W, U, bias) = (weights.kernel, weights.recurrentKernel, weights.bias)
        // Per sample: `input[j] = b_j + Σ_i x_i · W[i, j]`, `recurrent[j] = (b′_j) + Σ_k h_{t−1, k} · U[k, j]`.
        let input = workspace, recurrent = workspace + GH, zeros = workspace + 2 * GH
        zeros.update(repeating: 0, count: H)
        for t in 0..<T {
            for b in 0..<B {
                let row = t * B + b, xt = x + row * D
                let previous = referencePreviousState(t, b, tape: tape, initialState: initialState, dimensions: dimensions, zeros: zeros)
                // Recurrent dropout: what meets U is h_{t−1} ⊙ m (the blend and masked steps read h_{t−1}).
                var previousForU = previous.state
                if let dropout = tape.recurrentDropout {
                    for k in 0..<H { dropout.droppedStates[row * H + k] = previous.state[k] * dropout.mask[b * H + k] }
                    previousForU = UnsafePointer(dropout.droppedStates + row * H)
                }
                if let mask, mask[row] == 0 {
                    // A masked step: the state (and the cell state) carried over unchanged.
                    (tape.gates + row * GH).update(repeating: 0, count: GH)
                    (tape.states + row * H).update(from: previous.state, count: H)
                    tape.cellStates.map { ($0 + row * H).update(from: previous.cell, count: H) }
                    continue
                }
                for j in 0..<GH {
                    var sum = bias[j]
                    for i in 0..<D { sum += xt[i] * W[i * GH + j] }
                    input[j] = sum
                    var r: S = kind.hasRecurrentBias ? bias[GH + j] : 0
                    for k in 0..<H { r += previousForU[k] * U[k * GH + j] }
                    recurrent[j] = r
                }
                cell.referenceForward(
                    ReferenceForwardStep(
                        units: H, input: input, recurrent: recurrent, previous: previous.state, previousForU: previousForU,
                        previousCell: previous.cell, recurrentKernel: U, gates: tape.gates + row * GH, state: tape.states + row * H,
                        cellState: tape.cellStates.map { $0 + row * H }, auxiliary: tape.auxiliary.map { $0 + row * H }))
            }
        }
    }
}

/// Sample b's `h_{t−1}` and `c_{t−1}` in a tape (the initial state's, or zeros, at t = 0).
@inline(__always)
func referencePreviousState<S: BLASScalar>(
    _ t: Int, _ b: Int, tape: RecurrentTape<S>, initialState: RecurrentState<S>?, dimensions: RNNDimensions,
    zeros: UnsafeMutablePointer<S>
) -> (state: UnsafePointer<S>, cell: UnsafePointer<S>) {
    let (B, H) = (dimensions.batch, dimensions.units)
    guard t > 0 else {
        return (initialState.map { $0.h + b * H } ?? UnsafePointer(zeros), initialState?.c.map { $0 + b * H } ?? UnsafePointer(zeros))
    }
    let row = (t - 1) * B + b
    return (UnsafePointer(tape.states + row * H), tape.cellStates.map { UnsafePointer($0 + row * H) } ?? UnsafePointer(zeros))
}

/// The reference's backward pass: for every step from the last and every sample, the cell's
/// reference step, then every weight's gradient accumulated as sums and the gradient carried to
/// `h_{t−1}` through `U` written out.
struct ReferenceBackwardPass<S: BLASScalar>: CellPass {
    let kind: RecurrentCell
    let dimensions: RNNDimensions
    let x: UnsafePointer<S>
    let weights: RecurrentWeights<S>
    let mask: UnsafePointer<UInt8>?
    let initialState: RecurrentState<S>?
    let tape: RecurrentTape<S>
    let stateGradient: UnsafePointer<S>
    let sequenceGradient: Bool
    let finalCellGradient: UnsafePointer<S>?
    let gradients: RecurrentGradients<S>
    let inputGradient: UnsafeMutablePointer<S>?
    let initialStateGradient: RecurrentStateGradient<S>?
    let workspace: UnsafeMutablePointer<S>

    func run<Cell: RecurrentCellExecutor>(_ cell: Cell) {
        let (B, T, D, H) = (dimensions.batch, dimensions.steps, dimensions.inputs, dimensions.units)
        let GH = cell.gates * H
        gradients.kernel.update(repeating: 0, count: D * GH)
        gradients.recurrentKernel.update(repeating: 0, count: H * GH)
        gradients.bias.update(repeating: 0, count: kind.biasShape(units: H).reduce(1, *))
        inputGradient?.update(repeating: 0, count: T * B * D)
        // dh [B, H]: d loss / d h_t for the step being processed; dc [B, H]: d loss / d c_t (LSTM).
        let dh = workspace, dc = workspace + B * H
        for i in 0..<(B * H) {
            dh[i] = sequenceGradient ? stateGradient[(T - 1) * B * H + i] : stateGradient[i]
            dc[i] = finalCellGradient?[i] ?? 0
        }
        for t in stride(from: T - 1, through: 0, by: -1) {
            for b in 0..<B { sampleStep(t, b, cell) }
        }
    }

    private func sampleStep<Cell: RecurrentCellExecutor>(_ t: Int, _ b: Int, _ cell: Cell) {
        let (B, D, H) = (dimensions.batch, dimensions.inputs, dimensions.units)
        let GH = cell.gates * H, row = t * B + b
        let (W, U) = (weights.kernel, weights.recurrentKernel)
        let dh = workspace, dc = workspace + B * H
        // Per sample: d loss / d the gates' pre-activations, as they enter x·W (dx) and h·U (du).
        let dx = workspace + 2 * B * H, du = dx + GH, scratch = du + GH, direct = scratch + H, zeros = direct + H
        zeros.update(repeating: 0, count: H)
        let g = dh + b * H
        if let mask, mask[row] == 0 {
            passOnMasked(t, b, g: g, dc: dc + b * H)
            return
        }
        let previous = referencePreviousState(t, b, tape: tape, initialState: initialState, dimensions: dimensions, zeros: zeros)
        // Recurrent dropout's mask, by which what reaches h_{t−1} through U is multiplied.
        let step = ReferenceBackwardStep(
            units: H, gates: tape.gates + row * GH, state: tape.states + row * H, previous: previous.state,
            previousCell: previous.cell, auxiliary: tape.auxiliary.map { UnsafePointer($0 + row * H) },
            keep: tape.recurrentDropout.map { $0.mask + b * H }, recurrentKernel: U, stateGradient: g,
            cellGradient: dc + b * H, dx: dx, du: du, direct: direct, scratch: scratch,
            recurrentKernelGradient: gradients.recurrentKernel)
        // `direct[k]`: the part of d loss / d h_{t−1} that does not pass through U.
        direct.update(repeating: 0, count: H)
        cell.referenceBackward(step)
        // Accumulate the weights' gradients and d loss / d x_t.
        for j in 0..<GH {
            gradients.bias[j] += dx[j]
            if kind.hasRecurrentBias { gradients.bias[GH + j] += du[j] }
            for i in 0..<D { gradients.kernel[i * GH + j] += x[row * D + i] * dx[j] }
            for k in 0..<H { gradients.recurrentKernel[k * GH + j] += previous.state[k] * step.keep(k) * du[j] }
        }
        if let inputGradient {
            for i in 0..<D {
                var sum: S = 0
                for j in 0..<GH { sum += dx[j] * W[i * GH + j] }
                inputGradient[row * D + i] = sum
            }
        }
        guard t > 0 || initialStateGradient != nil else { return }
        // d loss / d h_{t−1} = direct + (du · Uᵀ) ⊙ m (+ the loss's own gradient at t − 1 for sequences)
        for k in 0..<H {
            var throughU: S = 0
            for j in 0..<GH { throughU += du[j] * U[k * GH + j] }
            g[k] = direct[k] + (t > 0 && sequenceGradient ? stateGradient[((t - 1) * B + b) * H + k] : 0) + throughU * step.keep(k)
        }
        if t == 0 { writeInitialStateGradient(b, g: g, dc: dc + b * H) }
    }

    /// h_t = h_{t−1} (and c_t = c_{t−1}): their gradients pass to the step before as they are.
    private func passOnMasked(_ t: Int, _ b: Int, g: UnsafeMutablePointer<S>, dc: UnsafeMutablePointer<S>) {
        let (B, H) = (dimensions.batch, dimensions.units)
        if t > 0, sequenceGradient {
            for k in 0..<H { g[k] += stateGradient[((t - 1) * B + b) * H + k] }
        }
        if t == 0 { writeInitialStateGradient(b, g: g, dc: dc) }
    }

    private func writeInitialStateGradient(_ b: Int, g: UnsafeMutablePointer<S>, dc: UnsafeMutablePointer<S>) {
        guard let initialStateGradient else { return }
        let H = dimensions.units
        for k in 0..<H {
            initialStateGradient.h[b * H + k] = g[k]
            initialStateGradient.c?[b * H + k] = dc[k]
        }
    }
}
