import CSmallKernels

/// The data pipeline's kernel: a batch of byte images gathered time-major and scaled, in one call
/// a batch (`Float`'s in C). Behind `@_spi(Kernels)`: not part of RNNKit's promise.
public protocol ImageKernels: BinaryFloatingPoint {
    @_spi(Kernels) static func gatherImages(
        _ pixels: UnsafePointer<UInt8>, indices: UnsafeBufferPointer<Int>, rows: Int, columns: Int, scale: Self,
        into destination: UnsafeMutablePointer<Self>)
}

extension ImageKernels {
    /// Gathers byte images time-major: image `indices[b]` (`rows × columns` bytes at
    /// `pixels + indices[b] · rows · columns`), scaled, lands at `destination[t, b, :]` of a
    /// `[rows, indices.count, columns]` batch. One call a batch, so the loop runs specialised.
    @_spi(Kernels) public static func gatherImages(
        _ pixels: UnsafePointer<UInt8>, indices: UnsafeBufferPointer<Int>, rows: Int, columns: Int, scale: Self,
        into destination: UnsafeMutablePointer<Self>
    ) {
        let batch = indices.count
        for (b, index) in indices.enumerated() {
            let image = pixels + index * rows * columns
            for t in 0..<rows {
                let source = image + t * columns, target = destination + (t * batch + b) * columns
                for i in 0..<columns { target[i] = Self(source[i]) * scale }
            }
        }
    }
}

extension Float: ImageKernels {
    // In C (CSmallKernels): vector conversion, and the next image prefetched while this one
    // converts. The images of a shuffled batch lie far apart in memory, and waiting for them was
    // a sixth of a small model's training step.
    @_spi(Kernels) public static func gatherImages(
        _ pixels: UnsafePointer<UInt8>, indices: UnsafeBufferPointer<Int>, rows: Int, columns: Int, scale: Float,
        into destination: UnsafeMutablePointer<Float>
    ) {
        guard let base = indices.baseAddress else { return }
        rnnkit_gather_images(pixels, base, indices.count, rows, columns, scale, destination)
    }
}

extension Double: ImageKernels {}
