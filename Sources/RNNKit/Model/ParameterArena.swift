/// Every weight of a model in one contiguous buffer and every gradient in another, in the
/// model's parameter order (as llm.c keeps them), so that summing the shards' gradients, the
/// finiteness check, the optimiser step and an all-reduce across processes are each one pass
/// over one buffer. Each `Parameter` stays a named view into both.
public final class ParameterArena<Scalar: BLASScalar> {
    /// The parameters, in order; `offsets[i]` is where parameter `i` starts in both buffers.
    public let parameters: [Parameter<Scalar>]
    /// Where each parameter starts in `values` and `gradients`, in scalars, in `parameters`' order.
    public let offsets: [Int]
    /// All weights, `count` scalars.
    public let values: Buffer<Scalar>
    /// All gradients, `count` scalars, laid out as `values`.
    public let gradients: Buffer<Scalar>

    /// The total number of scalars.
    public var count: Int { values.count }

    /// Moves `parameters` (values copied) into a new arena.
    public init(_ parameters: [Parameter<Scalar>]) {
        self.parameters = parameters
        var offsets: [Int] = [], total = 0
        for parameter in parameters {
            offsets.append(total)
            total += parameter.count
        }
        self.offsets = offsets
        values = Buffer(count: total)
        gradients = Buffer(count: total)
        for (parameter, offset) in zip(parameters, offsets) {
            parameter.rebind(
                value: BufferSlice(values, offset: offset, count: parameter.count),
                gradient: BufferSlice(gradients, offset: offset, count: parameter.count))
        }
    }

    /// An arena for a replica's `parameters`, which already share `model`'s values: only the
    /// gradients get a buffer of their own.
    init(gradientsOf parameters: [Parameter<Scalar>], sharingValuesWith model: ParameterArena<Scalar>) {
        precondition(parameters.count == model.parameters.count, "a replica's parameters do not match the model's")
        self.parameters = parameters
        offsets = model.offsets
        values = model.values
        gradients = Buffer(count: model.count)
        for (parameter, offset) in zip(parameters, offsets) {
            precondition(
                parameter.value.pointer == model.values.pointer + offset,
                "replica parameter \(parameter.name) does not share the model's values")
            parameter.rebind(value: nil, gradient: BufferSlice(gradients, offset: offset, count: parameter.count))
        }
    }

    /// Where `parameter` starts in the arena, if it is one of its parameters.
    public func offset(of parameter: Parameter<Scalar>) -> Int? {
        parameters.firstIndex { $0 === parameter }.map { offsets[$0] }
    }
}
