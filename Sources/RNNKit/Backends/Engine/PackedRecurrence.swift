import CSmallKernels

/// A gated layer's per-step products against recurrent weights packed once per pass, and LSTM's
/// step fused into its product, as oneDNN's RNN primitive runs them (`CSmallKernels`'
/// `recurrent_cells.c`): the forward `h_{t−1}·U` of an LSTM with tanh and sigmoid computes the
/// gates, the cell and the state while the product's results are still in registers, and so does
/// GRU's (reset-after); other activations' products and every gated cell's backward `dG_t·Uᵀ`
/// read weights packed into panels of 16 (or 8) columns instead of OpenBLAS packing `U` again at
/// every step. On AVX-512 the input projection `X·W` and the weight gradients `Xᵀ·dG` and
/// `H_prevᵀ·dG` (with the bias's sum) run here too.
///
/// Taken for `Float` with the `.auto` kernels where the small-matrix kernels run on AVX-512 or
/// AVX2 with FMA (16- or 8-unit panels) and the layer has more units than they take
/// (`SmallGEMM.widestColumns`); otherwise every call here returns false and the engine
/// multiplies through `gemm` as before.
enum PackedRecurrence {
    /// Whether this layer's steps run here.
    static func applies<S>(_: S.Type, _ cell: RecurrentCell, units: Int, kernels: BLASBackend.Kernels) -> Bool {
        S.self == Float.self && kernels == .auto && units > SmallGEMM.widestColumns && cell.gates > 1
            && rnnkit_panel_width() > 0
    }

    /// Room in the workspace for the packed weights (elements), for any scalar type: the largest
    /// of the layouts (W for the input projection, then U forward, or Uᵀ backward), so one region
    /// serves each in turn.
    static func workspaceCount(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
        let H = d.units
        guard cell.gates > 1, H > SmallGEMM.widestColumns else { return 0 }
        let G = cell.gates
        return max(
            rnnkit_cell_packed_count(G, H), rnnkit_panels_count(G * H, H), rnnkit_panels_count(H, G * H),
            rnnkit_panels_count(G * H, d.inputs))
    }

    /// Packs the input kernel `W [D, G·H]` into panels of its `G·H` columns, `D` deep.
    static func packInputKernel<S>(inputs D: Int, columns: Int, kernel: UnsafePointer<S>, into packed: UnsafeMutablePointer<S>) -> Bool {
        rnnkit_pack_panels(columns, D, float(kernel), 1, columns, float(packed)) != 0
    }

    /// Whether the forward step is fused into the product: LSTM and GRU (reset-after) with tanh
    /// and sigmoid; otherwise the product runs packed alone and the step after it.
    static func fusesStep(_ cell: RecurrentCell) -> Bool {
        switch cell {
        case .lstm(.tanh, .sigmoid), .gru(.tanh, .sigmoid, true): return true
        default: return false
        }
    }

    /// Packs `U [H, G·H]` for the forward pass: the LSTM's fused layout, or plain panels of `G·H`
    /// columns; false (nothing packed) where the forward pass does not run packed.
    static func packForward<S>(_ cell: RecurrentCell, units H: Int, recurrentKernel: UnsafePointer<S>, into packed: UnsafeMutablePointer<S>)
        -> Bool
    {
        let u = float(recurrentKernel), p = float(packed)
        if fusesStep(cell) { return rnnkit_cell_pack(cell.gates, H, u, p) != 0 }
        // GRU reset-before multiplies two column ranges by different states; a panel would straddle them.
        guard !cell.resetsBeforeProduct else { return false }
        return rnnkit_pack_panels(cell.gates * H, H, u, 1, cell.gates * H, p) != 0
    }

    /// Packs `Uᵀ` for the backward pass: panels of `H` columns, `G·H` deep.
    static func packBackward<S>(
        _ cell: RecurrentCell, units H: Int, recurrentKernel: UnsafePointer<S>, into packed: UnsafeMutablePointer<S>
    ) -> Bool {
        rnnkit_pack_panels(H, cell.gates * H, float(recurrentKernel), cell.gates * H, 1, float(packed)) != 0
    }

    /// One fused LSTM step (see `rnnkit_lstm_forward_step`); `previousState` nil for h = 0.
    static func lstmStep<S>(
        batch: Int, units: Int, packed: UnsafePointer<S>, previousState: UnsafePointer<S>?, previousCell: UnsafePointer<S>,
        gates: UnsafeMutablePointer<S>, cell: UnsafeMutablePointer<S>, activatedCell: UnsafeMutablePointer<S>,
        state: UnsafeMutablePointer<S>
    ) {
        let done = rnnkit_lstm_forward_step(
            batch, units, float(packed), previousState.map(float), float(previousCell),
            float(gates), float(cell), float(activatedCell), float(state))
        precondition(done != 0, "the fused LSTM step was chosen where it does not run")
    }

    /// One fused GRU (reset-after) step (see `rnnkit_gru_forward_step`); `previousForProduct` nil for h = 0.
    static func gruStep<S>(
        batch: Int, units: Int, packed: UnsafePointer<S>, recurrentBias: UnsafePointer<S>, previousForProduct: UnsafePointer<S>?,
        previousState: UnsafePointer<S>, gates: UnsafeMutablePointer<S>, auxiliary: UnsafeMutablePointer<S>, state: UnsafeMutablePointer<S>
    ) {
        let done = rnnkit_gru_forward_step(
            batch, units, float(packed), float(recurrentBias), previousForProduct.map(float),
            float(previousState), float(gates), float(auxiliary), float(state))
        precondition(done != 0, "the fused GRU step was chosen where it does not run")
    }

    /// `C [rows, columns] (+)= A [rows, depth] · P[first..<first + depth]` for panels packed `panelDepth` deep.
    static func product<S>(
        rows: Int, columns: Int, depth: Int, a: UnsafePointer<S>, lda: Int, packed: UnsafePointer<S>, first: Int = 0,
        panelDepth: Int, accumulate: Bool, c: UnsafeMutablePointer<S>, ldc: Int
    ) {
        let done = rnnkit_packed_product(
            rows, columns, depth, float(a), lda, float(packed) + first * rnnkit_panel_width(), panelDepth,
            accumulate ? 1 : 0, float(c), ldc)
        precondition(done != 0, "the packed product was chosen where it does not run")
    }

    /// A weight gradient `C [rows, columns] (+)= Aᵀ·B` (A stored `[depth, rows]`, B `[depth, columns]`)
    /// by `rnnkit_transposed_a_product`, for at most 256 rows (a layer's inputs or units), where
    /// it outruns OpenBLAS; false, doing nothing, otherwise.
    /// With `columnSums`, B's column sums (a bias gradient) are written there too.
    static func transposedAProduct<S>(
        rows: Int, columns: Int, depth: Int, a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int, accumulate: Bool,
        c: UnsafeMutablePointer<S>, ldc: Int, columnSums: UnsafeMutablePointer<S>? = nil
    ) -> Bool {
        rows <= 256
            && rnnkit_transposed_a_product(
                rows, columns, depth, float(a), lda, float(b), ldb, accumulate ? 1 : 0, float(c), ldc,
                columnSums.map(float)) != 0
    }

    private static func float<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
    private static func float<S>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }
}
