/// The layers' own kernels beside the engine's: dropout's masks and Keras's Masking, one call a
/// batch. Behind `@_spi(Kernels)`: not part of RNNKit's promise.
public protocol SequenceKernels: BinaryFloatingPoint {
    @_spi(Kernels) static func drawDropoutMask(
        _ values: UnsafeMutablePointer<Self>, count: Int, rate: Double, generator: inout RandomGenerator)
    @_spi(Kernels) static func maskSteps(
        _ x: UnsafePointer<Self>, rows: Int, features: Int, maskValue: Self,
        mask: UnsafeMutablePointer<UInt8>, output: UnsafeMutablePointer<Self>)
}

extension SequenceKernels {
    /// Inverted dropout: each value 0 with probability `rate`, else `1 / (1 − rate)`.
    @_spi(Kernels) public static func drawDropoutMask(
        _ values: UnsafeMutablePointer<Self>, count: Int, rate: Double, generator: inout RandomGenerator
    ) {
        let kept = Self(1 / (1 - rate))
        for i in 0..<count { values[i] = generator.nextUnitDouble() < rate ? 0 : kept }
    }

    /// Keras's Masking over `rows` rows of `features`: `mask[r]` is 0 when every feature of row r
    /// equals `maskValue` (and that row of `output` is zero), else 1 (and the row is copied).
    @_spi(Kernels) public static func maskSteps(
        _ x: UnsafePointer<Self>, rows: Int, features: Int, maskValue: Self,
        mask: UnsafeMutablePointer<UInt8>, output: UnsafeMutablePointer<Self>
    ) {
        for row in 0..<rows {
            let source = x + row * features, destination = output + row * features
            var keep = false
            for i in 0..<features where source[i] != maskValue {
                keep = true
                break
            }
            mask[row] = keep ? 1 : 0
            if keep { destination.update(from: source, count: features) } else { destination.update(repeating: 0, count: features) }
        }
    }
}

extension Float: SequenceKernels {}
extension Double: SequenceKernels {}
