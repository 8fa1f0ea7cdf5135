/// The engine's backward pass through time, for any cell: the driver of `BLASBackend.recurrentBackward`.
///
/// Step by step from the last, the cell turns d loss / d h_t into its gate gradients and carries
/// the gradient back through `U`; then one product each gives `dW`, `dU` and `dX` over all steps.
/// The driver owns the steps' order, masking (whole masked steps skipped, masked samples'
/// gradients passed on unchanged), the initial state's gradient, and the weight gradients.
struct RecurrentBackwardPass<S: BLASScalar>: CellPass {
    let backend: BLASBackend
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
    let workspace: BLASBackend.Workspace<S>

    private var stepState: Int { dimensions.batch * dimensions.units }
    private var stepGates: Int { dimensions.batch * kind.gates * dimensions.units }
    /// With d loss / d h_0 wanted, the first step's gradient is carried through U too.
    private var toStart: Bool { initialStateGradient != nil }

    func run<Cell: RecurrentCellExecutor>(_ cell: Cell) {
        let w = workspace
        w.zeros.update(repeating: 0, count: stepState)
        // d loss / d c_T from outside (an LSTM whose final state starts another layer) enters as a later cell's.
        if let finalCellGradient { w.carriedCell.update(from: finalCellGradient, count: stepState) }
        // A cell with a kernel for the whole recurrence (a small tanh SimpleRNN) runs it in one call.
        let sequence = WholeSequence(
            dimensions: dimensions, recurrentKernel: weights.recurrentKernel, masked: mask != nil,
            dropout: tape.recurrentDropout != nil, kernels: backend.kernels)
        if !cell.backwardWholeSequence(
            sequence, states: tape.states, upstream: stateGradient, sequenceGradient: sequenceGradient,
            gateGradient: w.inputGateGradient, carried: w.carried, toStart: toStart)
        {
            let products = prepareProducts()
            for t in stride(from: dimensions.steps - 1, through: 0, by: -1) { backwardStep(t, cell, products) }
        }
        if let initialStateGradient {
            // After the first step, what was carried is d loss / d h_0 (and d c_0).
            initialStateGradient.h.update(from: w.carried, count: stepState)
            initialStateGradient.c?.update(from: w.carriedCell, count: stepState)
        }
        weightGradients(cell)
    }

    /// The per-step products' weights: `Uᵀ` packed once for a large gated layer, or transposed
    /// once where the small kernels take the products.
    private func prepareProducts() -> RecurrentProducts<S> {
        let (B, H) = (dimensions.batch, dimensions.units), GH = kind.gates * H, U = weights.recurrentKernel
        let w = workspace
        let transposeOnce =
            backend.kernels == .auto && SmallGEMM.suits(n: H, k: GH, m: B, transposeB: false)
            && BLASBackend.Workspace<S>.transposedKernelCount(kind, dimensions) > 0
        if transposeOnce {
            for row in 0..<H {
                for column in 0..<GH { w.transposedRecurrentKernel[column * H + row] = U[row * GH + column] }
            }
        }
        let packed =
            PackedRecurrence.applies(S.self, kind, units: H, kernels: backend.kernels)
            && PackedRecurrence.packBackward(kind, units: H, recurrentKernel: U, into: w.packedWeights)
        return RecurrentProducts(
            backend: backend, batch: B, units: H, gateColumns: GH, recurrentKernel: U, bias: weights.bias, packed: packed,
            packedWeights: w.packedWeights, transposedRecurrentKernel: transposeOnce ? UnsafePointer(w.transposedRecurrentKernel) : nil,
            projection: w.projection)
    }

    /// LSTM: whether d loss / d c_t arrives from a later step or from outside.
    @inline(__always)
    private func hasLaterCell(_ t: Int) -> Bool { t < dimensions.steps - 1 || finalCellGradient != nil }

    @inline(__always)
    private func backwardStep<Cell: RecurrentCellExecutor>(_ t: Int, _ cell: Cell, _ products: RecurrentProducts<S>) {
        let (B, T) = (dimensions.batch, dimensions.steps)
        let w = workspace
        let upstream: UnsafePointer<S>? = sequenceGradient ? stateGradient + t * stepState : (t == T - 1 ? stateGradient : nil)
        // d loss / d h_t arriving from step t + 1 (none at the last step)
        let carried: UnsafePointer<S>? = t == T - 1 ? nil : UnsafePointer(w.carried)
        let stepMask = mask.map { $0 + t * B }
        if let stepMask, SequenceMask.everySampleMasked(stepMask, batch: B) {
            // The whole step masked: no gate gradients, d loss / d h_t (and d c_t) passed on whole.
            (w.inputGateGradient + t * stepGates).update(repeating: 0, count: stepGates)
            if kind.hasRecurrentBias { (w.recurrentGateGradient + t * stepGates).update(repeating: 0, count: stepGates) }
            for i in 0..<stepState { w.carried[i] = (upstream?[i] ?? 0) + (carried?[i] ?? 0) }
            if !hasLaterCell(t) { w.carriedCell.update(repeating: 0, count: stepState) }
            return
        }
        // Masked samples: d loss / d h_t (and d c_t) will pass to step t − 1 unchanged; kept aside here.
        if let stepMask { setAsidePassedGradients(t, stepMask: stepMask, upstream: upstream, carried: carried) }
        cell.backward(step(t, upstream: upstream, carried: carried), products)
        if let stepMask { passOnMaskedSamples(t, stepMask: stepMask) }
    }

    @inline(__always)
    private func step(_ t: Int, upstream: UnsafePointer<S>?, carried: UnsafePointer<S>?) -> BackwardStep<S> {
        let (B, H) = (dimensions.batch, dimensions.units), w = workspace
        let previous = t == 0 ? initialState?.h ?? UnsafePointer(w.zeros) : UnsafePointer(tape.states + (t - 1) * stepState)
        var previousCell = initialState?.c ?? UnsafePointer(w.zeros)
        if t > 0, let cells = tape.cellStates { previousCell = UnsafePointer(cells + (t - 1) * stepState) }
        let dropout = tape.recurrentDropout
        return BackwardStep(
            batch: B, units: H, gates: tape.gates + t * stepGates, previous: previous, previousCell: previousCell,
            state: tape.states + t * stepState, auxiliary: tape.auxiliary.map { UnsafePointer($0 + t * stepState) },
            upstream: upstream, carried: carried, inputGateGradient: w.inputGateGradient + t * stepGates,
            recurrentGateGradient: w.recurrentGateGradient + t * stepGates, carriesBack: t > 0 || toStart,
            hasLaterCell: hasLaterCell(t), carriedOut: w.carried, carriedCell: w.carriedCell,
            resetStateGradient: w.resetState, droppedGradient: w.droppedGradient,
            dropoutMask: dropout.map { $0.mask }, droppedState: dropout.map { UnsafePointer($0.droppedStates + t * stepState) })
    }

    private func setAsidePassedGradients(
        _ t: Int, stepMask: UnsafePointer<UInt8>, upstream: UnsafePointer<S>?,
        carried: UnsafePointer<S>?
    ) {
        let (B, H) = (dimensions.batch, dimensions.units), w = workspace
        for b in 0..<B where stepMask[b] == 0 {
            for k in 0..<H {
                w.passedState[b * H + k] = (upstream?[b * H + k] ?? 0) + (carried?[b * H + k] ?? 0)
                w.passedCell[b * H + k] = hasLaterCell(t) ? w.carriedCell[b * H + k] : 0
            }
        }
    }

    /// A masked sample's row of each product the cell ran depends on its own gate gradients
    /// alone, so overwriting it now is exact: no gate gradients, the state's passed on.
    private func passOnMaskedSamples(_ t: Int, stepMask: UnsafePointer<UInt8>) {
        let (B, H) = (dimensions.batch, dimensions.units), GH = kind.gates * H, w = workspace
        let dGates = w.inputGateGradient + t * stepGates, dRecurrent = w.recurrentGateGradient + t * stepGates
        for b in 0..<B where stepMask[b] == 0 {
            (dGates + b * GH).update(repeating: 0, count: GH)
            if kind.hasRecurrentBias { (dRecurrent + b * GH).update(repeating: 0, count: GH) }
            (w.carried + b * H).update(from: w.passedState + b * H, count: H)
            if tape.cellStates != nil { (w.carriedCell + b * H).update(from: w.passedCell + b * H, count: H) }
        }
    }
}
