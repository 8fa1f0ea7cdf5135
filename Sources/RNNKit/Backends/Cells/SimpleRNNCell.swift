/// Keras's `SimpleRNN`: `h_t = f(x_t·W + h_{t−1}·U + b)`, one gate (G = 1); the tape's gates are
/// the states themselves.
///
/// A small tanh layer (the notebook's models) runs its product and activation fused in the small
/// kernels, and, with no mask and no recurrent dropout, its whole recurrence in one call.
struct SimpleRNNCell: RecurrentCellExecutor {
    let activation: Activation

    var gates: Int { 1 }

    // MARK: Engine

    @inline(__always)
    func forward<S: BLASScalar>(_ step: ForwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units)
        // z_t += h_{t−1} [B, H] · U [H, H]   (h_0 = 0 adds nothing), then f; for a small tanh
        // layer in one pass, the activation applied before the product leaves registers.
        if step.hasPrevious, activation == .tanh, products.backend.kernels == .auto,
            SmallGEMM.suits(n: H, k: H, m: B, transposeB: false),
            S.smallGEMMTanh(
                m: B, n: H, k: H, a: step.previousForU, lda: H, b: products.recurrentKernel, ldb: H,
                c: step.gates, ldc: H)
        {
            return
        }
        if step.hasPrevious { products.addStateProduct(step.previousForU, columns: H, into: step.gates) }
        S.activateInPlace(activation, step.gates, rows: B, columns: H)
    }

    @inline(__always)
    func backward<S: BLASScalar>(_ step: BackwardStep<S>, _ products: RecurrentProducts<S>) {
        let (B, H) = (step.batch, step.units)
        // dz_t = (dh_t + g) ⊙ f′(h_t)
        S.addAndMultiplyByActivationDerivative(
            activation, outputs: step.state, upstream: step.upstream, carried: step.carried, into: step.inputGateGradient,
            count: B * H)
        if step.carriesBack {
            // g [B, H] = dz_t [B, H] · Uᵀ [H, H]   (× m under recurrent dropout)
            products.carry(step.inputGateGradient, lda: H, first: 0, columns: H, accumulate: false, into: step.carriedOut)
            if let mask = step.dropoutMask {
                S.combine(step.carriedOut, mask, into: step.carriedOut, count: B * H, multiply: true, scale: 1)
            }
        }
    }

    /// The whole tanh recurrence in the small kernels (`rnnkit_rnn_tanh_forward`), where it fits.
    func forwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, gates: UnsafeMutablePointer<S>,
        initialState: UnsafePointer<S>?
    ) -> Bool {
        let d = sequence.dimensions
        return runsWholeSequence(sequence)
            && S.tanhRecurrence(
                steps: d.steps, batch: d.batch, units: d.units, gates: gates,
                recurrentKernel: sequence.recurrentKernel, initialState: initialState)
    }

    func backwardWholeSequence<S: BLASScalar>(
        _ sequence: WholeSequence<S>, states: UnsafePointer<S>, upstream: UnsafePointer<S>,
        sequenceGradient: Bool, gateGradient: UnsafeMutablePointer<S>,
        carried: UnsafeMutablePointer<S>, toStart: Bool
    ) -> Bool {
        let d = sequence.dimensions
        return runsWholeSequence(sequence)
            && S.tanhRecurrenceBackward(
                steps: d.steps, batch: d.batch, units: d.units, states: states, upstream: upstream,
                sequence: sequenceGradient, recurrentKernel: sequence.recurrentKernel,
                gateGradient: gateGradient, carried: carried, toStart: toStart)
    }

    /// A tanh layer small enough for the small kernels, with no mask and no recurrent dropout, in `.auto`.
    @inline(__always)
    private func runsWholeSequence<S>(_ sequence: WholeSequence<S>) -> Bool {
        guard sequence.kernels == .auto, !sequence.masked, !sequence.dropout, activation == .tanh else { return false }
        let d = sequence.dimensions
        return SmallGEMM.suits(n: d.units, k: d.units, m: d.batch, transposeB: true)
    }

    // MARK: Reference

    func referenceForward<S: BLASScalar>(_ step: ReferenceForwardStep<S>) {
        for j in 0..<step.units { step.state[j] = Reference.apply(activation, step.input[j] + step.recurrent[j]) }
    }

    func referenceBackward<S: BLASScalar>(_ step: ReferenceBackwardStep<S>) {
        for j in 0..<step.units {
            step.dx[j] = step.stateGradient[j] * Reference.derivative(activation, output: step.state[j])
            step.du[j] = step.dx[j]
        }
    }
}
