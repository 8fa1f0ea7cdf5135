/// A dense, row-major array of scalars with a shape: the value type RNNKit exchanges with its
/// callers (inputs, predictions, weights).
///
/// The last axis varies fastest: element `[i, j, k]` of a `[I, J, K]` tensor is
/// `scalars[(i · J + j) · K + k]`. The shape's product always equals `scalars.count`.
public struct Tensor<Scalar: BLASScalar>: Equatable, Sendable {
    /// The extent of each axis.
    public let shape: [Int]
    /// The elements in row-major order.
    public var scalars: [Scalar]

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Scalar = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape \(shape) has a negative extent")
        self.shape = shape
        self.scalars = Array(repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of `shape` holding `scalars` in row-major order.
    /// - Precondition: `scalars.count` equals the product of `shape`.
    public init(shape: [Int], scalars: [Scalar]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape \(shape) has a negative extent")
        precondition(
            shape.reduce(1, *) == scalars.count,
            "Tensor shape \(shape) holds \(shape.reduce(1, *)) elements, not \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// The number of elements.
    public var count: Int { scalars.count }

    /// The element at a full multi-index.
    public subscript(_ index: Int...) -> Scalar {
        get { scalars[offset(of: index)] }
        set { scalars[offset(of: index)] = newValue }
    }

    private func offset(of index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var offset = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) is out of bounds for shape \(shape)")
            offset = offset * extent + i
        }
        return offset
    }

    /// The same elements under another shape of the same size.
    public func reshaped(to newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }
}
