/// A trainable weight array with its gradient, named and shaped as Keras names and shapes it
/// (`simple_rnn/kernel`, `[inputs, units]`), so Keras weights load as they are.
public final class Parameter<Scalar: BLASScalar> {
    /// The Keras-style path, `<layer>/<weight>`; set when the model names its layers.
    public internal(set) var name: String
    /// The weight's shape in Keras's layout.
    public let shape: [Int]
    /// The current values (row-major).
    public let value: Buffer<Scalar>
    /// d loss / d value from the last backward pass, same layout as `value`.
    public let gradient: Buffer<Scalar>

    init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
        let count = shape.reduce(1, *)
        value = Buffer(count: count)
        gradient = Buffer(count: count)
    }

    /// A parameter that reads the same values as `other` but has a gradient of its own: what
    /// a model's worker replicas hold, so each computes its shard's gradient against one set of weights.
    init(sharingValuesOf other: Parameter) {
        name = other.name
        shape = other.shape
        value = other.value
        gradient = Buffer(count: other.count)
    }

    /// The number of scalars.
    public var count: Int { value.count }

    /// The values as a tensor (a copy).
    public var tensor: Tensor<Scalar> { Tensor(shape: shape, scalars: value.array) }
}
