/// The engine's forward pass over a batch, for any cell: the driver of `BLASBackend.recurrentForward`.
///
/// One product projects every step's inputs for every gate (`[T·B, D]·[D, G·H]`); then, step by
/// step, the cell adds its products with `U` and its elementwise step. The driver owns the steps'
/// order, masking (whole masked steps skipped, masked samples' states carried over), recurrent
/// dropout's `h_{t−1} ⊙ m`, and the initial state.
struct RecurrentForwardPass<S: BLASScalar>: CellPass {
    let backend: BLASBackend
    let kind: RecurrentCell
    let dimensions: RNNDimensions
    let x: UnsafePointer<S>
    let weights: RecurrentWeights<S>
    let mask: UnsafePointer<UInt8>?
    let initialState: RecurrentState<S>?
    let tape: RecurrentTape<S>
    let workspace: BLASBackend.Workspace<S>

    func run<Cell: RecurrentCellExecutor>(_ cell: Cell) {
        let (B, T, H) = (dimensions.batch, dimensions.steps, dimensions.units)
        let stepState = B * H
        let w = workspace
        w.zeros.update(repeating: 0, count: stepState)
        projectInputs()
        // A cell with a kernel for the whole recurrence (a small tanh SimpleRNN) runs it in one call.
        let sequence = WholeSequence(
            dimensions: dimensions, recurrentKernel: weights.recurrentKernel, masked: mask != nil,
            dropout: tape.recurrentDropout != nil, kernels: backend.kernels)
        if cell.forwardWholeSequence(sequence, gates: tape.gates, initialState: initialState?.h) { return }
        // Large gated layers: U packed once here, each step's product (and LSTM's and GRU's step) fused.
        let packed =
            PackedRecurrence.applies(S.self, kind, units: H, kernels: backend.kernels)
            && PackedRecurrence.packForward(kind, units: H, recurrentKernel: weights.recurrentKernel, into: w.packedWeights)
        let products = RecurrentProducts(
            backend: backend, batch: B, units: H, gateColumns: cell.gates * H, recurrentKernel: weights.recurrentKernel,
            bias: weights.bias, packed: packed, packedWeights: w.packedWeights, transposedRecurrentKernel: nil,
            projection: w.projection)
        for t in 0..<T {
            if let mask, SequenceMask.everySampleMasked(mask + t * B, batch: B) {
                carryOverMaskedStep(t)
                continue
            }
            cell.forward(step(t), products)
            if let mask { keepMaskedSamples(t, stepMask: mask + t * B) }
        }
    }

    /// Gates [T·B, G·H] = b (broadcast; GRU reset-after: the input row) + X [T·B, D] · W [D, G·H],
    /// over the rows of the steps from the first to the last with an unmasked sample.
    private func projectInputs() {
        let (B, D, H) = (dimensions.batch, dimensions.inputs, dimensions.units)
        let GH = kind.gates * H, stepGates = B * GH
        let active = SequenceMask.activeSteps(mask, steps: dimensions.steps, batch: B)
        guard !active.isEmpty else { return }
        let first = active.lowerBound, rows = active.count * B
        let gates = tape.gates + first * stepGates, inputs = x + first * B * D
        S.broadcastRows(weights.bias, into: gates, rows: rows, columns: GH)
        // Large gated layers: W packed (into the room U takes after) for RNNKit's product, which
        // runs this short-k shape faster than OpenBLAS.
        if PackedRecurrence.applies(S.self, kind, units: H, kernels: backend.kernels),
            PackedRecurrence.packInputKernel(inputs: D, columns: GH, kernel: weights.kernel, into: workspace.packedWeights)
        {
            PackedRecurrence.product(
                rows: rows, columns: GH, depth: D, a: inputs, lda: D, packed: workspace.packedWeights,
                panelDepth: D, accumulate: true, c: gates, ldc: GH)
        } else {
            backend.gemm(
                transposeA: false, transposeB: false, m: rows, n: GH, k: D,
                alpha: 1, a: inputs, lda: D, b: weights.kernel, ldb: GH, beta: 1, c: gates, ldc: GH)
        }
    }

    /// `h_{t−1}` (`h_0` at t = 0, zeros when none was given).
    @inline(__always)
    private func previousState(_ t: Int) -> UnsafePointer<S> {
        let stepState = dimensions.batch * dimensions.units
        return t == 0 ? initialState?.h ?? UnsafePointer(workspace.zeros) : UnsafePointer(tape.states + (t - 1) * stepState)
    }

    /// `c_{t−1}` (LSTM; `c_0` at t = 0, zeros when none was given).
    @inline(__always)
    private func previousCell(_ t: Int) -> UnsafePointer<S> {
        let stepState = dimensions.batch * dimensions.units
        guard t > 0, let cells = tape.cellStates else { return initialState?.c ?? UnsafePointer(workspace.zeros) }
        return UnsafePointer(cells + (t - 1) * stepState)
    }

    /// Step t as the cell sees it. Under recurrent dropout the products with U read
    /// `h_{t−1} ⊙ m`, written here into the tape for dU.
    @inline(__always)
    private func step(_ t: Int) -> ForwardStep<S> {
        let (B, H) = (dimensions.batch, dimensions.units)
        let stepState = B * H, stepGates = B * kind.gates * H
        let previous = previousState(t)
        var previousForU = previous
        if let dropout = tape.recurrentDropout {
            let dropped = dropout.droppedStates + t * stepState
            S.combine(previous, dropout.mask, into: dropped, count: stepState, multiply: true, scale: 1)
            previousForU = UnsafePointer(dropped)
        }
        return ForwardStep(
            batch: B, units: H, gates: tape.gates + t * stepGates, previous: previous, previousForU: previousForU,
            hasPrevious: t > 0 || initialState != nil, previousCell: previousCell(t), state: tape.states + t * stepState,
            cellState: tape.cellStates.map { $0 + t * stepState }, auxiliary: tape.auxiliary.map { $0 + t * stepState })
    }

    /// The whole step masked: every state (and cell state) carried over.
    private func carryOverMaskedStep(_ t: Int) {
        let stepState = dimensions.batch * dimensions.units
        if let dropout = tape.recurrentDropout {
            // dU reads h_{t−1} ⊙ m at every step, masked or not.
            S.combine(
                previousState(t), dropout.mask, into: dropout.droppedStates + t * stepState, count: stepState,
                multiply: true, scale: 1)
        }
        (tape.states + t * stepState).update(from: previousState(t), count: stepState)
        if let cells = tape.cellStates { (cells + t * stepState).update(from: previousCell(t), count: stepState) }
    }

    /// Masked samples keep the state (and LSTM's cell state) of the step before.
    private func keepMaskedSamples(_ t: Int, stepMask: UnsafePointer<UInt8>) {
        let (B, H) = (dimensions.batch, dimensions.units)
        let stepState = B * H, previous = previousState(t)
        for b in 0..<B where stepMask[b] == 0 {
            (tape.states + t * stepState + b * H).update(from: previous + b * H, count: H)
            if let cells = tape.cellStates {
                (cells + t * stepState + b * H).update(from: previousCell(t) + b * H, count: H)
            }
        }
    }
}

/// Keras's mask over a batch, `[T, B]`, 0 where a sample's step is masked.
enum SequenceMask {
    /// The mask, or nil when it masks nothing: a batch with every step counted then runs exactly
    /// as without a mask (the same kernels, so the same bits; a small tanh SimpleRNN's whole
    /// recurrence in one call rather than step by step).
    static func effective(_ mask: UnsafePointer<UInt8>?, _ d: RNNDimensions) -> UnsafePointer<UInt8>? {
        guard let mask else { return nil }
        for i in 0..<(d.steps * d.batch) where mask[i] == 0 { return mask }
        return nil
    }

    /// Whether all `batch` samples of a step are masked.
    @inline(__always)
    static func everySampleMasked(_ stepMask: UnsafePointer<UInt8>, batch: Int) -> Bool {
        for b in 0..<batch where stepMask[b] != 0 { return false }
        return true
    }

    /// The steps from the first to the last where some sample is not masked (all of them without a mask).
    static func activeSteps(_ mask: UnsafePointer<UInt8>?, steps: Int, batch: Int) -> Range<Int> {
        guard let mask else { return 0..<steps }
        var first = 0
        while first < steps, everySampleMasked(mask + first * batch, batch: batch) { first += 1 }
        var last = steps
        while last > first, everySampleMasked(mask + (last - 1) * batch, batch: batch) { last -= 1 }
        return first..<last
    }
}
