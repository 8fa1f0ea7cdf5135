/// A trainable weight array with its gradient, named and shaped as Keras names and shapes it
/// (`simple_rnn/kernel`, `[inputs, units]`), so Keras weights load as they are.
///
/// A layer creates its parameters in `build` (each with storage of its own, so a layer works on
/// its own) and draws their initial values; a `Sequential` model then moves every parameter into
/// its `ParameterArena`, after which `value` and `gradient` are views into the arena's two
/// contiguous buffers. Layers read the pointers when they run, never keep them.
public final class Parameter<Scalar: BLASScalar> {
    /// The Keras-style path, `<layer>/<weight>`; a layer sets it when the model names the layer.
    public var name: String
    /// The weight's shape in Keras's layout.
    public let shape: [Int]
    /// The current values (row-major).
    public private(set) var value: BufferSlice<Scalar>
    /// d loss / d value from the last backward pass, same layout as `value`.
    public private(set) var gradient: BufferSlice<Scalar>
    /// The penalty on this weight added to the training loss (Keras's `kernel_regularizer` and
    /// the like); a model adds it, and its gradient, once per step after summing the shards.
    public var regularizer: Regularizer?

    /// A zero-filled parameter with storage of its own. `name` is the weight's own name
    /// (`kernel`); the model prefixes the layer's.
    public init(name: String, shape: [Int]) {
        precondition(shape.allSatisfy { $0 > 0 }, "parameter \(name) has an empty shape \(shape)")
        self.name = name
        self.shape = shape
        let count = shape.reduce(1, *)
        value = BufferSlice(Buffer(count: count))
        gradient = BufferSlice(Buffer(count: count))
    }

    /// A parameter that reads the same values as `other` but has a gradient of its own: what
    /// a model's worker replicas hold, so each computes its shard's gradient against one set of weights.
    public init(sharingValuesOf other: Parameter) {
        name = other.name
        shape = other.shape
        value = other.value
        gradient = BufferSlice(Buffer(count: other.count))
        regularizer = other.regularizer
    }

    /// The number of scalars.
    public var count: Int { value.count }

    /// The values as a tensor (a copy).
    public var tensor: Tensor<Scalar> { Tensor(shape: shape, scalars: value.array) }

    /// Moves the values and the gradient (both copied) to new storage.
    func rebind(value newValue: BufferSlice<Scalar>?, gradient newGradient: BufferSlice<Scalar>) {
        if let newValue {
            precondition(newValue.count == count)
            if newValue.pointer != value.pointer { newValue.pointer.update(from: value.pointer, count: count) }
            value = newValue
        }
        precondition(newGradient.count == count)
        if newGradient.pointer != gradient.pointer { newGradient.pointer.update(from: gradient.pointer, count: count) }
        gradient = newGradient
    }
}
