/// Updates a model's weights from their gradients, over the model's `ParameterArena`.
///
/// One optimiser serves one arena: it keeps per-weight state (moments, velocities) laid out as
/// the arena. A step is `beginStep` once, then `update` over ranges that cover the arena; the
/// ranges are independent, so a model splits them over its worker threads.
public protocol Optimizer<Scalar>: AnyObject {
    /// The scalar type of the weights it updates: the model's.
    associatedtype Scalar: BLASScalar
    /// The Keras name (`adam`, `sgd`, `rmsprop`).
    var name: String { get }
    /// The step size.
    var learningRate: Double { get set }
    /// How many updates have been applied.
    var iterations: Int { get }
    /// How the gradients are limited before each update (Keras's `clipnorm`, `clipvalue`,
    /// `global_clipnorm`); `.none` unless the optimiser says otherwise.
    var clipping: GradientClipping { get }
    /// Counts one update and prepares its constants; sizes (zeroed) state the first time an arena
    /// is seen. Call once per step, before `update`.
    func beginStep(_ arena: ParameterArena<Scalar>)
    /// Applies the current step to the weights in `range` of `arena` from their gradients.
    /// Disjoint ranges may run on different threads at once.
    func update(_ range: Range<Int>, of arena: ParameterArena<Scalar>)
}

extension Optimizer {
    public var clipping: GradientClipping { .none }

    /// One whole update of `arena` on the calling thread, its gradients clipped first.
    public func apply(to arena: ParameterArena<Scalar>) {
        clipping.apply(to: arena)
        beginStep(arena)
        update(0..<arena.count, of: arena)
    }
}

/// An optimiser's per-weight state: `slotCount` zero-initialised buffers laid out as the arena
/// they serve, and the arena itself, so a parameter's share can be found.
public final class OptimizerState<Scalar: BLASScalar> {
    /// How many values the optimiser keeps per weight (Adam 2, SGD and RMSprop 1).
    public let slotCount: Int
    /// `slotCount` buffers of `arena.count` scalars each, laid out as the arena; empty until `prepare`.
    public private(set) var slots: [Buffer<Scalar>] = []
    /// The arena the state is bound to; nil until the first `prepare`.
    public private(set) var arena: ParameterArena<Scalar>?
    /// An arena made by `apply(to: [Parameter])` for parameters outside any model.
    private var looseArena: ParameterArena<Scalar>?

    /// Unbound state of `slotCount` slots; `prepare` allocates them.
    public init(slotCount: Int) { self.slotCount = slotCount }

    /// Binds to `arena`, starting from zero state when it is a new one.
    public func prepare(_ arena: ParameterArena<Scalar>) {
        guard arena !== self.arena else { return }
        self.arena = arena
        slots = (0..<slotCount).map { _ in Buffer<Scalar>(count: arena.count) }
    }

    /// The arena for a list of loose parameters: the same one while the list is the same.
    func arena(for parameters: [Parameter<Scalar>]) -> ParameterArena<Scalar> {
        if let looseArena, looseArena.parameters.count == parameters.count,
            zip(looseArena.parameters, parameters).allSatisfy({ $0 === $1 })
        {
            return looseArena
        }
        let made = ParameterArena(parameters)
        looseArena = made
        return made
    }

    /// Slot `slot`'s values for `parameter` (a copy), for tests and inspection.
    public func values(slot: Int, for parameter: Parameter<Scalar>) -> [Scalar] {
        guard let arena, let offset = arena.offset(of: parameter) else {
            preconditionFailure("\(parameter.name) has no optimiser state: it was never updated by this optimiser")
        }
        return Array(UnsafeBufferPointer(start: slots[slot].pointer + offset, count: parameter.count))
    }
}

/// The optimisers that keep an `OptimizerState` (Adam, SGD, RMSprop): their state can be saved
/// and restored, so a training run continues where it stopped.
public protocol StatefulOptimizer<Scalar>: Optimizer {
    /// The scalar type of the weights it updates, as `Optimizer`'s.
    associatedtype Scalar
    /// The per-weight state, whose `slots` a checkpoint saves and `restore` refills.
    var state: OptimizerState<Scalar> { get }
    /// Settable, so a restored optimiser can be given another limit.
    var clipping: GradientClipping { get set }
    /// Sets the count of updates applied, with the state, when restoring.
    func restoreIterations(_ iterations: Int)
}

extension StatefulOptimizer {
    /// Restores per-weight state saved from `state.slots` (one array of `arena.count` per slot)
    /// and the update count, binding it to `arena`.
    /// - Throws: `ModelError.optimizerStateMismatch` when the slots' count or lengths do not fit
    ///   `arena`, or `iterations` is negative; nothing is changed then.
    public func restore(iterations: Int, slots: [[Scalar]], for arena: ParameterArena<Scalar>) throws {
        guard slots.count == state.slotCount, slots.allSatisfy({ $0.count == arena.count }), iterations >= 0 else {
            throw ModelError.optimizerStateMismatch(
                optimizer: name, slotLengths: slots.map(\.count), iterations: iterations,
                neededSlots: state.slotCount, neededLength: arena.count)
        }
        state.prepare(arena)
        for (buffer, values) in zip(state.slots, slots) { buffer.assign(values) }
        restoreIterations(iterations)
    }

    /// Updates `parameters` that need not belong to a model: the first call moves them into an
    /// arena of their own (values kept), which later calls with the same list reuse.
    public func apply(to parameters: [Parameter<Scalar>]) {
        apply(to: state.arena(for: parameters))
    }
}
