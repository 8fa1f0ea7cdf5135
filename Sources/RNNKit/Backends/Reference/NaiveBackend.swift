import RealModule

/// The reference: the same contract as `BLASBackend`, written as plain loops over samples,
/// steps and units, one equation at a time, with the C library's elementary functions.
/// It makes no attempt at speed: nothing in it is clever, so it is what the tests trust
/// and what the benchmarks measure the engine against.
public struct NaiveBackend: Backend {
    /// The reference backend; it has no settings.
    public init() {}

    public var name: String { "naive" }

    public func recurrentWorkspaceCount(_ cell: RecurrentCell, _ d: RNNDimensions) -> Int {
        // Backward: dh and dc [B, H]; per sample dG_x, dG_u [G·H], a cell's scratch and the direct part [H].
        // Forward: two [G·H]. Both: zeros [H] for a missing initial state, h_{t−1} ⊙ m [H].
        2 * d.batch * d.units + 2 * cell.gates * d.units + 4 * d.units
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentForward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, workspace: UnsafeMutablePointer<S>
    ) {
        cell.run(
            ReferenceForwardPass(
                kind: cell, dimensions: d, x: x, weights: weights, mask: mask, initialState: initialState,
                tape: tape, workspace: workspace))
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func recurrentBackward<S: BLASScalar>(
        _ cell: RecurrentCell, _ d: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, stateGradient: UnsafePointer<S>,
        sequenceGradient: Bool, finalCellGradient: UnsafePointer<S>?, gradients: RecurrentGradients<S>,
        inputGradient: UnsafeMutablePointer<S>?, initialStateGradient: RecurrentStateGradient<S>?, workspace: UnsafeMutablePointer<S>
    ) {
        cell.run(
            ReferenceBackwardPass(
                kind: cell, dimensions: d, x: x, weights: weights, mask: mask, initialState: initialState, tape: tape,
                stateGradient: stateGradient, sequenceGradient: sequenceGradient, finalCellGradient: finalCellGradient,
                gradients: gradients, inputGradient: inputGradient, initialStateGradient: initialStateGradient, workspace: workspace))
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
                for j in 0..<units { output[r * units + j] = Reference.apply(activation, preActivation[r * units + j]) }
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
}

/// The reference's arithmetic.
enum Reference {
    // The activations and their derivatives are written out here again, not taken from the
    // engine's kernels, so that the reference shares no arithmetic with what it checks.
    static func apply<S: BLASScalar>(_ activation: Activation, _ z: S) -> S {
        switch activation {
        case .linear: return z
        case .tanh: return S.tanh(z)
        case .relu: return z > 0 ? z : 0
        case .sigmoid: return 1 / (1 + S.exp(-z))
        case .hardSigmoid: return min(max(z / 6 + 0.5, 0), 1)
        case .softmax: preconditionFailure("softmax is not elementwise")
        }
    }

    static func derivative<S: BLASScalar>(_ activation: Activation, output y: S) -> S {
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
