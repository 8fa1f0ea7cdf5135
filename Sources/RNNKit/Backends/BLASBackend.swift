/// The engine: every pass as OpenBLAS GEMM calls over time-major buffers, one driver for every
/// cell kind.
///
/// Forward: one GEMM projects all `T·B` input rows for every gate at once (`[T·B, D]·[D, G·H]`);
/// then per step one `[B, H]·[H, G·H]` GEMM adds the recurrence (GRU without reset-after needs a
/// second, `[B, H]·[H, H]`, because its reset gate scales the state before the product), and the
/// cell's elementwise step follows. Backward: per step the cell's elementwise step gives the gate
/// gradients and one GEMM carries the gradient back through `U`; then one GEMM each for `dW`,
/// `dU` and `dX` over all steps. Nothing allocates.
///
/// Products too small for OpenBLAS to run well (a small model's per-step recurrence, its narrow
/// projections) go to `SmallGEMM`'s SIMD kernels instead, chosen per call by size (`kernels:
/// .auto`, the default); `.blas` sends every product to OpenBLAS, as a baseline to measure against.
public struct BLASBackend: Backend {
    /// Which code multiplies the matrices.
    public enum Kernels: String, Sendable, CaseIterable {
        /// Small products in `SmallGEMM`, the rest in OpenBLAS.
        case auto
        /// Every product in OpenBLAS.
        case blas
    }

    public let kernels: Kernels

    public init(kernels: Kernels = .auto) {
        BLASConfiguration.prepare()
        self.kernels = kernels
    }

    public var name: String { kernels == .auto ? "blas" : "blas (OpenBLAS only)" }

    /// Every product of the engine: to `SmallGEMM` when small enough (in `.auto`), else OpenBLAS.
    @inline(__always)
    private func gemm<S: BLASScalar>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: S, a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int,
        beta: S, c: UnsafeMutablePointer<S>, ldc: Int
    ) {
        if kernels == .auto, SmallGEMM.suits(n: n, k: k, m: m, transposeB: transposeB) {
            S.smallGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                           a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            S.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                   a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// The workspace's regions for one cell and batch size.
    private struct Workspace<S: BLASScalar> {
        /// `[B, H]` of zeros: `h_0` and `c_0`.
        let zeros: UnsafeMutablePointer<S>
        /// `[B, G·H]`: GRU (reset after)'s per-step recurrent projection.
        let projection: UnsafeMutablePointer<S>
        /// `[T, B, G·H]`: d loss / d gate pre-activations, input side.
        let inputGateGradient: UnsafeMutablePointer<S>
        /// `[T, B, G·H]`: the recurrent side, which differs only for GRU (reset after).
        let recurrentGateGradient: UnsafeMutablePointer<S>
        /// `[B, H]` each: the gradient carried to h_{t−1}, to c_{t−1} (LSTM), and to r ⊙ h_{t−1} (GRU reset before).
        let carried: UnsafeMutablePointer<S>, carriedCell: UnsafeMutablePointer<S>, resetState: UnsafeMutablePointer<S>
        /// Masking: what masked samples pass to the step before (d h, d c).
        let passedState: UnsafeMutablePointer<S>, passedCell: UnsafeMutablePointer<S>
        /// Recurrent dropout: d loss / d (h_{t−1} ⊙ m), before the mask takes it to h_{t−1}.
        let droppedGradient: UnsafeMutablePointer<S>
        /// `[G·H, H]`: `Uᵀ`, written once per backward pass when the per-step products are small,
        /// so that each step's `dG·Uᵀ` reads it in place instead of transposing `U` again.
        let transposedRecurrentKernel: UnsafeMutablePointer<S>
        /// `U` packed once per pass for `PackedRecurrence` (layers over 64 units; empty otherwise).
        let packedWeights: UnsafeMutablePointer<S>

        static func count(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
            let state = d.batch * d.units, gates = cell.gates * state
            // Only GRU with reset-after has a recurrent side that differs (its own bias, and r in
            // the candidate block), so only it needs a second gradient buffer.
            return 7 * state + gates + d.steps * gates * (cell.hasRecurrentBias ? 2 : 1) + transposedKernelCount(cell, d)
                + PackedRecurrence.workspaceCount(cell, d)
        }

        /// Room for `Uᵀ` only where the small kernels can take the per-step products (H ≤ 64):
        /// a 512-unit LSTM would otherwise carry 4 MB it never uses.
        static func transposedKernelCount(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
            d.units <= SmallGEMM.widestColumns ? cell.gates * d.units * d.units : 0
        }

        init(_ cell: RecurrentCell, _ d: RNNDimensions, _ memory: UnsafeMutablePointer<S>) {
            let state = d.batch * d.units, gates = cell.gates * state
            zeros = memory
            carried = memory + state
            carriedCell = memory + 2 * state
            resetState = memory + 3 * state
            passedState = memory + 4 * state
            passedCell = memory + 5 * state
            droppedGradient = memory + 6 * state
            projection = memory + 7 * state
            inputGateGradient = projection + gates
            recurrentGateGradient = cell.hasRecurrentBias ? inputGateGradient + d.steps * gates : inputGateGradient
            transposedRecurrentKernel = inputGateGradient + d.steps * gates * (cell.hasRecurrentBias ? 2 : 1)
            packedWeights = transposedRecurrentKernel + Self.transposedKernelCount(cell, d)
        }
    }

    public func recurrentWorkspaceCount(_ cell: RecurrentCell, _ dims: RNNDimensions) -> Int {
        Workspace<Float>.count(cell, dims)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentForward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, workspace: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        let G = cell.gates, GH = G * H, stepState = B * H, stepGates = B * GH
        let w = Workspace(cell, d, workspace)
        w.zeros.update(repeating: 0, count: stepState)
        let U = weights.recurrentKernel
        // h_0 and c_0: zero unless given; given, the first step's recurrent products are not skipped.
        let initialH = initialState?.h ?? UnsafePointer(w.zeros), initialC = initialState?.c ?? UnsafePointer(w.zeros)
        let fromStart = initialState != nil
        // Steps where every sample is masked (padding after the longest sequence, say) do no work.
        let active = Self.activeSteps(mask, steps: T, batch: B)
        // Gates [T·B, G·H] = b (broadcast; GRU reset-after: the input row) + X [T·B, D] · W [D, G·H],
        // over the rows of the steps from the first to the last with an unmasked sample.
        if !active.isEmpty {
            let first = active.lowerBound, rows = active.count * B
            S.broadcastRows(weights.bias, into: tape.gates + first * stepGates, rows: rows, columns: GH)
            // Large gated layers: W packed (into the room U takes after) for RNNKit's product, which
            // runs this short-k shape faster than OpenBLAS.
            if PackedRecurrence.applies(S.self, cell, units: H, kernels: kernels),
               PackedRecurrence.packInputKernel(inputs: D, columns: GH, kernel: weights.kernel, into: w.packedWeights) {
                PackedRecurrence.product(rows: rows, columns: GH, depth: D, a: x + first * B * D, lda: D, packed: w.packedWeights,
                                         panelDepth: D, accumulate: true, c: tape.gates + first * stepGates, ldc: GH)
            } else {
                gemm(transposeA: false, transposeB: false, m: rows, n: GH, k: D,
                       alpha: 1, a: x + first * B * D, lda: D, b: weights.kernel, ldb: GH, beta: 1, c: tape.gates + first * stepGates, ldc: GH)
            }
        }
        // A small tanh SimpleRNN (the notebook's models) runs its whole recurrence in one call, U packed once.
        if Self.fusesTanhRecurrence(cell, d, mask: mask, tape: tape, kernels: kernels),
           S.tanhRecurrence(steps: T, batch: B, units: H, gates: tape.gates, recurrentKernel: U, initialState: initialState?.h) {
            return
        }
        // Large gated layers: U packed once here, each step's product (and LSTM's step) fused.
        let packed = PackedRecurrence.applies(S.self, cell, units: H, kernels: kernels)
            && PackedRecurrence.packForward(cell, units: H, recurrentKernel: U, into: w.packedWeights)
        let dropout = tape.recurrentDropout
        for t in 0..<T {
            // Recurrent dropout: the products with U read h_{t−1} ⊙ m, kept for dU.
            let previousForU: UnsafePointer<S>
            if let dropout {
                let dropped = dropout.droppedStates + t * stepState
                S.combine(t == 0 ? initialH : UnsafePointer(tape.states + (t - 1) * stepState), dropout.mask,
                          into: dropped, count: stepState, multiply: true, scale: 1)
                previousForU = UnsafePointer(dropped)
            } else {
                previousForU = t == 0 ? initialH : UnsafePointer(tape.states + (t - 1) * stepState)
            }
            if let mask, Self.everySampleMasked(mask + t * B, batch: B) {
                // The whole step masked: every state (and cell state) carried over.
                let previous = t == 0 ? initialH : UnsafePointer(tape.states + (t - 1) * stepState)
                (tape.states + t * stepState).update(from: previous, count: stepState)
                if let cells = tape.cellStates {
                    (cells + t * stepState).update(from: t == 0 ? initialC : UnsafePointer(cells + (t - 1) * stepState), count: stepState)
                }
                continue
            }
            let gates = tape.gates + t * stepGates
            let previous = t == 0 ? initialH : UnsafePointer(tape.states + (t - 1) * stepState)
            let state = tape.states + t * stepState
            switch cell {
            case .simple(let f):
                // z_t += h_{t−1} [B, H] · U [H, H]   (h_0 = 0 adds nothing), then f; for a small
                // tanh layer in one pass, the activation applied before the product leaves registers.
                if t > 0 || fromStart, f == .tanh, kernels == .auto, SmallGEMM.suits(n: H, k: H, m: B, transposeB: false),
                   S.smallGEMMTanh(m: B, n: H, k: H, a: previousForU, lda: H, b: U, ldb: H, c: gates, ldc: H) {
                    break
                }
                if t > 0 || fromStart {
                    gemm(transposeA: false, transposeB: false, m: B, n: H, k: H,
                           alpha: 1, a: previousForU, lda: H, b: U, ldb: H, beta: 1, c: gates, ldc: H)
                }
                S.activateInPlace(f, gates, rows: B, columns: H)
            case .lstm(let f, let sigma):
                let cells = tape.cellStates!
                if packed, PackedRecurrence.fusesStep(cell) {
                    // The product and the step in one pass over registers.
                    PackedRecurrence.lstmStep(
                        batch: B, units: H, packed: w.packedWeights, previousState: t > 0 || fromStart ? previousForU : nil,
                        previousCell: t == 0 ? initialC : UnsafePointer(cells + (t - 1) * stepState), gates: gates,
                        cell: cells + t * stepState, activatedCell: tape.auxiliary! + t * stepState, state: state)
                    break
                }
                // [z_i z_f z_c z_o] += h_{t−1} [B, H] · U [H, 4H]
                if packed, t > 0 || fromStart {
                    PackedRecurrence.product(rows: B, columns: GH, depth: H, a: previousForU, lda: H, packed: w.packedWeights,
                                             panelDepth: H, accumulate: true, c: gates, ldc: GH)
                } else if t > 0 || fromStart {
                    gemm(transposeA: false, transposeB: false, m: B, n: GH, k: H,
                           alpha: 1, a: previousForU, lda: H, b: U, ldb: GH, beta: 1, c: gates, ldc: GH)
                }
                S.lstmForwardStep(
                    activation: f, recurrentActivation: sigma, gates: gates,
                    previousCell: t == 0 ? initialC : UnsafePointer(cells + (t - 1) * stepState),
                    cell: cells + t * stepState, activatedCell: tape.auxiliary! + t * stepState,
                    state: state, rows: B, units: H)
            case .gru(let f, let sigma, true):
                // u [B, 3H] = b′ (broadcast) + h_{t−1} [B, H] · U [H, 3H]
                if packed, PackedRecurrence.fusesStep(cell) {
                    // The product (from the recurrent bias) and the step in one pass over registers.
                    PackedRecurrence.gruStep(
                        batch: B, units: H, packed: w.packedWeights, recurrentBias: weights.bias + GH,
                        previousForProduct: t > 0 || fromStart ? previousForU : nil, previousState: previous, gates: gates,
                        auxiliary: tape.auxiliary! + t * stepState, state: state)
                    break
                }
                S.broadcastRows(weights.bias + GH, into: w.projection, rows: B, columns: GH)
                if packed, t > 0 || fromStart {
                    PackedRecurrence.product(rows: B, columns: GH, depth: H, a: previousForU, lda: H, packed: w.packedWeights,
                                             panelDepth: H, accumulate: true, c: w.projection, ldc: GH)
                } else if t > 0 || fromStart {
                    gemm(transposeA: false, transposeB: false, m: B, n: GH, k: H,
                           alpha: 1, a: previousForU, lda: H, b: U, ldb: GH, beta: 1, c: w.projection, ldc: GH)
                }
                S.gruForwardStepResetAfter(
                    activation: f, recurrentActivation: sigma, gates: gates, recurrent: w.projection,
                    previousState: previous, auxiliary: tape.auxiliary! + t * stepState, state: state, rows: B, units: H)
            case .gru(let f, let sigma, false):
                // [z_z z_r] += h_{t−1} [B, H] · U[:, 0..<2H] [H, 2H]
                if t > 0 || fromStart {
                    gemm(transposeA: false, transposeB: false, m: B, n: 2 * H, k: H,
                           alpha: 1, a: previousForU, lda: H, b: U, ldb: GH, beta: 1, c: gates, ldc: GH)
                }
                let resetState = tape.auxiliary! + t * stepState
                S.gruResetState(recurrentActivation: sigma, gates: gates, previousState: previousForU,
                                resetState: resetState, rows: B, units: H)
                // z_h += (r ⊙ h_{t−1}) [B, H] · U[:, 2H..<3H] [H, H]
                if t > 0 || fromStart {
                    gemm(transposeA: false, transposeB: false, m: B, n: H, k: H,
                           alpha: 1, a: resetState, lda: H, b: U + 2 * H, ldb: GH, beta: 1, c: gates + 2 * H, ldc: GH)
                }
                S.gruCandidateAndBlend(activation: f, gates: gates, previousState: previous, state: state, rows: B, units: H)
            }
            if let mask {
                // Masked samples keep the state (and LSTM's cell state) of the step before.
                let stepMask = mask + t * B
                for b in 0..<B where stepMask[b] == 0 {
                    (state + b * H).update(from: previous + b * H, count: H)
                    if let cells = tape.cellStates {
                        let previousCell = t == 0 ? initialC : UnsafePointer(cells + (t - 1) * stepState)
                        (cells + t * stepState + b * H).update(from: previousCell + b * H, count: H)
                    }
                }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentBackward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, stateGradient: UnsafePointer<S>,
        sequenceGradient: Bool, finalCellGradient: UnsafePointer<S>?, gradients: RecurrentGradients<S>,
        inputGradient: UnsafeMutablePointer<S>?, initialStateGradient: RecurrentStateGradient<S>?, workspace: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        let G = cell.gates, GH = G * H, stepState = B * H, stepGates = B * GH
        let w = Workspace(cell, d, workspace)
        w.zeros.update(repeating: 0, count: stepState)
        let U = weights.recurrentKernel
        let initialH = initialState?.h ?? UnsafePointer(w.zeros), initialC = initialState?.c ?? UnsafePointer(w.zeros)
        // d loss / d c_T from outside (an LSTM whose final state starts another layer) enters as a later cell's.
        if let finalCellGradient { w.carriedCell.update(from: finalCellGradient, count: stepState) }
        func hasLaterCell(_ t: Int) -> Bool { t < T - 1 || finalCellGradient != nil }
        // With d loss / d h_0 wanted, the first step's gradient is carried through U too.
        let toStart = initialStateGradient != nil
        // A small tanh SimpleRNN: the whole backward recurrence in one call, as its forward pass.
        let fused = Self.fusesTanhRecurrence(cell, d, mask: mask, tape: tape, kernels: kernels)
            && S.tanhRecurrenceBackward(steps: T, batch: B, units: H, states: tape.states, upstream: stateGradient,
                                        sequence: sequenceGradient, recurrentKernel: U, gateGradient: w.inputGateGradient,
                                        carried: w.carried, toStart: toStart)
        if !fused {
            // Per step, c [B, H] = a [B, columns] · U[:, first..<first + columns]ᵀ (+ c with `accumulate`):
            // from Uᵀ, transposed once here, when the small kernels take these products.
            let transposeOnce = kernels == .auto && SmallGEMM.suits(n: H, k: GH, m: B, transposeB: false)
                && Workspace<S>.transposedKernelCount(cell, d) > 0
            if transposeOnce {
                for row in 0..<H {
                    for column in 0..<GH { w.transposedRecurrentKernel[column * H + row] = U[row * GH + column] }
                }
            }
            // Large gated layers: Uᵀ packed once here for every step's product.
            let packed = PackedRecurrence.applies(S.self, cell, units: H, kernels: kernels)
                && PackedRecurrence.packBackward(cell, units: H, recurrentKernel: U, into: w.packedWeights)
            func carry(_ a: UnsafePointer<S>, lda: Int, first: Int, columns: Int, accumulate: Bool, into c: UnsafeMutablePointer<S>) {
                if packed {
                    PackedRecurrence.product(rows: B, columns: H, depth: columns, a: a, lda: lda, packed: w.packedWeights,
                                             first: first, panelDepth: GH, accumulate: accumulate, c: c, ldc: H)
                } else if transposeOnce {
                    gemm(transposeA: false, transposeB: false, m: B, n: H, k: columns, alpha: 1, a: a, lda: lda,
                         b: w.transposedRecurrentKernel + first * H, ldb: H, beta: accumulate ? 1 : 0, c: c, ldc: H)
                } else {
                    gemm(transposeA: false, transposeB: true, m: B, n: H, k: columns, alpha: 1, a: a, lda: lda,
                         b: U + first, ldb: GH, beta: accumulate ? 1 : 0, c: c, ldc: H)
                }
            }
            for t in stride(from: T - 1, through: 0, by: -1) {
                let upstream: UnsafePointer<S>? =
                    sequenceGradient ? stateGradient + t * stepState : (t == T - 1 ? stateGradient : nil)
                // d loss / d h_t arriving from step t + 1 (none at the last step)
                let carried: UnsafePointer<S>? = t == T - 1 ? nil : UnsafePointer(w.carried)
                let gates = UnsafePointer(tape.gates + t * stepGates)
                let previous = t == 0 ? initialH : UnsafePointer(tape.states + (t - 1) * stepState)
                let dGates = w.inputGateGradient + t * stepGates
                let stepMask = mask.map { $0 + t * B }
                if let stepMask, Self.everySampleMasked(stepMask, batch: B) {
                    // The whole step masked: no gate gradients, d loss / d h_t (and d c_t) passed on whole.
                    dGates.update(repeating: 0, count: stepGates)
                    if cell.hasRecurrentBias { (w.recurrentGateGradient + t * stepGates).update(repeating: 0, count: stepGates) }
                    for i in 0..<stepState { w.carried[i] = (upstream?[i] ?? 0) + (carried?[i] ?? 0) }
                    if !hasLaterCell(t) { w.carriedCell.update(repeating: 0, count: stepState) }
                    continue
                }
                // Masked samples: d loss / d h_t (and d c_t) will pass to step t − 1 unchanged; kept aside here.
                if let stepMask {
                    for b in 0..<B where stepMask[b] == 0 {
                        for k in 0..<H {
                            w.passedState[b * H + k] = (upstream?[b * H + k] ?? 0) + (carried?[b * H + k] ?? 0)
                            w.passedCell[b * H + k] = hasLaterCell(t) ? w.carriedCell[b * H + k] : 0
                        }
                    }
                }
                // Recurrent dropout: what comes back through U is d loss / d (h_{t−1} ⊙ m); × m gives h_{t−1}'s share.
                let dropMask = tape.recurrentDropout?.mask
                switch cell {
                case .simple(let f):
                    // dz_t = (dh_t + g) ⊙ f′(h_t)
                    S.addAndMultiplyByActivationDerivative(
                        f, outputs: tape.states + t * stepState, upstream: upstream, carried: carried, into: dGates, count: stepState)
                    if t > 0 || toStart {
                        // g [B, H] = dz_t [B, H] · Uᵀ [H, H]
                        carry(dGates, lda: H, first: 0, columns: H, accumulate: false, into: w.carried)
                        if let dropMask { S.combine(w.carried, dropMask, into: w.carried, count: stepState, multiply: true, scale: 1) }
                    }
                case .lstm(let f, let sigma):
                    let cells = tape.cellStates!
                    S.lstmBackwardStep(
                        activation: f, recurrentActivation: sigma, gates: gates,
                        previousCell: t == 0 ? initialC : UnsafePointer(cells + (t - 1) * stepState),
                        activatedCell: tape.auxiliary! + t * stepState, upstream: upstream, carried: carried,
                        cellGradient: w.carriedCell, hasLaterCell: hasLaterCell(t), gateGradient: dGates, rows: B, units: H)
                    if t > 0 || toStart {
                        // g [B, H] = dG_t [B, 4H] · Uᵀ [4H, H]
                        carry(dGates, lda: GH, first: 0, columns: GH, accumulate: false, into: w.carried)
                        if let dropMask { S.combine(w.carried, dropMask, into: w.carried, count: stepState, multiply: true, scale: 1) }
                    }
                case .gru(let f, let sigma, true):
                    let dRecurrent = w.recurrentGateGradient + t * stepGates
                    S.gruBackwardStepResetAfter(
                        activation: f, recurrentActivation: sigma, gates: gates, auxiliary: tape.auxiliary! + t * stepState,
                        previousState: previous, upstream: upstream, carried: carried,
                        inputGateGradient: dGates, recurrentGateGradient: dRecurrent, direct: w.carried, rows: B, units: H)
                    if t > 0 || toStart {
                        // g [B, H] = dh ⊙ z + dU_t [B, 3H] · Uᵀ [3H, H]   (the product × m under recurrent dropout)
                        if let dropMask {
                            carry(dRecurrent, lda: GH, first: 0, columns: GH, accumulate: false, into: w.droppedGradient)
                            Self.addProduct(w.droppedGradient, dropMask, into: w.carried, count: stepState)
                        } else {
                            carry(dRecurrent, lda: GH, first: 0, columns: GH, accumulate: true, into: w.carried)
                        }
                    }
                case .gru(let f, let sigma, false):
                    S.gruBackwardCandidate(
                        activation: f, recurrentActivation: sigma, gates: gates, previousState: previous,
                        upstream: upstream, carried: carried, gateGradient: dGates, direct: w.carried, rows: B, units: H)
                    // d(r ⊙ h_{t−1}) [B, H] = dz_h [B, H] · U_hᵀ [H, H]
                    carry(dGates + 2 * H, lda: GH, first: 2 * H, columns: H, accumulate: false, into: w.resetState)
                    if let dropout = tape.recurrentDropout {
                        // Every term below is d loss / d (h_{t−1} ⊙ m): gathered apart, then × m into g.
                        w.droppedGradient.update(repeating: 0, count: stepState)
                        S.gruBackwardReset(recurrentActivation: sigma, gates: gates,
                                           previousState: dropout.droppedStates + t * stepState, resetStateGradient: w.resetState,
                                           gateGradient: dGates, direct: w.droppedGradient, rows: B, units: H)
                        if t > 0 || toStart {
                            carry(dGates, lda: GH, first: 0, columns: 2 * H, accumulate: true, into: w.droppedGradient)
                        }
                        Self.addProduct(w.droppedGradient, dropout.mask, into: w.carried, count: stepState)
                    } else {
                        S.gruBackwardReset(recurrentActivation: sigma, gates: gates, previousState: previous,
                                           resetStateGradient: w.resetState, gateGradient: dGates, direct: w.carried, rows: B, units: H)
                        if t > 0 || toStart {
                            // g [B, H] += [dz_z dz_r] [B, 2H] · U[:, 0..<2H]ᵀ [2H, H]
                            carry(dGates, lda: GH, first: 0, columns: 2 * H, accumulate: true, into: w.carried)
                        }
                    }
                }
                if let stepMask {
                    // A masked sample's row of each product above depends on its own gate gradients
                    // alone, so overwriting it now is exact: no gate gradients, the state's passed on.
                    let dRecurrent = w.recurrentGateGradient + t * stepGates
                    for b in 0..<B where stepMask[b] == 0 {
                        (dGates + b * GH).update(repeating: 0, count: GH)
                        if cell.hasRecurrentBias { (dRecurrent + b * GH).update(repeating: 0, count: GH) }
                        (w.carried + b * H).update(from: w.passedState + b * H, count: H)
                        if case .lstm = cell { (w.carriedCell + b * H).update(from: w.passedCell + b * H, count: H) }
                    }
                }
            }
        }
        if let initialStateGradient {
            // After the first step, what was carried is d loss / d h_0 (and d c_0).
            initialStateGradient.h.update(from: w.carried, count: stepState)
            initialStateGradient.c?.update(from: w.carriedCell, count: stepState)
        }
        // The weights' gradients come from the steps that did work (the gate gradients of wholly
        // masked steps are zero): from the first to the last step with an unmasked sample.
        let active = Self.activeSteps(mask, steps: T, batch: B)
        let first = active.lowerBound, rows = active.count * B
        let dGates = UnsafePointer(w.inputGateGradient) + first * stepGates
        let dRecurrent = UnsafePointer(w.recurrentGateGradient) + first * stepGates
        let resetBefore = cell.resetsBeforeProduct
        let stateColumns = resetBefore ? 2 * H : GH
        func zeroRecurrentKernel(columns: Int, from column: Int) {
            for k in 0..<H { (gradients.recurrentKernel + k * GH + column).update(repeating: 0, count: columns) }
        }
        guard rows > 0 else {
            // Every step masked: nothing to learn, and no gradient for the input.
            gradients.kernel.update(repeating: 0, count: D * GH)
            gradients.recurrentKernel.update(repeating: 0, count: H * GH)
            gradients.bias.update(repeating: 0, count: cell.biasShape(units: H).reduce(1, *))
            inputGradient?.update(repeating: 0, count: T * B * D)
            return
        }
        // The weight gradients, one long product over all steps each: RNNKit's (reading A and B
        // where they lie) for large gated layers' short sides, else OpenBLAS's.
        let ownWeightGradients = PackedRecurrence.applies(S.self, cell, units: H, kernels: kernels)
        // Returns whether `columnSums` (B's column sums, a bias gradient) was written as well.
        @discardableResult
        func weightGradient(m: Int, n: Int, k: Int, a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int, beta: S,
                            c: UnsafeMutablePointer<S>, ldc: Int, columnSums: UnsafeMutablePointer<S>? = nil) -> Bool {
            if ownWeightGradients, PackedRecurrence.transposedAProduct(rows: m, columns: n, depth: k, a: a, lda: lda, b: b, ldb: ldb,
                                                                       accumulate: beta != 0, c: c, ldc: ldc, columnSums: columnSums) {
                return columnSums != nil
            }
            gemm(transposeA: true, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return false
        }
        // dW [D, G·H] = Xᵀ [D, rows] · dG [rows, G·H]
        let biasDone = weightGradient(m: D, n: GH, k: rows, a: x + first * B * D, lda: D, b: dGates, ldb: GH, beta: 0,
                                      c: gradients.kernel, ldc: GH, columnSums: gradients.bias)
        // dU [H, n] = H_prevᵀ · dG over steps t ≥ 1 of the range; h_0 = 0 contributes nothing.
        // GRU reset-before: only the z and r columns see h_{t−1}; the candidate's see r ⊙ h_{t−1}.
        let firstWithPrevious = max(first, 1)
        if let dropout = tape.recurrentDropout {
            // Recurrent dropout: the products read h_{t−1} ⊙ m, kept per step (h_0 ⊙ m at step 0).
            let start = initialState != nil ? first : firstWithPrevious
            if start < active.upperBound {
                weightGradient(m: H, n: stateColumns, k: (active.upperBound - start) * B,
                     a: dropout.droppedStates + start * stepState, lda: H,
                     b: UnsafePointer(w.recurrentGateGradient) + start * stepGates, ldb: GH, beta: 0,
                     c: gradients.recurrentKernel, ldc: GH)
            } else {
                zeroRecurrentKernel(columns: stateColumns, from: 0)
            }
        } else {
            if firstWithPrevious < active.upperBound {
                weightGradient(m: H, n: stateColumns, k: (active.upperBound - firstWithPrevious) * B,
                       a: tape.states + (firstWithPrevious - 1) * stepState, lda: H,
                       b: UnsafePointer(w.recurrentGateGradient) + firstWithPrevious * stepGates, ldb: GH, beta: 0,
                       c: gradients.recurrentKernel, ldc: GH)
            } else {
                zeroRecurrentKernel(columns: stateColumns, from: 0)
            }
            if initialState != nil, first == 0 {
                // A given h_0 meets the first step's gate gradients too: dU += h_0ᵀ [H, B] · dG_0 [B, n].
                weightGradient(m: H, n: stateColumns, k: B,
                       a: initialH, lda: H, b: dRecurrent, ldb: GH, beta: 1, c: gradients.recurrentKernel, ldc: GH)
            }
        }
        if resetBefore {
            // dU_h [H, H] = (r ⊙ H_prev)ᵀ [H, rows] · dz_h [rows, H]
            weightGradient(m: H, n: H, k: rows,
                   a: tape.auxiliary! + first * stepState, lda: H, b: dGates + 2 * H, ldb: GH, beta: 0,
                   c: gradients.recurrentKernel + 2 * H, ldc: GH)
        }
        // db [G·H] = Σ rows of dG (GRU reset-after: and the recurrent bias from the recurrent side)
        if !biasDone { S.sumRows(dGates, rows: rows, columns: GH, into: gradients.bias) }
        if cell.hasRecurrentBias { S.sumRows(dRecurrent, rows: rows, columns: GH, into: gradients.bias + GH) }
        // dX [rows, D] = dG [rows, G·H] · Wᵀ [G·H, D]; zero outside the range.
        if let inputGradient {
            inputGradient.update(repeating: 0, count: first * B * D)
            gemm(transposeA: false, transposeB: true, m: rows, n: D, k: GH,
                   alpha: 1, a: dGates, lda: GH, b: weights.kernel, ldb: GH, beta: 0, c: inputGradient + first * B * D, ldc: D)
            (inputGradient + active.upperBound * B * D).update(repeating: 0, count: (T - active.upperBound) * B * D)
        }
    }

    /// Whether a layer's recurrence can run whole in the small kernels' fused loop: a tanh
    /// SimpleRNN small enough for them, with no mask and no recurrent dropout, in `.auto`.
    @inline(__always)
    private static func fusesTanhRecurrence<S>(_ cell: RecurrentCell, _ d: RNNDimensions, mask: UnsafePointer<UInt8>?,
                                               tape: RecurrentTape<S>, kernels: Kernels) -> Bool {
        guard kernels == .auto, mask == nil, tape.recurrentDropout == nil, case .simple(.tanh) = cell else { return false }
        return SmallGEMM.suits(n: d.units, k: d.units, m: d.batch, transposeB: true)
    }

    /// `c += a ⊙ b` over `count` scalars.
    @inline(__always)
    private static func addProduct<S: BLASScalar>(_ a: UnsafePointer<S>, _ b: UnsafePointer<S>, into c: UnsafeMutablePointer<S>, count: Int) {
        for i in 0..<count { c[i] += a[i] * b[i] }
    }

    /// Whether all `batch` samples of a step are masked.
    @inline(__always)
    private static func everySampleMasked(_ stepMask: UnsafePointer<UInt8>, batch: Int) -> Bool {
        for b in 0..<batch where stepMask[b] != 0 { return false }
        return true
    }

    /// The steps from the first to the last where some sample is not masked (all of them without a mask).
    private static func activeSteps(_ mask: UnsafePointer<UInt8>?, steps: Int, batch: Int) -> Range<Int> {
        guard let mask else { return 0..<steps }
        var first = 0
        while first < steps, everySampleMasked(mask + first * batch, batch: batch) { first += 1 }
        var last = steps
        while last > first, everySampleMasked(mask + (last - 1) * batch, batch: batch) { last -= 1 }
        return first..<last
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseForward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        preActivation: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>
    ) {
        // Z [rows, units] = c (broadcast) + X · V
        S.broadcastRows(bias, into: preActivation, rows: rows, columns: units)
        gemm(transposeA: false, transposeB: false, m: rows, n: units, k: inputs,
               alpha: 1, a: x, lda: inputs, b: kernel, ldb: units, beta: 1, c: preActivation, ldc: units)
        if output != preActivation { output.update(from: preActivation, count: rows * units) }
        S.activateInPlace(activation, output, rows: rows, columns: units)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseBackward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, preActivationGradient: UnsafePointer<S>,
        kernelGradient: UnsafeMutablePointer<S>, biasGradient: UnsafeMutablePointer<S>,
        inputGradient: UnsafeMutablePointer<S>?
    ) {
        // dV [inputs, units] = Xᵀ · dZ
        gemm(transposeA: true, transposeB: false, m: inputs, n: units, k: rows,
               alpha: 1, a: x, lda: inputs, b: preActivationGradient, ldb: units, beta: 0, c: kernelGradient, ldc: units)
        S.sumRows(preActivationGradient, rows: rows, columns: units, into: biasGradient)
        // dX [rows, inputs] = dZ · Vᵀ
        if let inputGradient {
            gemm(transposeA: false, transposeB: true, m: rows, n: inputs, k: units,
                   alpha: 1, a: preActivationGradient, lda: units, b: kernel, ldb: units, beta: 0,
                   c: inputGradient, ldc: inputs)
        }
    }
}
