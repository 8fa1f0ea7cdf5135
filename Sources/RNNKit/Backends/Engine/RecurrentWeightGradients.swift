extension RecurrentBackwardPass {
    /// `dW`, `dU`, the bias's gradient and `dX`, one long product each over the steps that did
    /// work (the gate gradients of wholly masked steps are zero): from the first to the last step
    /// with an unmasked sample.
    func weightGradients<Cell: RecurrentCellExecutor>(_ cell: Cell) {
        let (B, T, D, H) = (dimensions.batch, dimensions.steps, dimensions.inputs, dimensions.units)
        let GH = kind.gates * H, stepGates = B * GH, w = workspace
        let active = SequenceMask.activeSteps(mask, steps: T, batch: B)
        let first = active.lowerBound, rows = active.count * B
        guard rows > 0 else {
            // Every step masked: nothing to learn, and no gradient for the input.
            gradients.kernel.update(repeating: 0, count: D * GH)
            gradients.recurrentKernel.update(repeating: 0, count: H * GH)
            gradients.bias.update(repeating: 0, count: kind.biasShape(units: H).reduce(1, *))
            inputGradient?.update(repeating: 0, count: T * B * D)
            return
        }
        let dGates = UnsafePointer(w.inputGateGradient) + first * stepGates
        let dRecurrent = UnsafePointer(w.recurrentGateGradient) + first * stepGates
        // RNNKit's own products (reading A and B where they lie) for large gated layers' short sides, else OpenBLAS's.
        let products = WeightGradientStep(
            backend: backend, ownProducts: PackedRecurrence.applies(S.self, kind, units: H, kernels: backend.kernels),
            units: H, rows: rows, gateGradient: dGates, auxiliary: tape.auxiliary.map { UnsafePointer($0 + first * B * H) },
            recurrentKernelGradient: gradients.recurrentKernel)
        // dW [D, G·H] = Xᵀ [D, rows] · dG [rows, G·H]
        let biasDone = products.product(
            m: D, n: GH, k: rows, a: x + first * B * D, lda: D, b: dGates, ldb: GH,
            c: gradients.kernel, ldc: GH, columnSums: gradients.bias)
        recurrentKernelGradient(cell, products, active: active)
        cell.finishRecurrentKernelGradient(products)
        // db [G·H] = Σ rows of dG (GRU reset-after: and the recurrent bias from the recurrent side)
        if !biasDone { S.sumRows(dGates, rows: rows, columns: GH, into: gradients.bias) }
        if kind.hasRecurrentBias { S.sumRows(dRecurrent, rows: rows, columns: GH, into: gradients.bias + GH) }
        // dX [rows, D] = dG [rows, G·H] · Wᵀ [G·H, D]; zero outside the range.
        if let inputGradient {
            inputGradient.update(repeating: 0, count: first * B * D)
            backend.gemm(
                transposeA: false, transposeB: true, m: rows, n: D, k: GH, alpha: 1, a: dGates, lda: GH,
                b: weights.kernel, ldb: GH, beta: 0, c: inputGradient + first * B * D, ldc: D)
            (inputGradient + active.upperBound * B * D).update(repeating: 0, count: (T - active.upperBound) * B * D)
        }
    }

    /// dU [H, n] = H_prevᵀ · dG over the working steps, for the `n` columns that read `h_{t−1}`;
    /// h_0 = 0 contributes nothing.
    private func recurrentKernelGradient<Cell: RecurrentCellExecutor>(
        _ cell: Cell, _ products: WeightGradientStep<S>, active: Range<Int>
    ) {
        let (B, H) = (dimensions.batch, dimensions.units)
        let GH = kind.gates * H, stepState = B * H, stepGates = B * GH
        let columns = cell.stateColumns(units: H), dU = gradients.recurrentKernel
        let dRecurrentAll = UnsafePointer(workspace.recurrentGateGradient)
        let first = active.lowerBound, firstWithPrevious = max(first, 1)
        // Recurrent dropout: the products read h_{t−1} ⊙ m, kept per step (h_0 ⊙ m at step 0).
        let dropout = tape.recurrentDropout
        let start = dropout != nil && initialState != nil ? first : firstWithPrevious
        if start < active.upperBound {
            let previous =
                dropout.map { UnsafePointer($0.droppedStates + start * stepState) }
                ?? UnsafePointer(tape.states + (start - 1) * stepState)
            products.product(
                m: H, n: columns, k: (active.upperBound - start) * B, a: previous, lda: H,
                b: dRecurrentAll + start * stepGates, ldb: GH, c: dU, ldc: GH)
        } else {
            for k in 0..<H { (dU + k * GH).update(repeating: 0, count: columns) }
        }
        if dropout == nil, let initialState, first == 0 {
            // A given h_0 meets the first step's gate gradients too: dU += h_0ᵀ [H, B] · dG_0 [B, n].
            products.product(
                m: H, n: columns, k: B, a: initialState.h, lda: H, b: dRecurrentAll, ldb: GH, beta: 1,
                c: dU, ldc: GH)
        }
    }
}
