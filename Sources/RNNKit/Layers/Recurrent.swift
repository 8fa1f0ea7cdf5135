/// A recurrent layer of any cell kind, run by the backend's one recurrent driver:
/// `SimpleRNN`, `LSTM` and `GRU` are this class with Keras's names, options and initial values.
///
/// Weights in Keras's layout, gates concatenated in Keras's order: `kernel [inputs, G·units]`,
/// `recurrent_kernel [units, G·units]`, `bias` (`[G·units]`, or `[2, 3·units]` for GRU with
/// reset-after). Input: a sequence `[T, B, D]` (time-major). Output: every state
/// `[T, B, units]` with `returnSequences`, otherwise the last state `[B, units]`. The state
/// starts at zero for every sequence. With `goBackwards` the layer reads the sequence from its
/// last step to its first, and a returned sequence stays in that processing order (as Keras's):
/// the input is reversed into a buffer of the layer's, so the driver and both backends are unchanged.
public class RecurrentLayer<Scalar: BLASScalar>: Layer {
    /// How the cell computes: its kind, activations and, for GRU, `resetAfter`.
    public let cell: RecurrentCell
    /// The size of the state `H` (Keras's `units`).
    public let units: Int
    /// Output every step's state `[T, B, units]` (for stacking) rather than the last `[B, units]`.
    public let returnSequences: Bool
    /// Process the sequence from its last step to its first (Keras's `go_backwards`).
    public let goBackwards: Bool
    /// The fraction of each sequence's input features dropped while training (Keras's `dropout`):
    /// one mask per sequence, the same at every step, the kept features scaled by `1 / (1 − rate)`.
    public var dropout: Double { inputDropout.rate }
    /// The fraction of the state dropped where it meets the recurrent kernel while training
    /// (Keras's `recurrent_dropout`): one mask `[B, units]` per sequence, the same at every step and
    /// for every gate, kept units scaled by `1 / (1 − rate)` (see `RecurrentDropout`).
    public var recurrentDropout: Double { recurrentDropoutMask.rate }
    /// The seed of the dropout masks' stream (Keras's `seed`).
    public var seed: UInt64 { inputDropout.seed }
    /// How `kernel` is drawn when the layer is built.
    public let kernelInitializer: Initializer
    /// How `recurrent_kernel` is drawn when the layer is built.
    public let recurrentInitializer: Initializer
    /// How `bias` is drawn when the layer is built.
    public let biasInitializer: Initializer
    /// LSTM only: start the forget gate's bias at 1 (Keras's `unit_forget_bias`).
    public let unitForgetBias: Bool
    /// Whether the layer has a `bias` weight (Keras's `use_bias`). Without one, the layer has only
    /// `kernel` and `recurrent_kernel`, and computes as with a bias of zeros.
    public let useBias: Bool
    /// The penalty on `kernel` added to the training loss (Keras's `kernel_regularizer`).
    public let kernelRegularizer: Regularizer?
    /// The penalty on `recurrent_kernel` (Keras's `recurrent_regularizer`).
    public let recurrentRegularizer: Regularizer?
    /// The penalty on `bias` (Keras's `bias_regularizer`); ignored without `useBias`.
    public let biasRegularizer: Regularizer?
    /// Whether each batch starts from the state the previous batch ended in, sample by sample
    /// (Keras's `stateful`): row `b` of a batch continues row `b` of the one before, until
    /// `resetStates()`. A model with a stateful layer takes batches of one fixed size
    /// (`Sequential`'s `batchSize`). Gradients stop at the carried state (truncated
    /// back-propagation through time).
    public private(set) var stateful: Bool

    public let typeName: String
    public let nameStem: String
    public var name: String { didSet { renameParameters() } }
    public private(set) var parameters: [Parameter<Scalar>] = [] {
        // Held apart as well: indexing the array from this unspecialised generic class looks its
        // type's metadata up at run time on every access, several times a step.
        didSet {
            (kernel, recurrentKernel) = parameters.isEmpty ? (nil, nil) : (parameters[0], parameters[1])
            bias = parameters.count > 2 ? parameters[2] : nil
        }
    }
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var steps = 0, inputs = 0
    private var tape = Buffer<Scalar>(count: 0) // RecurrentTape's regions
    private var workspace = Buffer<Scalar>(count: 0) // the backend's scratch
    // Without `useBias` the backends still read a bias and write its gradient: rather than teach
    // every cell and both backends a bias-free path, the layer hands them a bias of zeros (adding
    // zero changes no value, so the results are exactly a bias-free cell's) and a scratch gradient
    // it never reads. Cells with a bias run exactly as before.
    private var zeroBias = Buffer<Scalar>(count: 0)
    private var unusedBiasGradient = Buffer<Scalar>(count: 0)
    private var inputGradient: Buffer<Scalar>? // [T, B, D]
    private var reversed = Buffer<Scalar>(count: 0) // goBackwards: the input, then d loss / d it, in processing order
    private var dropped = Buffer<Scalar>(count: 0) // dropout: the input with its mask applied
    var inputDropout: DropoutMask<Scalar> // [B, D] per batch
    var recurrentDropoutMask: DropoutMask<Scalar> // [B, H] per batch
    private var droppedStates = Buffer<Scalar>(count: 0) // recurrent dropout: h_{t−1} ⊙ m, [T, B, H]
    private var training = false, step = 0
    private var dropping = false, droppingState = false
    /// The mask of the sequence being read (`[T, B]`, 0 at masked steps), from a `Masking` layer upstream.
    private var stepMask: UnsafePointer<UInt8>?
    private var reversedMask = Buffer<UInt8>(count: 0) // goBackwards: the mask in processing order
    private var maskedOutput = Buffer<Scalar>(count: 0) // zeroOutputForMask: the states, zero at masked steps
    private var maskedGradient = Buffer<Scalar>(count: 0) // zeroOutputForMask: the output gradient, zero there too
    private var lastMask: UnsafePointer<UInt8>?
    /// With a mask and `returnSequences`, output zeros at masked steps instead of the carried
    /// state (Keras's `zero_output_for_mask`; `Bidirectional` sets it, as Keras's does).
    public var zeroOutputForMask = false

    // Encoder–decoder use: Keras's `initial_state` and `return_state`, shared with the replicas.
    private var states = SharedRecurrentStates<Scalar>()
    /// Whether `backward` computes d loss / d the initial state (see `initialStateGradient`).
    /// Set before `reserve` (in a model: before its first batch, or its `reserve`); it holds for
    /// the layer's replicas too, whenever it is set.
    public var computesInitialStateGradient: Bool {
        get { states.computesInitialStateGradient }
        set { states.computesInitialStateGradient = newValue }
    }
    /// Where the next forward pass's samples lie in the whole batch (`setShard`), used once; and
    /// where the last one's did: `shardOffset` its first sample's row, `wholeBatch` the batch's samples.
    private var nextShard: (offset: Int, batch: Int)?
    private var shardOffset = 0, wholeBatch = 0
    /// Whether the last forward pass ran one shard of a larger batch.
    private var sharded: Bool { shardOffset != 0 || wholeBatch != lastBatch }
    private var lastInput: UnsafePointer<Scalar>?
    private var lastBatch = 0

    init(
        typeName: String, nameStem: String, cell: RecurrentCell, units: Int, returnSequences: Bool, goBackwards: Bool,
        kernelInitializer: Initializer, recurrentInitializer: Initializer, biasInitializer: Initializer,
        unitForgetBias: Bool = false, dropout: Double = 0, recurrentDropout: Double = 0, seed: UInt64 = 0,
        useBias: Bool = true, kernelRegularizer: Regularizer? = nil, recurrentRegularizer: Regularizer? = nil,
        biasRegularizer: Regularizer? = nil, stateful: Bool = false
    ) {
        precondition((0..<1).contains(dropout), "\(typeName)'s dropout must be in [0, 1), not \(dropout)")
        precondition((0..<1).contains(recurrentDropout), "\(typeName)'s recurrentDropout must be in [0, 1), not \(recurrentDropout)")
        inputDropout = DropoutMask(rate: dropout, seed: seed)
        // A stream of its own, so the two masks are independent for one seed.
        recurrentDropoutMask = DropoutMask(rate: recurrentDropout, seed: seed ^ 0x6A09_E667_F3BC_C909)
        precondition(units > 0, "\(typeName) needs at least one unit, not \(units)")
        precondition(cell.activations.allSatisfy(\.isElementwise), "\(typeName)'s activations must be elementwise, not softmax")
        self.typeName = typeName
        self.nameStem = nameStem
        self.name = nameStem
        self.cell = cell
        self.units = units
        self.returnSequences = returnSequences
        self.goBackwards = goBackwards
        self.kernelInitializer = kernelInitializer
        self.recurrentInitializer = recurrentInitializer
        self.biasInitializer = biasInitializer
        self.unitForgetBias = unitForgetBias
        self.useBias = useBias
        self.kernelRegularizer = kernelRegularizer
        self.recurrentRegularizer = recurrentRegularizer
        self.biasRegularizer = biasRegularizer
        self.stateful = stateful
    }

    private var kernel: Parameter<Scalar>!
    private var recurrentKernel: Parameter<Scalar>!
    private var bias: Parameter<Scalar>?

    private func renameParameters() {
        for (parameter, leaf) in zip(parameters, ["kernel", "recurrent_kernel", "bias"]) {
            parameter.name = "\(name)/\(leaf)"
        }
    }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence(let steps, let features) = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence (None, steps, features)", got: inputShape)
        }
        guard !useBias || biasInitializer.accepts(shape: cell.biasShape(units: units)) else {
            throw ModelError.invalidConfiguration(
                "\(name)'s bias initializer \(biasInitializer) needs a matrix; the bias is \(cell.biasShape(units: units))")
        }
        self.steps = steps
        self.inputs = features
        let width = cell.gates * units
        parameters = [
            Parameter(name: "kernel", shape: [features, width]),
            Parameter(name: "recurrent_kernel", shape: [units, width]),
        ]
        if useBias { parameters.append(Parameter(name: "bias", shape: cell.biasShape(units: units))) }
        renameParameters()
        kernel.regularizer = kernelRegularizer
        recurrentKernel.regularizer = recurrentRegularizer
        bias?.regularizer = biasRegularizer
        kernelInitializer.fill(kernel.value, shape: kernel.shape, generator: &generator)
        recurrentInitializer.fill(recurrentKernel.value, shape: recurrentKernel.shape, generator: &generator)
        allocateZeroBias()
        if let bias {
            biasInitializer.fill(bias.value, shape: bias.shape, generator: &generator)
            if unitForgetBias, case .lstm = cell {
                // Keras: the initialiser's values for i, ones for f, the initialiser's for c and o.
                (bias.value.pointer + units).update(repeating: 1, count: units)
            }
        }
        outputShape = returnSequences ? .sequence(steps: steps, features: units) : .vector(features: units)
        return outputShape
    }

    /// Without `useBias`: the zero bias and the scratch for its unused gradient.
    private func allocateZeroBias() {
        let count = useBias ? 0 : cell.biasShape(units: units).reduce(1, *)
        zeroBias = Buffer(count: count)
        unusedBiasGradient = Buffer(count: count)
    }

    public func replica() -> any Layer<Scalar> {
        let copy = RecurrentLayer(
            typeName: typeName, nameStem: nameStem, cell: cell, units: units, returnSequences: returnSequences,
            goBackwards: goBackwards, kernelInitializer: kernelInitializer, recurrentInitializer: recurrentInitializer,
            biasInitializer: biasInitializer, unitForgetBias: unitForgetBias, useBias: useBias,
            kernelRegularizer: kernelRegularizer, recurrentRegularizer: recurrentRegularizer, biasRegularizer: biasRegularizer,
            stateful: stateful)
        copy.allocateZeroBias()
        copy.steps = steps
        copy.inputs = inputs
        copy.outputShape = outputShape
        copy.parameters = parameters.map { Parameter(sharingValuesOf: $0) }
        copy.inputDropout = inputDropout.replica()
        copy.recurrentDropoutMask = recurrentDropoutMask.replica()
        copy.zeroOutputForMask = zeroOutputForMask
        // The same initial state, final cell gradient and initial-state gradient buffer, set or
        // read on this layer whenever: each replica uses its shard's rows (`setShard`).
        copy.states = states
        copy.name = name
        return copy
    }

    /// A replica for pieces of `steps` steps (a `StreamingSession`'s): the same weights, buffers
    /// of its own, its initial state not shared with this layer's.
    func streamingCopy(steps: Int) -> RecurrentLayer<Scalar> {
        // A replica advances the dropout masks' replica count, which seeds the model's own worker
        // replicas: a stream never trains, so the count is put back and training stays as it was.
        let masks = (inputDropout, recurrentDropoutMask)
        let copy = replica() as! RecurrentLayer<Scalar>
        (inputDropout, recurrentDropoutMask) = masks
        // The session carries the state itself (`StreamState`), whether or not this layer is stateful.
        copy.stateful = false
        copy.states = SharedRecurrentStates()
        copy.steps = steps
        copy.outputShape = returnSequences ? .sequence(steps: steps, features: units) : .vector(features: units)
        return copy
    }

    /// The next forward pass (and its backward pass) runs the samples from `offset` of a batch
    /// of `batch` samples, whose other shards other replicas of this layer run: it reads those
    /// rows of the initial state and of the final cell gradient, writes those of the initial
    /// state's gradient, and copies its final state into those rows of `finalState`. A model sets
    /// it before each sharded pass, after `reserveSharedStates`; without it a pass is the whole batch.
    func setShard(offset: Int, of batch: Int) { nextShard = (offset, batch) }

    /// Sizes what this layer shares with its replicas (the whole batch's initial-state gradient
    /// and final state) for batches of up to `batchCapacity` samples in all.
    func reserveSharedStates(batchCapacity: Int) {
        let count = 2 * batchCapacity * units
        if computesInitialStateGradient, states.gradient.count < count { states.gradient = Buffer(count: count) }
        if states.finalState.count < count { states.finalState = Buffer(count: count) }
    }

    /// An unbuilt layer with the same settings, reading the sequence the other way when
    /// `reversed` (Bidirectional's backward copy).
    func unbuiltCopy(reversed: Bool) -> RecurrentLayer<Scalar> {
        let copy = RecurrentLayer(
            typeName: typeName, nameStem: nameStem, cell: cell, units: units, returnSequences: returnSequences,
            goBackwards: reversed ? !goBackwards : goBackwards, kernelInitializer: kernelInitializer,
            recurrentInitializer: recurrentInitializer, biasInitializer: biasInitializer, unitForgetBias: unitForgetBias,
            dropout: dropout, recurrentDropout: recurrentDropout, seed: reversed ? inputDropout.seed &+ 1 : inputDropout.seed,
            useBias: useBias, kernelRegularizer: kernelRegularizer, recurrentRegularizer: recurrentRegularizer,
            biasRegularizer: biasRegularizer, stateful: stateful)
        copy.zeroOutputForMask = zeroOutputForMask
        return copy
    }

    /// Starts the next forward pass from `h` (and, for LSTM, `c`), `[B, H]` each, instead of zeros
    /// (Keras's `initial_state`): an encoder's `finalState`, say. The memory must stay unchanged
    /// until the backward pass; nil starts from zeros again.
    ///
    /// In a model with several `workers`, `B` is the whole batch (each batch of a pass over a
    /// dataset), and each worker's replica of the layer starts its shard of the batch from its rows.
    ///
    /// A stateful layer carries its own state from batch to batch and takes none (a precondition).
    public func setInitialState(h: UnsafePointer<Scalar>?, c: UnsafePointer<Scalar>? = nil) {
        precondition(!stateful || h == nil, "\(name) is stateful: it starts each batch from the last one's state, not a set one")
        precondition(c == nil || h != nil, "an initial cell state needs an initial state h")
        if case .lstm = cell {} else { precondition(c == nil, "only an LSTM has a cell state") }
        states.initialState = h.map { RecurrentState(h: $0, c: c) }
    }

    /// The state after the last step of the last forward pass (Keras's `return_state`): `h_T` `[B, H]`
    /// and, for LSTM, `c_T`. Valid until the next forward pass.
    ///
    /// In a model with several `workers`, the whole batch's: each replica copies its shard's rows
    /// in (with a reducer across processes, only this process's share of the rows is written).
    public var finalState: (h: UnsafePointer<Scalar>, c: UnsafePointer<Scalar>?) {
        if sharded {
            let h = states.finalState.pointer
            return (UnsafePointer(h), cell.gates == 4 ? UnsafePointer(h + wholeBatch * units) : nil)
        }
        let tape = RecurrentTape(cell, dimensions(max(lastBatch, 1)), memory: self.tape.pointer)
        let last = (steps - 1) * lastBatch * units
        return (UnsafePointer(tape.states + last), tape.cellStates.map { UnsafePointer($0 + last) })
    }

    /// For the next backward pass, d loss / d `c_T` from a layer `finalState.c` started (LSTM; nil
    /// for none), `[B, H]`. d loss / d `h_T` enters through the output gradient (`h_T` is the last
    /// output). In a model with several `workers`, `B` is the whole batch, each replica reading its rows.
    public func setFinalCellGradient(_ gradient: UnsafePointer<Scalar>?) { states.finalCellGradient = gradient }

    /// After a backward pass with `computesInitialStateGradient`: d loss / d `h_0` (and `c_0`), `[B, H]`.
    /// In a model with several `workers`, the whole batch's: each replica writes its shard's rows
    /// (with a reducer across processes, only this process's share of the rows).
    public var initialStateGradient: (h: UnsafePointer<Scalar>, c: UnsafePointer<Scalar>?)? {
        guard computesInitialStateGradient else { return nil }
        let count = wholeBatch * units, h = states.gradient.pointer
        if case .lstm = cell { return (UnsafePointer(h), UnsafePointer(h + count)) }
        return (UnsafePointer(h), nil)
    }

    /// This pass's rows of the initial state: the one set by `setInitialState`, else, when
    /// stateful, the state carried from the last batch.
    private var shardInitialState: RecurrentState<Scalar>? {
        let rows = shardOffset * units
        if let state = states.initialState { return RecurrentState(h: state.h + rows, c: state.c.map { $0 + rows }) }
        guard stateful, let carried = states.carried else { return nil }
        return RecurrentState(h: UnsafePointer(carried.h.pointer + rows), c: carried.c.map { UnsafePointer($0.pointer + rows) })
    }

    // MARK: Carried state (stateful)

    /// Sizes the carried state for batches of exactly `batchSize` samples, at zero (a stateful
    /// layer; the model calls it when it is made, and its replicas share the state).
    func reserveCarriedState(batchSize: Int) {
        guard stateful else { return }
        if states.carried?.h.count != batchSize * units {
            states.carried = StreamState(units: units, hasCell: cell.gates == 4, batchSize: batchSize)
        }
        reserveSharedStates(batchCapacity: batchSize)
    }

    /// The state carried into the next batch (stateful layers; nil before the model reserves it):
    /// h `[B, H]` and, for LSTM, c, shared with a model's `StreamingSession`-backed `predict`.
    var carriedState: StreamState<Scalar>? { stateful ? states.carried : nil }

    /// Starts every sample's state from zeros again at the next batch (Keras's `reset_states()`);
    /// nothing for a layer that is not stateful.
    public func resetStates() {
        guard let carried = carriedState else { return }
        carried.reset(rows: 0..<(carried.h.count / units))
    }

    /// Makes the last forward pass's final state the one the next batch starts from. The model
    /// calls it once the batch's backward pass (which reads the initial state) is done.
    func commitCarriedState() {
        guard let carried = carriedState else { return }
        let count = carried.h.count
        precondition(wholeBatch * units == count, "\(name) is stateful for batches of \(count / units), not \(wholeBatch)")
        carried.h.pointer.update(from: states.finalState.pointer, count: count)
        carried.c?.pointer.update(from: states.finalState.pointer + count, count: count)
    }

    /// Sets the mask of the sequences the next forward pass reads (`[T, B]` time-major, 0 at masked
    /// steps; nil for none). The model sets it from a `Masking` layer upstream; the memory must stay
    /// unchanged until the backward pass.
    public func setMask(_ mask: UnsafePointer<UInt8>?) { stepMask = mask }

    public func setTraining(_ training: Bool, step: Int) {
        self.training = training
        self.step = step
    }

    private func dimensions(_ batchSize: Int) -> RNNDimensions {
        RNNDimensions(batch: batchSize, steps: steps, inputs: inputs, units: units)
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        precondition(!parameters.isEmpty, "build \(name) before reserving buffers")
        let dims = dimensions(batchCapacity)
        let tapeCount = RecurrentTape<Scalar>.count(cell, dims)
        if tape.count < tapeCount { tape = Buffer(count: tapeCount) }
        reserveWorkspace(dims, backend: backend)
        if needsInputGradient, (inputGradient?.count ?? 0) < steps * batchCapacity * inputs {
            inputGradient = Buffer(count: steps * batchCapacity * inputs)
        } else if !needsInputGradient {
            inputGradient = nil
        }
        // goBackwards: the reversed input, and after it the gradient in processing order.
        let reversedCount = goBackwards ? steps * batchCapacity * inputs * (needsInputGradient ? 2 : 1) : 0
        if reversed.count < reversedCount { reversed = Buffer(count: reversedCount) }
        if dropout > 0 {
            if dropped.count < steps * batchCapacity * inputs { dropped = Buffer(count: steps * batchCapacity * inputs) }
            inputDropout.reserve(batchCapacity * inputs)
        }
        if recurrentDropout > 0 {
            if droppedStates.count < steps * batchCapacity * units { droppedStates = Buffer(count: steps * batchCapacity * units) }
            recurrentDropoutMask.reserve(batchCapacity * units)
        }
        if goBackwards, reversedMask.count < steps * batchCapacity { reversedMask = Buffer(count: steps * batchCapacity) }
        if computesInitialStateGradient, states.gradient.count < 2 * batchCapacity * units {
            states.gradient = Buffer(count: 2 * batchCapacity * units)
        }
        if zeroOutputForMask, returnSequences, maskedOutput.count < steps * batchCapacity * units {
            maskedOutput = Buffer(count: steps * batchCapacity * units)
            maskedGradient = Buffer(count: steps * batchCapacity * units)
        }
    }

    /// `destination` = `source` `[T, B, H]` with the rows of masked steps zero.
    private func zeroMaskedRows(
        _ source: UnsafePointer<Scalar>, into destination: UnsafeMutablePointer<Scalar>,
        mask: UnsafePointer<UInt8>, batchSize: Int
    ) {
        for row in 0..<(steps * batchSize) {
            if mask[row] == 0 {
                (destination + row * units).update(repeating: 0, count: units)
            } else {
                (destination + row * units).update(from: source + row * units, count: units)
            }
        }
    }

    /// `destination[t] = source[t] ⊙ mask` for every step (the mask `[B, D]`, the same at each).
    private func applyInputMask(_ source: UnsafePointer<Scalar>, into destination: UnsafeMutablePointer<Scalar>, batchSize: Int) {
        let step = batchSize * inputs
        for t in 0..<steps {
            Scalar.combine(
                source + t * step, inputDropout.values.pointer, into: destination + t * step, count: step, multiply: true, scale: 1)
        }
    }

    /// Copies `source` `[T, B, D]` into `destination` with its steps in reverse order.
    private func reverseSteps(_ source: UnsafePointer<Scalar>, into destination: UnsafeMutablePointer<Scalar>, batchSize: Int) {
        let step = batchSize * inputs
        for t in 0..<steps { (destination + (steps - 1 - t) * step).update(from: source + t * step, count: step) }
    }

    /// Grows the workspace to what `backend` needs (only when the model's backend changes).
    private func reserveWorkspace(_ dims: RNNDimensions, backend: any Backend) {
        let needed = backend.recurrentWorkspaceCount(cell, dims)
        if workspace.count < needed { workspace = Buffer(count: needed) }
    }

    /// The tape over the layer's memory, with this pass's recurrent dropout mask while training.
    private func tape(_ dims: RNNDimensions) -> RecurrentTape<Scalar> {
        var tape = RecurrentTape(cell, dims, memory: self.tape.pointer)
        if droppingState {
            tape.recurrentDropout = RecurrentDropout(mask: recurrentDropoutMask.values.pointer, droppedStates: droppedStates.pointer)
        }
        return tape
    }

    private var weights: RecurrentWeights<Scalar> {
        RecurrentWeights(
            kernel: kernel.value.pointer, recurrentKernel: recurrentKernel.value.pointer,
            bias: bias?.value.pointer ?? zeroBias.pointer)
    }

    @_specialize(where Scalar == Float)
    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let dims = dimensions(batchSize)
        precondition(
            RecurrentTape<Scalar>.count(cell, dims) <= tape.count,
            "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        reserveWorkspace(dims, backend: backend)
        var input = input
        droppingState = training && recurrentDropout > 0
        if droppingState { recurrentDropoutMask.draw(batchSize * units, step: step) }
        let tape = self.tape(dims)
        dropping = training && dropout > 0
        if dropping {
            inputDropout.draw(batchSize * inputs, step: step)
            applyInputMask(input, into: dropped.pointer, batchSize: batchSize)
            input = UnsafePointer(dropped.pointer)
        }
        var mask = stepMask
        if goBackwards {
            precondition(steps * batchSize * inputs <= reversed.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
            reverseSteps(input, into: reversed.pointer, batchSize: batchSize)
            input = UnsafePointer(reversed.pointer)
            if let stepMask {
                for t in 0..<steps {
                    (reversedMask.pointer + (steps - 1 - t) * batchSize).update(from: stepMask + t * batchSize, count: batchSize)
                }
                mask = UnsafePointer(reversedMask.pointer)
            }
        }
        (shardOffset, wholeBatch) = nextShard ?? (0, batchSize)
        nextShard = nil
        precondition(
            shardOffset >= 0 && shardOffset + batchSize <= wholeBatch,
            "shard of \(batchSize) from \(shardOffset) outside a batch of \(wholeBatch)")
        backend.recurrentForward(
            cell, dims, x: input, weights: weights, mask: mask, initialState: shardInitialState, tape: tape,
            workspace: workspace.pointer)
        lastInput = input
        lastBatch = batchSize
        lastMask = mask
        if sharded || carriedState != nil { gatherFinalState(tape, batchSize: batchSize) }
        if returnSequences, zeroOutputForMask, let mask {
            zeroMaskedRows(tape.states, into: maskedOutput.pointer, mask: mask, batchSize: batchSize)
            return UnsafePointer(maskedOutput.pointer)
        }
        return UnsafePointer(returnSequences ? tape.states : tape.states + (steps - 1) * batchSize * units)
    }

    /// Copies this shard's final state into its rows of the whole batch's (`finalState`).
    private func gatherFinalState(_ tape: RecurrentTape<Scalar>, batchSize: Int) {
        precondition(states.finalState.count >= 2 * wholeBatch * units, "reserve \(name)'s shared states for a batch of \(wholeBatch)")
        let last = (steps - 1) * batchSize * units, rows = shardOffset * units, count = batchSize * units
        (states.finalState.pointer + rows).update(from: tape.states + last, count: count)
        if let cellStates = tape.cellStates {
            (states.finalState.pointer + wholeBatch * units + rows).update(from: cellStates + last, count: count)
        }
    }

    /// Every state of the last forward pass, batch-major as Keras returns sequences:
    /// `[batch, steps, units]` (a copy, for inspection and tests). In a model with several
    /// `workers`, only the first shard's samples.
    public func lastStateSequence() -> Tensor<Scalar> {
        let states = RecurrentTape(cell, dimensions(max(lastBatch, 1)), memory: tape.pointer).states
        var result = Tensor<Scalar>(shape: [lastBatch, steps, units])
        for t in 0..<steps {
            for b in 0..<lastBatch {
                for j in 0..<units {
                    result.scalars[(b * steps + t) * units + j] = states[(t * lastBatch + b) * units + j]
                }
            }
        }
        return result
    }

    @discardableResult
    @_specialize(where Scalar == Float)
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let input = lastInput, batchSize == lastBatch else {
            preconditionFailure("\(name).backward must follow a forward pass over the same batch")
        }
        let dims = dimensions(batchSize)
        reserveWorkspace(dims, backend: backend)
        // goBackwards: the driver's input gradient is in processing order, reversed back after.
        let processingOrderGradient =
            goBackwards ? inputGradient.map { _ in reversed.pointer + steps * batchSize * inputs } : inputGradient?.pointer
        var outputGradient = outputGradient
        if returnSequences, zeroOutputForMask, let lastMask {
            // The zeros output at masked steps carry no gradient.
            zeroMaskedRows(outputGradient, into: maskedGradient.pointer, mask: lastMask, batchSize: batchSize)
            outputGradient = UnsafePointer(maskedGradient.pointer)
        }
        precondition(
            !computesInitialStateGradient || states.gradient.count >= 2 * wholeBatch * units,
            "reserve \(name) after setting computesInitialStateGradient")
        // This shard's rows of the whole batch's initial-state gradient [B, H] (then c's).
        let rows = shardOffset * units, gradient = states.gradient.pointer
        let initialGradient =
            computesInitialStateGradient
            ? RecurrentStateGradient(h: gradient + rows, c: cell.gates == 4 ? gradient + wholeBatch * units + rows : nil) : nil
        backend.recurrentBackward(
            cell, dims, x: input, weights: weights, mask: lastMask, initialState: shardInitialState,
            tape: tape(dims), stateGradient: outputGradient, sequenceGradient: returnSequences,
            finalCellGradient: states.finalCellGradient.map { $0 + rows },
            gradients: RecurrentGradients(
                kernel: kernel.gradient.pointer, recurrentKernel: recurrentKernel.gradient.pointer,
                bias: bias?.gradient.pointer ?? unusedBiasGradient.pointer),
            inputGradient: processingOrderGradient, initialStateGradient: initialGradient, workspace: workspace.pointer)
        if goBackwards, let inputGradient, let processingOrderGradient {
            reverseSteps(processingOrderGradient, into: inputGradient.pointer, batchSize: batchSize)
        }
        if dropping, let inputGradient {
            applyInputMask(inputGradient.pointer, into: inputGradient.pointer, batchSize: batchSize)
        }
        return inputGradient.map { UnsafePointer($0.pointer) }
    }
}

/// What a recurrent layer shares with its replicas for encoder–decoder use, all for the whole
/// batch `[B, H]`: the initial state and final cell gradient set on the layer, and the buffers
/// each replica writes its shard's rows of the initial state's gradient and final state into
/// (disjoint rows, so the shards run at once).
final class SharedRecurrentStates<Scalar: BLASScalar> {
    var initialState: RecurrentState<Scalar>?
    var finalCellGradient: UnsafePointer<Scalar>?
    var computesInitialStateGradient = false
    var gradient = Buffer<Scalar>(count: 0) // d loss / d h_0, then d c_0 (LSTM)
    var finalState = Buffer<Scalar>(count: 0) // a sharded pass's h_T, then c_T (LSTM)
    var carried: StreamState<Scalar>? // a stateful layer's state carried into the next batch
}

/// Keras's `SimpleRNN`: `h_t = f(x_t · W + h_{t−1} · U + b)` with `h_0 = 0`.
/// Weights `kernel [inputs, units]`, `recurrent_kernel [units, units]`, `bias [units]`.
public final class SimpleRNN<Scalar: BLASScalar>: RecurrentLayer<Scalar> {
    /// The cell's activation (`tanh`, Keras's default, or e.g. `relu`).
    public var activation: Activation {
        guard case .simple(let f) = cell else { preconditionFailure("a SimpleRNN always has a simple cell") }
        return f
    }

    /// A SimpleRNN layer with Keras's defaults; rates outside [0, 1) are a precondition failure.
    ///
    /// - Parameters:
    ///   - units: the size of the state, at least 1.
    ///   - returnSequences: output every step's state (for stacking) or only the last.
    ///   - goBackwards: read the sequence from its last step (Keras's `go_backwards`).
    ///   - dropout: the fraction of input features dropped while training (Keras's `dropout`),
    ///     one mask per sequence; `seed` starts its stream.
    ///   - recurrentDropout: the fraction of the state dropped where it meets the recurrent kernel
    ///     while training (Keras's `recurrent_dropout`), one mask per sequence.
    ///   - activation: `tanh` (Keras's default) or another elementwise activation, e.g. `relu`.
    ///   - seed: starts the dropout masks' stream.
    ///   - kernelInitializer: draws the input weights (Keras's default Glorot uniform).
    ///   - recurrentInitializer: draws the recurrent weights (Keras's default orthogonal).
    ///   - biasInitializer: draws the bias (Keras's default zeros).
    ///   - useBias: give the layer a `bias` weight (Keras's `use_bias`, default true).
    ///   - kernelRegularizer: the penalty on `kernel` added to the loss (Keras's `kernel_regularizer`).
    ///   - recurrentRegularizer: the penalty on `recurrent_kernel` (Keras's `recurrent_regularizer`).
    ///   - biasRegularizer: the penalty on `bias` (Keras's `bias_regularizer`).
    ///   - stateful: start each batch from the state the last one ended in, sample by sample
    ///     (Keras's `stateful`); the model then needs a fixed `batchSize`.
    public init(
        units: Int, returnSequences: Bool = false, activation: Activation = .tanh, goBackwards: Bool = false,
        dropout: Double = 0, recurrentDropout: Double = 0, seed: UInt64 = 0,
        kernelInitializer: Initializer = .glorotUniform,
        recurrentInitializer: Initializer = .orthogonal(),
        biasInitializer: Initializer = .zeros, useBias: Bool = true, kernelRegularizer: Regularizer? = nil,
        recurrentRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil, stateful: Bool = false
    ) {
        super.init(
            typeName: "SimpleRNN", nameStem: "simple_rnn", cell: .simple(activation: activation), units: units,
            returnSequences: returnSequences, goBackwards: goBackwards, kernelInitializer: kernelInitializer,
            recurrentInitializer: recurrentInitializer, biasInitializer: biasInitializer, dropout: dropout,
            recurrentDropout: recurrentDropout, seed: seed, useBias: useBias, kernelRegularizer: kernelRegularizer,
            recurrentRegularizer: recurrentRegularizer, biasRegularizer: biasRegularizer, stateful: stateful)
    }
}

/// Keras's `LSTM`: gates i, f, c, o in every weight (`kernel [inputs, 4·units]`,
/// `recurrent_kernel [units, 4·units]`, one `bias [4·units]`), state (h, c) from zero:
///
///     [z_i z_f z_c z_o] = x_t · W + h_{t−1} · U + b
///     c_t = σ(z_f) ⊙ c_{t−1} + σ(z_i) ⊙ f(z_c);   h_t = σ(z_o) ⊙ f(c_t)
public final class LSTM<Scalar: BLASScalar>: RecurrentLayer<Scalar> {
    /// An LSTM layer with Keras's defaults; rates outside [0, 1) are a precondition failure.
    ///
    /// - Parameters:
    ///   - units: the size of the state (h and c), at least 1.
    ///   - activation: `f` (Keras's default `tanh`).
    ///   - recurrentActivation: `σ` (Keras's default `sigmoid`; `hardSigmoid` for older files).
    ///   - unitForgetBias: start the forget gate's bias at 1 (Keras's default).
    ///   - returnSequences: output every step's state (for stacking) or only the last.
    ///   - goBackwards: read the sequence from its last step (Keras's `go_backwards`).
    ///   - dropout: as `SimpleRNN`'s; one mask serves all four gates.
    ///   - recurrentDropout: as `SimpleRNN`'s; one mask serves all four gates.
    ///   - seed: starts the dropout masks' stream.
    ///   - kernelInitializer: draws the input weights (Keras's default Glorot uniform).
    ///   - recurrentInitializer: draws the recurrent weights (Keras's default orthogonal).
    ///   - biasInitializer: draws the bias (Keras's default zeros; with `unitForgetBias` the forget
    ///     gate's part then starts at 1).
    ///   - useBias: give the layer a `bias` weight (Keras's `use_bias`, default true).
    ///   - kernelRegularizer: the penalty on `kernel` added to the loss (Keras's `kernel_regularizer`).
    ///   - recurrentRegularizer: the penalty on `recurrent_kernel` (Keras's `recurrent_regularizer`).
    ///   - biasRegularizer: the penalty on `bias` (Keras's `bias_regularizer`).
    ///   - stateful: start each batch from the state the last one ended in, sample by sample
    ///     (Keras's `stateful`); the model then needs a fixed `batchSize`.
    public init(
        units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid,
        unitForgetBias: Bool = true, returnSequences: Bool = false, goBackwards: Bool = false,
        dropout: Double = 0, recurrentDropout: Double = 0, seed: UInt64 = 0,
        kernelInitializer: Initializer = .glorotUniform,
        recurrentInitializer: Initializer = .orthogonal(),
        biasInitializer: Initializer = .zeros, useBias: Bool = true, kernelRegularizer: Regularizer? = nil,
        recurrentRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil, stateful: Bool = false
    ) {
        super.init(
            typeName: "LSTM", nameStem: "lstm",
            cell: .lstm(activation: activation, recurrentActivation: recurrentActivation), units: units,
            returnSequences: returnSequences, goBackwards: goBackwards, kernelInitializer: kernelInitializer,
            recurrentInitializer: recurrentInitializer, biasInitializer: biasInitializer,
            unitForgetBias: unitForgetBias, dropout: dropout, recurrentDropout: recurrentDropout, seed: seed,
            useBias: useBias, kernelRegularizer: kernelRegularizer, recurrentRegularizer: recurrentRegularizer,
            biasRegularizer: biasRegularizer, stateful: stateful)
    }
}

/// Keras's `GRU`: gates z, r, h in every weight (`kernel [inputs, 3·units]`,
/// `recurrent_kernel [units, 3·units]`), `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`.
///
/// With `resetAfter` (Keras's default) the bias is `[2, 3·units]` (input row, recurrent row) and
/// `h̃ = f(x·W_h + b_h + r ⊙ (h_{t−1}·U_h + b′_h))`; without (older Keras files) it is
/// `[3·units]` and `h̃ = f(x·W_h + (r ⊙ h_{t−1})·U_h + b_h)`.
public final class GRU<Scalar: BLASScalar>: RecurrentLayer<Scalar> {
    /// A GRU layer with Keras's defaults; rates outside [0, 1) are a precondition failure.
    ///
    /// - Parameters:
    ///   - units: the size of the state, at least 1.
    ///   - activation: `f`, of the candidate `h̃` (Keras's default `tanh`).
    ///   - recurrentActivation: of the gates z and r (Keras's default `sigmoid`; `hardSigmoid` for older files).
    ///   - resetAfter: apply the reset gate after the recurrent kernel, with the bias `[2, 3·units]`
    ///     (Keras's default), or before it, with the bias `[3·units]` (older Keras files).
    ///   - returnSequences: output every step's state (for stacking) or only the last.
    ///   - goBackwards: read the sequence from its last step (Keras's `go_backwards`).
    ///   - dropout: as `SimpleRNN`'s; one mask serves all three gates.
    ///   - recurrentDropout: as `SimpleRNN`'s; one mask serves all three gates.
    ///   - seed: starts the dropout masks' stream.
    ///   - kernelInitializer: draws the input weights (Keras's default Glorot uniform).
    ///   - recurrentInitializer: draws the recurrent weights (Keras's default orthogonal).
    ///   - biasInitializer: draws the bias (Keras's default zeros).
    ///   - useBias: give the layer a `bias` weight (Keras's `use_bias`, default true).
    ///   - kernelRegularizer: the penalty on `kernel` added to the loss (Keras's `kernel_regularizer`).
    ///   - recurrentRegularizer: the penalty on `recurrent_kernel` (Keras's `recurrent_regularizer`).
    ///   - biasRegularizer: the penalty on `bias` (Keras's `bias_regularizer`).
    ///   - stateful: start each batch from the state the last one ended in, sample by sample
    ///     (Keras's `stateful`); the model then needs a fixed `batchSize`.
    public init(
        units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid,
        resetAfter: Bool = true, returnSequences: Bool = false, goBackwards: Bool = false,
        dropout: Double = 0, recurrentDropout: Double = 0, seed: UInt64 = 0,
        kernelInitializer: Initializer = .glorotUniform,
        recurrentInitializer: Initializer = .orthogonal(),
        biasInitializer: Initializer = .zeros, useBias: Bool = true, kernelRegularizer: Regularizer? = nil,
        recurrentRegularizer: Regularizer? = nil, biasRegularizer: Regularizer? = nil, stateful: Bool = false
    ) {
        super.init(
            typeName: "GRU", nameStem: "gru",
            cell: .gru(activation: activation, recurrentActivation: recurrentActivation, resetAfter: resetAfter),
            units: units, returnSequences: returnSequences, goBackwards: goBackwards, kernelInitializer: kernelInitializer,
            recurrentInitializer: recurrentInitializer, biasInitializer: biasInitializer, dropout: dropout,
            recurrentDropout: recurrentDropout, seed: seed, useBias: useBias, kernelRegularizer: kernelRegularizer,
            recurrentRegularizer: recurrentRegularizer, biasRegularizer: biasRegularizer, stateful: stateful)
    }
}
