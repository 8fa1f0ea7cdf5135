import RealModule

/// The reference: the same contract as `BLASBackend`, written as plain loops over samples,
/// steps and units, one equation at a time, with the C library's elementary functions.
/// It makes no attempt at speed: nothing in it is clever, so it is what the tests trust
/// and what the benchmarks measure the engine against.
public struct NaiveBackend: Backend {
    public init() {}

    public var name: String { "naive" }

    public func recurrentWorkspaceCount(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
        // Backward: dh and dc [B, H]; per sample dG_x, dG_u [G·H], d(r ⊙ h) and the direct part [H].
        // Forward: two [G·H].
        2 * d.batch * d.units + 2 * cell.gates * d.units + 2 * d.units
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentForward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, workspace: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        let GH = cell.gates * H
        let (W, U, bias) = (weights.kernel, weights.recurrentKernel, weights.bias)
        // Per sample: `input[j] = b_j + Σ_i x_i · W[i, j]`, `recurrent[j] = (b′_j) + Σ_k h_{t−1, k} · U[k, j]`.
        let input = workspace, recurrent = workspace + GH
        let dropout = tape.recurrentDropout
        for t in 0..<T {
            for b in 0..<B {
                let row = (t * B + b)
                let xt = x + row * D
                func previousState(_ k: Int) -> S { t > 0 ? tape.states[((t - 1) * B + b) * H + k] : initialState?.h[b * H + k] ?? 0 }
                // Recurrent dropout: what meets U is h_{t−1} ⊙ m (the blend and masked steps read h_{t−1}).
                func previousForU(_ k: Int) -> S { previousState(k) * (dropout?.mask[b * H + k] ?? 1) }
                if let dropout { for k in 0..<H { dropout.droppedStates[row * H + k] = previousForU(k) } }
                func previousCell(_ k: Int) -> S { t > 0 ? tape.cellStates![((t - 1) * B + b) * H + k] : initialState?.c?[b * H + k] ?? 0 }
                if let mask, mask[row] == 0 {
                    // A masked step: the state (and the cell state) carried over unchanged.
                    (tape.gates + row * GH).update(repeating: 0, count: GH)
                    for k in 0..<H {
                        tape.states[row * H + k] = previousState(k)
                        if let cells = tape.cellStates { cells[row * H + k] = previousCell(k) }
                    }
                    continue
                }
                for j in 0..<GH {
                    var sum = bias[j]
                    for i in 0..<D { sum += xt[i] * W[i * GH + j] }
                    input[j] = sum
                    var r: S = cell.hasRecurrentBias ? bias[GH + j] : 0
                    for k in 0..<H { r += previousForU(k) * U[k * GH + j] }
                    recurrent[j] = r
                }
                let gates = tape.gates + row * GH, state = tape.states + row * H
                switch cell {
                case .simple(let f):
                    for j in 0..<H { state[j] = Self.apply(f, input[j] + recurrent[j]) }
                case .lstm(let f, let sigma):
                    for j in 0..<H {
                        let i = Self.apply(sigma, input[j] + recurrent[j])
                        let forget = Self.apply(sigma, input[H + j] + recurrent[H + j])
                        let candidate = Self.apply(f, input[2 * H + j] + recurrent[2 * H + j])
                        let o = Self.apply(sigma, input[3 * H + j] + recurrent[3 * H + j])
                        let c = forget * previousCell(j) + i * candidate
                        let activated = Self.apply(f, c)
                        gates[j] = i; gates[H + j] = forget; gates[2 * H + j] = candidate; gates[3 * H + j] = o
                        tape.cellStates![row * H + j] = c
                        tape.auxiliary![row * H + j] = activated
                        state[j] = o * activated
                    }
                case .gru(let f, let sigma, let resetAfter):
                    for j in 0..<H {
                        gates[j] = Self.apply(sigma, input[j] + recurrent[j])
                        gates[H + j] = Self.apply(sigma, input[H + j] + recurrent[H + j])
                    }
                    for j in 0..<H {
                        let r = gates[H + j]
                        if resetAfter {
                            tape.auxiliary![row * H + j] = recurrent[2 * H + j]
                            gates[2 * H + j] = Self.apply(f, input[2 * H + j] + r * recurrent[2 * H + j])
                        } else {
                            // h̃ = f(x·W_h + b_h + (r ⊙ h_{t−1}) · U_h)
                            var sum = input[2 * H + j]
                            for k in 0..<H { sum += gates[H + k] * previousForU(k) * U[k * GH + 2 * H + j] }
                            tape.auxiliary![row * H + j] = r * previousForU(j)
                            gates[2 * H + j] = Self.apply(f, sum)
                        }
                    }
                    for j in 0..<H {
                        let z = gates[j]
                        state[j] = z * previousState(j) + (1 - z) * gates[2 * H + j]
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
        let GH = cell.gates * H
        let (W, U) = (weights.kernel, weights.recurrentKernel)
        gradients.kernel.update(repeating: 0, count: D * GH)
        gradients.recurrentKernel.update(repeating: 0, count: H * GH)
        gradients.bias.update(repeating: 0, count: cell.biasShape(units: H).reduce(1, *))
        inputGradient?.update(repeating: 0, count: T * B * D)
        // dh [B, H]: d loss / d h_t for the step being processed; dc [B, H]: d loss / d c_t (LSTM).
        let dh = workspace, dc = workspace + B * H
        // Per sample: d loss / d the gates' pre-activations, as they enter x·W (dx) and h·U (du).
        let dx = workspace + 2 * B * H, du = dx + GH, dReset = du + GH, direct = dReset + H
        for i in 0..<(B * H) {
            dh[i] = sequenceGradient ? stateGradient[(T - 1) * B * H + i] : stateGradient[i]
            dc[i] = finalCellGradient?[i] ?? 0
        }
        let dropout = tape.recurrentDropout
        for t in stride(from: T - 1, through: 0, by: -1) {
            for b in 0..<B {
                let row = t * B + b
                let gates = tape.gates + row * GH, g = dh + b * H
                func previousState(_ k: Int) -> S { t > 0 ? tape.states[((t - 1) * B + b) * H + k] : initialState?.h[b * H + k] ?? 0 }
                // Recurrent dropout's mask, by which what reaches h_{t−1} through U is multiplied.
                func keep(_ k: Int) -> S { dropout?.mask[b * H + k] ?? 1 }
                if let mask, mask[row] == 0 {
                    // h_t = h_{t−1} (and c_t = c_{t−1}): their gradients pass to the step before as they are.
                    if t > 0, sequenceGradient {
                        for k in 0..<H { g[k] += stateGradient[((t - 1) * B + b) * H + k] }
                    }
                    if t == 0, let initialStateGradient {
                        for k in 0..<H {
                            initialStateGradient.h[b * H + k] = g[k]
                            initialStateGradient.c?[b * H + k] = dc[b * H + k]
                        }
                    }
                    continue
                }
                // `direct[k]`: the part of d loss / d h_{t−1} that does not pass through U.
                direct.update(repeating: 0, count: H)
                switch cell {
                case .simple(let f):
                    for j in 0..<H { dx[j] = g[j] * Self.derivative(f, output: tape.states[row * H + j]) }
                    for j in 0..<GH { du[j] = dx[j] }
                case .lstm(let f, let sigma):
                    for j in 0..<H {
                        let (i, forget, candidate, o) = (gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j])
                        let activated = tape.auxiliary![row * H + j]
                        let previousCell: S = t > 0 ? tape.cellStates![((t - 1) * B + b) * H + j] : initialState?.c?[b * H + j] ?? 0
                        let dcell = g[j] * o * Self.derivative(f, output: activated) + dc[b * H + j]
                        dx[j] = dcell * candidate * Self.derivative(sigma, output: i)
                        dx[H + j] = dcell * previousCell * Self.derivative(sigma, output: forget)
                        dx[2 * H + j] = dcell * i * Self.derivative(f, output: candidate)
                        dx[3 * H + j] = g[j] * activated * Self.derivative(sigma, output: o)
                        dc[b * H + j] = dcell * forget
                    }
                    for j in 0..<GH { du[j] = dx[j] }
                case .gru(let f, let sigma, let resetAfter):
                    for j in 0..<H {
                        let (z, candidate) = (gates[j], gates[2 * H + j])
                        dx[j] = g[j] * (previousState(j) - candidate) * Self.derivative(sigma, output: z)
                        dx[2 * H + j] = g[j] * (1 - z) * Self.derivative(f, output: candidate)
                        direct[j] = g[j] * z
                    }
                    if resetAfter {
                        for j in 0..<H {
                            let r = gates[H + j]
                            dx[H + j] = dx[2 * H + j] * tape.auxiliary![row * H + j] * Self.derivative(sigma, output: r)
                        }
                        for j in 0..<GH { du[j] = dx[j] }
                        for j in 0..<H { du[2 * H + j] = dx[2 * H + j] * gates[H + j] }
                    } else {
                        // d(r ⊙ h_{t−1})_k = Σ_j dz_h[j] · U_h[k, j]
                        for k in 0..<H {
                            var sum: S = 0
                            for j in 0..<H { sum += dx[2 * H + j] * U[k * GH + 2 * H + j] }
                            dReset[k] = sum
                        }
                        for k in 0..<H {
                            dx[H + k] = dReset[k] * previousState(k) * keep(k) * Self.derivative(sigma, output: gates[H + k])
                            direct[k] += dReset[k] * gates[H + k] * keep(k)
                        }
                        // The candidate's block of U sees r ⊙ h_{t−1}, not h_{t−1}: it is added below.
                        for j in 0..<GH { du[j] = j < 2 * H ? dx[j] : 0 }
                        for k in 0..<H {
                            for j in 0..<H { gradients.recurrentKernel[k * GH + 2 * H + j] += tape.auxiliary![row * H + k] * dx[2 * H + j] }
                        }
                    }
                }
                // Accumulate the weights' gradients and d loss / d x_t.
                for j in 0..<GH {
                    gradients.bias[j] += dx[j]
                    if cell.hasRecurrentBias { gradients.bias[GH + j] += du[j] }
                    for i in 0..<D { gradients.kernel[i * GH + j] += x[row * D + i] * dx[j] }
                    for k in 0..<H { gradients.recurrentKernel[k * GH + j] += previousState(k) * keep(k) * du[j] }
                }
                if let inputGradient {
                    for i in 0..<D {
                        var sum: S = 0
                        for j in 0..<GH { sum += dx[j] * W[i * GH + j] }
                        inputGradient[row * D + i] = sum
                    }
                }
                guard t > 0 || initialStateGradient != nil else { continue }
                // d loss / d h_{t−1} = direct + (du · Uᵀ) ⊙ m (+ the loss's own gradient at t − 1 for sequences)
                for k in 0..<H {
                    var throughU: S = 0
                    for j in 0..<GH { throughU += du[j] * U[k * GH + j] }
                    g[k] = direct[k] + (t > 0 && sequenceGradient ? stateGradient[((t - 1) * B + b) * H + k] : 0) + throughU * keep(k)
                }
                if t == 0, let initialStateGradient {
                    for k in 0..<H {
                        initialStateGradient.h[b * H + k] = g[k]
                        initialStateGradient.c?[b * H + k] = dc[b * H + k]
                    }
                }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseForward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        preActivation: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>
    ) {
        for r in 0..<rows {
            for j in 0..<units {
                var z = bias[j]
                for i in 0..<inputs { z += x[r * inputs + i] * kernel[i * units + j] }
                preActivation[r * units + j] = z
            }
        }
        for r in 0..<rows {
            if activation == .softmax {
                var maximum = preActivation[r * units]
                for j in 0..<units { maximum = max(maximum, preActivation[r * units + j]) }
                var sum: S = 0
                for j in 0..<units { sum += S.exp(preActivation[r * units + j] - maximum) }
                for j in 0..<units { output[r * units + j] = S.exp(preActivation[r * units + j] - maximum) / sum }
            } else {
                for j in 0..<units { output[r * units + j] = Self.apply(activation, preActivation[r * units + j]) }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func denseBackward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, preActivationGradient: UnsafePointer<S>,
        kernelGradient: UnsafeMutablePointer<S>, biasGradient: UnsafeMutablePointer<S>,
        inputGradient: UnsafeMutablePointer<S>?
    ) {
        for i in 0..<inputs {
            for j in 0..<units {
                var sum: S = 0
                for r in 0..<rows { sum += x[r * inputs + i] * preActivationGradient[r * units + j] }
                kernelGradient[i * units + j] = sum
            }
        }
        for j in 0..<units {
            var sum: S = 0
            for r in 0..<rows { sum += preActivationGradient[r * units + j] }
            biasGradient[j] = sum
        }
        if let inputGradient {
            for r in 0..<rows {
                for i in 0..<inputs {
                    var sum: S = 0
                    for j in 0..<units { sum += preActivationGradient[r * units + j] * kernel[i * units + j] }
                    inputGradient[r * inputs + i] = sum
                }
            }
        }
    }

    // The activations and their derivatives are written out here again, not taken from the
    // engine's kernels, so that the reference shares no arithmetic with what it checks.
    private static func apply<S: BLASScalar>(_ activation: Activation, _ z: S) -> S {
        switch activation {
        case .linear: return z
        case .tanh: return S.tanh(z)
        case .relu: return z > 0 ? z : 0
        case .sigmoid: return 1 / (1 + S.exp(-z))
        case .hardSigmoid: return min(max(z / 6 + 0.5, 0), 1)
        case .softmax: preconditionFailure("softmax is not elementwise")
        }
    }

    private static func derivative<S: BLASScalar>(_ activation: Activation, output y: S) -> S {
        switch activation {
        case .linear: return 1
        case .tanh: return 1 - y * y
        case .relu: return y > 0 ? 1 : 0
        case .sigmoid: return y * (1 - y)
        case .hardSigmoid: return y > 0 && y < 1 ? 1 / 6 : 0
        case .softmax: preconditionFailure("softmax is not elementwise")
        }
    }
}
