/// What a recurrent cell contributes to the drivers: its step after the products, forward and
/// backward, in the engine (`BLASBackend`) and in the reference (`NaiveBackend`).
///
/// The drivers own everything that is the same for every cell: the input projection over all
/// steps, the time loop and its direction, masking, recurrent dropout's `h_{t−1} ⊙ m`, the initial
/// state and its gradient, and the weight gradients over all steps. A cell owns its gate layout
/// (G gate blocks of H, in Keras's order), the products against `U` each step needs beyond the
/// driver's, and its elementwise step. Each conformance lives in its own file with its kernels and
/// its reference (`SimpleRNNCell.swift`, `LSTMCell.swift`, `GRUResetAfterCell.swift`,
/// `GRUResetBeforeCell.swift`); `RecurrentCell.executor` picks one (docs/ENGINE.md says why a
/// protocol, and what a new cell needs).
///
/// The drivers are generic over the executor, so each cell's steps are specialised into them:
/// nothing is dispatched per element or per step.
protocol RecurrentCellExecutor {
    /// Gates per unit (G), laid side by side in each row: `[B, G·H]`.
    var gates: Int { get }

    /// The engine's step `t`: on entry `step.gates` holds `x_t·W + b`; the cell adds its products
    /// with `U` (through `products`, when `step.hasPrevious`), activates the gates, and writes the
    /// state (and what its backward step reads) into the tape.
    func forward<S: BLASScalar>(_ step: ForwardStep<S>, _ products: RecurrentProducts<S>)

    /// The engine's backward step `t`: from `dh_t = upstream + carried`, the gate gradients into
    /// `step.inputGateGradient` (and `recurrentGateGradient` where they differ), and, when
    /// `step.carriesBack`, d loss / d h_{t−1} into `step.carriedOut` (d loss / d c_{t−1} in
    /// `step.carriedCell` for LSTM).
    func backward<S: BLASScalar>(_ step: BackwardStep<S>, _ products: RecurrentProducts<S>)

    /// The reference's step for one sample, from the sample's input and recurrent projections.
    func referenceForward<S: BLASScalar>(_ step: ReferenceForwardStep<S>)

    /// The reference's backward step for one sample: gate gradients into `dx` and `du`, and the
    /// part of d loss / d h_{t−1} that does not pass through `U` into `direct`.
    func referenceBackward<S: BLASScalar>(_ step: ReferenceBackwardStep<S>)

    /// The columns of `U` whose product reads `h_{t−1}` (`[0, n)`): all `G·H` but for a cell whose
    /// other columns read something else (GRU reset-before's candidate reads `r ⊙ h_{t−1}`).
    func stateColumns(units: Int) -> Int

    /// The rest of `dU` for such a cell, once the driver has written the `stateColumns`.
    func finishRecurrentKernelGradient<S: BLASScalar>(_ step: WeightGradientStep<S>)

    /// The whole forward recurrence in one call, where the cell has a kernel for it; false (doing
    /// nothing) otherwise.
    func forwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, gates: UnsafeMutablePointer<S>,
        initialState: UnsafePointer<S>?
    ) -> Bool

    /// Its backward pass in one call, where `forwardWholeSequence` ran; false otherwise.
    func backwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, states: UnsafePointer<S>, upstream: UnsafePointer<S>,
        sequenceGradient: Bool, gateGradient: UnsafeMutablePointer<S>,
        carried: UnsafeMutablePointer<S>, toStart: Bool
    ) -> Bool
}

extension RecurrentCellExecutor {
    func stateColumns(units: Int) -> Int { units * gates }
    func finishRecurrentKernelGradient<S: BLASScalar>(_ step: WeightGradientStep<S>) {}
    func forwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, gates: UnsafeMutablePointer<S>,
        initialState: UnsafePointer<S>?
    ) -> Bool { false }
    func backwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, states: UnsafePointer<S>, upstream: UnsafePointer<S>,
        sequenceGradient: Bool, gateGradient: UnsafeMutablePointer<S>,
        carried: UnsafeMutablePointer<S>, toStart: Bool
    ) -> Bool { false }
}

/// A pass over a sequence that runs with any cell: the drivers' passes conform, and
/// `RecurrentCell.run` calls `run` with the cell's executor as a concrete type, so each pass is
/// specialised for each cell (a closure or an existential would not be).
protocol CellPass {
    associatedtype Result
    func run<Cell: RecurrentCellExecutor>(_ cell: Cell) -> Result
}

extension RecurrentCell {
    /// The one place a cell kind becomes its executor.
    @inline(__always)
    func run<Pass: CellPass>(_ pass: Pass) -> Pass.Result {
        switch self {
        case .simple(let f): pass.run(SimpleRNNCell(activation: f))
        case .lstm(let f, let sigma): pass.run(LSTMCell(activation: f, recurrentActivation: sigma))
        case .gru(let f, let sigma, true): pass.run(GRUResetAfterCell(activation: f, recurrentActivation: sigma))
        case .gru(let f, let sigma, false): pass.run(GRUResetBeforeCell(activation: f, recurrentActivation: sigma))
        }
    }
}

/// One step of the engine's forward pass, as the driver hands it to a cell. `[B, ·]` row-major.
struct ForwardStep<S: BLASScalar> {
    let batch: Int, units: Int
    /// `[B, G·H]`: `x_t·W + b` on entry (GRU reset-after: the input bias row only); the activated
    /// gates on return.
    let gates: UnsafeMutablePointer<S>
    /// `h_{t−1}` `[B, H]` (h_0 for t = 0, zeros when none was given).
    let previous: UnsafePointer<S>
    /// What the products with `U` read: `h_{t−1}`, or `h_{t−1} ⊙ m` under recurrent dropout.
    let previousForU: UnsafePointer<S>
    /// Whether `h_{t−1}` may be non-zero, so that the products with `U` must run.
    let hasPrevious: Bool
    /// `c_{t−1}` (LSTM; zeros for t = 0 without a given c_0).
    let previousCell: UnsafePointer<S>
    /// `h_t`, `c_t` (LSTM) and the tape's auxiliary `[B, H]` at t (see `RecurrentTape`).
    let state: UnsafeMutablePointer<S>
    let cellState: UnsafeMutablePointer<S>?
    let auxiliary: UnsafeMutablePointer<S>?
}

/// One step of the engine's backward pass, as the driver hands it to a cell.
struct BackwardStep<S: BLASScalar> {
    let batch: Int, units: Int
    /// The forward step's activated gates `[B, G·H]`, `h_{t−1}`, `c_{t−1}`, `h_t` and auxiliary.
    let gates: UnsafePointer<S>
    let previous: UnsafePointer<S>
    let previousCell: UnsafePointer<S>
    let state: UnsafePointer<S>
    let auxiliary: UnsafePointer<S>?
    /// d loss / d h_t from the loss (nil: none at this step) and from step t + 1 (nil at the last).
    let upstream: UnsafePointer<S>?
    let carried: UnsafePointer<S>?
    /// Receive d loss / d the gates' pre-activations `[B, G·H]`, input side and recurrent side
    /// (the same memory but for GRU reset-after).
    let inputGateGradient: UnsafeMutablePointer<S>
    let recurrentGateGradient: UnsafeMutablePointer<S>
    /// Whether d loss / d h_{t−1} is wanted (t > 0, or the initial state's gradient is).
    let carriesBack: Bool
    /// LSTM: whether `carriedCell` holds d loss / d c_t from a later step (or from outside).
    let hasLaterCell: Bool
    /// Receives d loss / d h_{t−1} `[B, H]` (may be the memory `carried` points to).
    let carriedOut: UnsafeMutablePointer<S>
    /// LSTM: d loss / d c_t in, d loss / d c_{t−1} out.
    let carriedCell: UnsafeMutablePointer<S>
    /// `[B, H]` scratch each: d loss / d (r ⊙ h_{t−1}) (GRU reset-before), and d loss / d
    /// (h_{t−1} ⊙ m) before recurrent dropout's mask takes it to h_{t−1}.
    let resetStateGradient: UnsafeMutablePointer<S>
    let droppedGradient: UnsafeMutablePointer<S>
    /// Recurrent dropout's mask `[B, H]` and `h_{t−1} ⊙ m` at t; nil without dropout.
    let dropoutMask: UnsafePointer<S>?
    let droppedState: UnsafePointer<S>?
}

/// The weight gradients' products over all working steps, and what `finishRecurrentKernelGradient`
/// needs: the steps that did work (`rows` = their count × B) and where `dU` goes.
struct WeightGradientStep<S: BLASScalar> {
    let backend: BLASBackend
    /// Whether RNNKit's own transposed-A product runs these (large gated `Float` layers).
    let ownProducts: Bool
    let units: Int, rows: Int
    /// d loss / d the gate pre-activations of the first working step on, `[rows, G·H]`.
    let gateGradient: UnsafePointer<S>
    /// The tape's auxiliary from the first working step on.
    let auxiliary: UnsafePointer<S>?
    /// `dU [H, G·H]`.
    let recurrentKernelGradient: UnsafeMutablePointer<S>

    /// `C [m, n] = Aᵀ·B + β·C` (A stored `[k, m]`, B `[k, n]`). With `columnSums`, B's column sums
    /// (a bias gradient) may be written in the same pass: returns whether they were.
    @discardableResult
    func product(
        m: Int, n: Int, k: Int, a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int, beta: S = 0,
        c: UnsafeMutablePointer<S>, ldc: Int, columnSums: UnsafeMutablePointer<S>? = nil
    ) -> Bool {
        if ownProducts,
            PackedRecurrence.transposedAProduct(
                rows: m, columns: n, depth: k, a: a, lda: lda, b: b, ldb: ldb,
                accumulate: beta != 0, c: c, ldc: ldc, columnSums: columnSums)
        {
            return columnSums != nil
        }
        backend.gemm(
            transposeA: true, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
            beta: beta, c: c, ldc: ldc)
        return false
    }
}

/// A whole recurrence's sizes and `U`, for the cells with a one-call kernel.
struct WholeSequence<S: BLASScalar> {
    let dimensions: RNNDimensions
    let recurrentKernel: UnsafePointer<S>
    /// Whether the pass has a mask or recurrent dropout (the one-call kernels take neither).
    let masked: Bool, dropout: Bool
    let kernels: BLASBackend.Kernels
}

/// One sample's forward step in the reference (`NaiveBackend`), each vector of one sample.
struct ReferenceForwardStep<S: BLASScalar> {
    let units: Int
    /// `b_j + Σ_i x_i·W[i, j]` and `(b′_j) + Σ_k (h_{t−1} ⊙ m)_k·U[k, j]`, `[G·H]` each.
    let input: UnsafePointer<S>
    let recurrent: UnsafePointer<S>
    /// `h_{t−1}`, `h_{t−1} ⊙ m` (the same without dropout) and `c_{t−1}`, `[H]` each.
    let previous: UnsafePointer<S>
    let previousForU: UnsafePointer<S>
    let previousCell: UnsafePointer<S>
    /// `U [H, G·H]`.
    let recurrentKernel: UnsafePointer<S>
    /// Outputs: the gates `[G·H]`, `h_t`, `c_t` and the auxiliary `[H]` (see `RecurrentTape`).
    let gates: UnsafeMutablePointer<S>
    let state: UnsafeMutablePointer<S>
    let cellState: UnsafeMutablePointer<S>?
    let auxiliary: UnsafeMutablePointer<S>?
}

/// One sample's backward step in the reference.
struct ReferenceBackwardStep<S: BLASScalar> {
    let units: Int
    /// The forward step's gates `[G·H]`, `h_t`, `h_{t−1}`, `c_{t−1}` and auxiliary `[H]`.
    let gates: UnsafePointer<S>
    let state: UnsafePointer<S>
    let previous: UnsafePointer<S>
    let previousCell: UnsafePointer<S>
    let auxiliary: UnsafePointer<S>?
    /// Recurrent dropout's mask for this sample `[H]`; nil for none.
    let keep: UnsafePointer<S>?
    let recurrentKernel: UnsafePointer<S>
    /// d loss / d h_t `[H]`; LSTM: d loss / d c_t in, d loss / d c_{t−1} out.
    let stateGradient: UnsafePointer<S>
    let cellGradient: UnsafeMutablePointer<S>
    /// Receive d loss / d the pre-activations as they enter `x·W` and `h·U` `[G·H]`, and the part
    /// of d loss / d h_{t−1} that does not pass through `U` `[H]` (zero on entry).
    let dx: UnsafeMutablePointer<S>
    let du: UnsafeMutablePointer<S>
    let direct: UnsafeMutablePointer<S>
    /// `[H]` scratch.
    let scratch: UnsafeMutablePointer<S>
    /// `dU [H, G·H]`, for products a cell accumulates itself (GRU reset-before's candidate block).
    let recurrentKernelGradient: UnsafeMutablePointer<S>

    @inline(__always) func keep(_ k: Int) -> S { keep?[k] ?? 1 }
}

/// `c += a ⊙ b` over `count` scalars.
@inline(__always)
func addElementwiseProduct<S: BLASScalar>(_ a: UnsafePointer<S>, _ b: UnsafePointer<S>, into c: UnsafeMutablePointer<S>, count: Int) {
    for i in 0..<count { c[i] += a[i] * b[i] }
}
