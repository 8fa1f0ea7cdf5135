import RealModule

/// The reference: the same contract as `BLASBackend`, written as plain loops over samples,
/// steps and units, one equation at a time, with the C library's elementary functions.
/// It makes no attempt at speed: nothing in it is clever, so it is what the tests trust
/// and what the benchmarks measure the engine against.
public struct NaiveBackend: Backend {
    public init() {}

    public var name: String { "naive" }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simpleRNNForward<S: BLASScalar>(
        _ d: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        states: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        for t in 0..<T {
            for b in 0..<B {
                for j in 0..<H {
                    // z = b_j + Σ_i x[t, b, i] · W[i, j] + Σ_k h[t−1, b, k] · U[k, j]
                    var z = bias[j]
                    for i in 0..<D { z += x[(t * B + b) * D + i] * kernel[i * H + j] }
                    if t > 0 {
                        for k in 0..<H { z += states[((t - 1) * B + b) * H + k] * recurrentKernel[k * H + j] }
                    }
                    states[(t * B + b) * H + j] = Self.apply(activation, z)
                }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simpleRNNBackward<S: BLASScalar>(
        _ d: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, states: UnsafePointer<S>,
        kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>,
        stateGradient: UnsafePointer<S>, sequenceGradient: Bool,
        kernelGradient: UnsafeMutablePointer<S>, recurrentKernelGradient: UnsafeMutablePointer<S>,
        biasGradient: UnsafeMutablePointer<S>, inputGradient: UnsafeMutablePointer<S>?,
        workspace: UnsafeMutablePointer<S>
    ) {
        let (B, T, D, H) = (d.batch, d.steps, d.inputs, d.units)
        kernelGradient.update(repeating: 0, count: D * H)
        recurrentKernelGradient.update(repeating: 0, count: H * H)
        biasGradient.update(repeating: 0, count: H)
        inputGradient?.update(repeating: 0, count: T * B * D)
        // dh holds d loss / d h_t for the step being processed: [B, H]; dz likewise.
        let dh = workspace, dz = workspace + B * H
        for i in 0..<(B * H) {
            dh[i] = sequenceGradient ? stateGradient[(T - 1) * B * H + i] : stateGradient[i]
        }
        for t in stride(from: T - 1, through: 0, by: -1) {
            for b in 0..<B {
                for j in 0..<H {
                    let h = states[(t * B + b) * H + j]
                    dz[b * H + j] = dh[b * H + j] * Self.derivative(activation, output: h)
                }
            }
            for b in 0..<B {
                for j in 0..<H {
                    let g = dz[b * H + j]
                    biasGradient[j] += g
                    for i in 0..<D { kernelGradient[i * H + j] += x[(t * B + b) * D + i] * g }
                    if t > 0 {
                        for k in 0..<H { recurrentKernelGradient[k * H + j] += states[((t - 1) * B + b) * H + k] * g }
                    }
                    if let inputGradient {
                        for i in 0..<D { inputGradient[(t * B + b) * D + i] += g * kernel[i * H + j] }
                    }
                }
            }
            guard t > 0 else { break }
            // d loss / d h_{t−1} = dz_t · Uᵀ (+ the loss's own gradient at t−1 for sequences)
            for b in 0..<B {
                for k in 0..<H {
                    var sum: S = sequenceGradient ? stateGradient[((t - 1) * B + b) * H + k] : 0
                    for j in 0..<H { sum += dz[b * H + j] * recurrentKernel[k * H + j] }
                    dh[b * H + k] = sum
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

    private static func apply<S: BLASScalar>(_ activation: Activation, _ z: S) -> S {
        switch activation {
        case .linear: return z
        case .tanh: return S.tanh(z)
        case .relu: return z > 0 ? z : 0
        case .sigmoid: return 1 / (1 + S.exp(-z))
        case .softmax: preconditionFailure("softmax is not elementwise")
        }
    }

    private static func derivative<S: BLASScalar>(_ activation: Activation, output h: S) -> S {
        switch activation {
        case .linear: return 1
        case .tanh: return 1 - h * h
        case .relu: return h > 0 ? 1 : 0
        case .sigmoid: return h * (1 - h)
        case .softmax: preconditionFailure("softmax is not elementwise")
        }
    }
}
