import CSmallKernels
import RealModule

/// The optimisers' update steps over the parameter arena, one call a step. Requirements (with the
/// shared bodies below, `Float`'s Adam in C) so that generic optimiser code lands in a body
/// specialised for the concrete scalar; behind `@_spi(Kernels)`, as they are not part of RNNKit's
/// promise (write an optimiser against `Optimizer` instead). A new optimiser's step goes here.
public protocol OptimizerKernels: Real, BinaryFloatingPoint {
    @_spi(Kernels) static func adamStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, m: UnsafeMutablePointer<Self>,
        v: UnsafeMutablePointer<Self>, count: Int, oneMinusBeta1: Self, oneMinusBeta2: Self, epsilon: Self, stepSize: Self)
    @_spi(Kernels) static func sgdStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, velocity: UnsafeMutablePointer<Self>?,
        count: Int, learningRate: Self, momentum: Self, nesterov: Bool)
    @_spi(Kernels) static func rmspropStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, meanSquare: UnsafeMutablePointer<Self>,
        count: Int, learningRate: Self, rho: Self, oneMinusRho: Self, epsilon: Self)
}

extension OptimizerKernels {
    /// One Adam update of `count` weights, Keras's form:
    /// `m += (g − m)(1 − β1)`, `v += (g² − v)(1 − β2)`, `w −= stepSize · m / (√v + ε)`,
    /// where the caller folds the bias corrections into `stepSize` and passes `1 − β` computed in
    /// Double (in Float, `1 − Float(0.999)` is off by 1.3e-5 relative).
    @_spi(Kernels) public static func adamStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, m: UnsafeMutablePointer<Self>,
        v: UnsafeMutablePointer<Self>, count: Int, oneMinusBeta1: Self, oneMinusBeta2: Self, epsilon: Self, stepSize: Self
    ) {
        for i in 0..<count {
            let g = gradients[i]
            m[i] += (g - m[i]) * oneMinusBeta1
            v[i] += (g * g - v[i]) * oneMinusBeta2
            weights[i] -= stepSize * m[i] / (v[i].squareRoot() + epsilon)
        }
    }

    /// One SGD update, Keras's form. Without `velocity`: `w −= lr · g`. With it:
    /// `v = momentum · v − lr · g`, then `w += v`, or with Nesterov `w += momentum · v − lr · g`.
    @_spi(Kernels) public static func sgdStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, velocity: UnsafeMutablePointer<Self>?,
        count: Int, learningRate: Self, momentum: Self, nesterov: Bool
    ) {
        guard let velocity else {
            for i in 0..<count { weights[i] -= learningRate * gradients[i] }
            return
        }
        for i in 0..<count {
            let v = momentum * velocity[i] - learningRate * gradients[i]
            velocity[i] = v
            weights[i] += nesterov ? momentum * v - learningRate * gradients[i] : v
        }
    }

    /// One RMSprop update, Keras 3's form (ε inside the square root):
    /// `s = ρ·s + (1 − ρ)·g²`, `w −= lr · g / √(s + ε)`.
    @_spi(Kernels) public static func rmspropStep(
        weights: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>, meanSquare: UnsafeMutablePointer<Self>,
        count: Int, learningRate: Self, rho: Self, oneMinusRho: Self, epsilon: Self
    ) {
        for i in 0..<count {
            let g = gradients[i]
            meanSquare[i] = rho * meanSquare[i] + oneMinusRho * g * g
            weights[i] -= learningRate * g / (meanSquare[i] + epsilon).squareRoot()
        }
    }
}

extension Float: OptimizerKernels {
    // The optimiser's step and the finiteness check run once per training step on one thread
    // while the other workers wait, and the bias gradients' sums in every shard; in C they are
    // vectorised, where the generic loops (which must allow the arrays to overlap, and a serial
    // chain of adds) were not. Same roundings, same order of additions.
    @_spi(Kernels) public static func adamStep(
        weights: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, count: Int, oneMinusBeta1: Float, oneMinusBeta2: Float, epsilon: Float, stepSize: Float
    ) {
        rnnkit_adam_step(weights, gradients, m, v, count, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize)
    }
}

extension Double: OptimizerKernels {}
