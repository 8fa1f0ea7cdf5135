import CSmallKernels

/// A trained model run on a stream: one step, or a piece of a few steps, at a time, with every
/// recurrent layer's state (h, and c for LSTM) carried from one call to the next, as Keras's
/// `stateful=True` layers carry it between `predict` calls.
///
/// A session serves a fixed batch of `batchSize` independent streams (1 for one sensor, user or
/// audio channel). Feeding a sequence in pieces of any split, or one step at a time, gives the
/// outputs `Sequential.predict` gives for the whole sequence (to rounding: the products are summed
/// in another order), until `reset()` starts every stream (or `reset(rows:)` some) from zeros again.
///
/// **Shapes.** Each call takes `[batchSize, steps, features]` batch-major, as a Keras model takes
/// a batch (`steps` may be 1, and a `[batchSize, features]` tensor is one step), and returns the
/// model's outputs for those steps: `[batchSize, steps, outputs]` when the model outputs a
/// sequence, `[batchSize, outputs]` (after the piece's last step) when it outputs a vector, as a
/// many-to-one classifier does after each step it has read. A model that starts with an
/// `Embedding` takes its ids as the values of its one feature, or through `predict(ids:)`.
///
/// **What a stream can run.** `Embedding`, `Masking`, `SimpleRNN`, `LSTM`, `GRU`, `Dense`,
/// `TimeDistributed(Dense)` and `Dropout` (which passes its input at inference). A masked step
/// (a `Masking` layer's value, or id 0 under `maskZero`) keeps each stream's state and repeats
/// its last output, as in a whole sequence, also where a piece starts with masked steps (there
/// Keras's stateful layers output zeros; the session keeps to `predict`). The ids of the first
/// layer's `Embedding` are checked. `Bidirectional` layers and layers with `goBackwards` need the
/// whole sequence before their first output and are refused by name, as are layers of your own.
///
/// **Weights.** The session reads the model's weights. For an LSTM or a reset-after GRU over 64
/// units with tanh and sigmoid, in `Float` on RNNKit's SIMD kernels, that no mask reaches, it
/// keeps them packed into the layout its kernels read, made when the session is (a layer a mask
/// reaches runs the engine's pass, which packs them at every call). After the model's weights
/// change (more training, `setWeights`), call `reloadWeights()`. The backend is the model's when
/// the session is made. The states start at zero.
///
/// **Half weights.** With `weights: .half`, those packed layers keep half of their recurrent
/// kernel in IEEE binary16, widened to float in registers; every sum and state stays float. A
/// step at batch 1 waits on reading its weights, so fewer bytes make it faster, but the outputs
/// then differ from `predict` by binary16's rounding of those weights (see `StreamingWeights`).
/// With `weights: .bfloat16` (AVX-512 only), all of their recurrent kernel is held in bfloat16:
/// half the bytes of float, widened without the conversion unit, faster again, at a coarser
/// rounding (see `StreamingWeights.bfloat16`).
///
/// **Cost.** Nothing is allocated per call by `predict(_:steps:into:)` once the session is made
/// (the `Tensor` forms allocate their result). A piece of `n` steps runs as pieces of 2^k steps
/// (every product over those steps as one GEMM), one step at a time when `n` is 1. One session
/// is for one thread at a time, and is made while the model is not training.
public final class StreamingSession<Scalar: BLASScalar> {
    /// The streams each call carries: the batch axis of every input, output and state.
    public let batchSize: Int
    /// The input features of one step (1, the id, for a model that starts with an `Embedding`).
    public let features: Int
    /// The model's output features per step (or per call, for a vector output).
    public let outputFeatures: Int
    /// Whether the model outputs a sequence (one output per step fed) or a vector (one per call).
    public let outputsSequence: Bool
    /// The names of the recurrent layers whose states the session carries, in model order.
    public let recurrentLayerNames: [String]
    /// The longest piece run as one pass; longer pieces are cut into pieces of this many steps.
    public let longestPass: Int
    /// How the session stores the weights of the layers it keeps packed.
    public let weights: StreamingWeights

    /// The most streams a session carries.
    public static var largestBatch: Int { 1 << 16 }

    private let backend: any Backend
    private let passes: [StreamPass<Scalar>] // 1, 2, 4, … steps
    private let states: [StreamState<Scalar>]
    /// The states of the layers a model's own session must start from zeros at every call: those
    /// not stateful (empty for a session of your own, which carries every layer's).
    private let statesResetEachCall: [StreamState<Scalar>]
    private let packedLayers: [PackedStreamLayer<Scalar>?] // per recurrent layer
    private let embedding: Embedding<Scalar>?
    private let scratch: Buffer<Scalar> // one pass's input, time-major [steps, batch, features]

    /// A session over `model`'s layers for `batchSize` streams, the states at zero.
    ///
    /// - Parameters:
    ///   - model: a built model (compiled or not); the session shares its weights.
    ///   - batchSize: the number of streams each call carries, at least 1.
    ///   - longestPass: the most steps one pass runs (a power of two, at least 1): longer pieces
    ///     are run in several. Memory grows with it.
    ///   - weights: `.full` (float, as the model holds them), `.half` (half of the recurrent
    ///     weights in binary16 for the layers the session keeps packed, `halfWeightLayerNames`)
    ///     or `.bfloat16` (all of them in bfloat16, for the same layers).
    /// - Throws: `ModelError.invalidConfiguration` naming a layer a stream cannot run
    ///   (`Bidirectional`, `goBackwards`, a layer of your own), a model whose input is not a
    ///   sequence, a batch size outside `1...largestBatch`, or a `longestPass` that is not a power
    ///   of two in `1...4096`; with `.half`, a CPU whose kernels cannot widen binary16 (no
    ///   AVX-512F, nor AVX2 with F16C, or the portable kernels forced), or a layer with a weight
    ///   binary16 cannot hold (see `StreamingWeights.half`); with `.bfloat16`, a CPU without the
    ///   AVX-512 kernels, or a layer with a weight bfloat16 cannot hold (NaN, infinite).
    public convenience init(
        model: Sequential<Scalar>, batchSize: Int = 1, longestPass: Int = 32, weights: StreamingWeights = .full
    ) throws {
        try self.init(model: model, batchSize: batchSize, longestPass: longestPass, weights: weights, sharingModelStates: false)
    }

    /// With `sharingModelStates`, the session a stateful model runs pieces of other lengths than
    /// its steps through: its stateful layers' states are the model's own carried states, its
    /// other recurrent layers start from zeros at every call (as they do in a model's batch), and
    /// no weights are packed, since training changes them between calls.
    init(
        model: Sequential<Scalar>, batchSize: Int, longestPass: Int, weights: StreamingWeights = .full, sharingModelStates: Bool
    ) throws {
        guard (1...Self.largestBatch).contains(batchSize) else {
            throw ModelError.invalidConfiguration(
                "a streaming session needs a batch size of 1 to \(Self.largestBatch) streams, not \(batchSize)")
        }
        guard longestPass >= 1, longestPass & (longestPass - 1) == 0, longestPass <= 4096 else {
            throw ModelError.invalidConfiguration(
                "a streaming session's longest pass must be a power of two in 1...4096, not \(longestPass)")
        }
        guard case .sequence(_, let features) = model.inputShape else {
            throw ModelError.invalidConfiguration("a streaming session needs a model that reads sequences, not \(model.inputShape)")
        }
        for layer in model.layers { try StreamPass<Scalar>.checkStreamable(layer) }
        if weights == .half, rnnkit_half_panel_width() == 0 {
            throw ModelError.invalidConfiguration(
                "half weights need RNNKit's kernels to widen binary16 in registers (AVX-512F, or AVX2 with F16C); the kernels in use (\(SmallGEMM.instructionSet)) cannot: use .full"
            )
        }
        if weights == .bfloat16, rnnkit_bfloat16_panel_width() == 0 {
            throw ModelError.invalidConfiguration(
                "bfloat16 weights need RNNKit's AVX-512 kernels (AVX-512 F, BW, DQ and VL); the kernels in use (\(SmallGEMM.instructionSet)) do not run them: use .half or .full"
            )
        }
        self.batchSize = batchSize
        self.weights = weights
        self.features = features
        self.longestPass = longestPass
        backend = model.backend
        outputFeatures = model.outputShape.features
        if case .sequence = model.outputShape { outputsSequence = true } else { outputsSequence = false }
        let recurrent = model.layers.compactMap { $0 as? RecurrentLayer<Scalar> }
        recurrentLayerNames = recurrent.map(\.name)
        let carried = recurrent.map { sharingModelStates ? $0.carriedState : nil }
        states = zip(recurrent, carried).map { layer, carried in
            carried ?? StreamState(units: layer.units, hasCell: layer.cell.gates == 4, batchSize: batchSize)
        }
        statesResetEachCall = sharingModelStates ? zip(states, carried).compactMap { $1 == nil ? $0 : nil } : []
        embedding = model.layers.first as? Embedding<Scalar>
        let states = self.states
        // Packed where no mask reaches the layer: a masked step needs the engine's pass.
        let unmasked = model.layers.indices.filter { !MaskRole.maskReachesOutput(Array(model.layers[..<$0])) }
            .compactMap { model.layers[$0] as? RecurrentLayer<Scalar> }.map { ObjectIdentifier($0) }
        // 16-bit weights only where the float ones are packed, and only in Float.
        let packedWeights = Scalar.self == Float.self ? weights : .full
        packedLayers = try zip(recurrent, states).map { layer, state in
            !sharingModelStates && unmasked.contains(ObjectIdentifier(layer))
                && PackedStreamLayer.applies(layer, backend: model.backend)
                ? try PackedStreamLayer(layer, state: state, batchSize: batchSize, longestPass: longestPass, weights: packedWeights) : nil
        }
        var passes: [StreamPass<Scalar>] = []
        var steps = 1
        while steps <= longestPass {
            passes.append(
                StreamPass(model.layers, steps: steps, batchSize: batchSize, states: states, packed: packedLayers, backend: model.backend))
            steps *= 2
        }
        self.passes = passes
        scratch = Buffer(count: longestPass * batchSize * features)
    }

    // MARK: Feeding steps

    /// Feeds `steps` steps of every stream, `input` batch-major `[batchSize, steps, features]`, and
    /// writes the outputs to `output`: `[batchSize, steps, outputFeatures]` for a sequence output,
    /// `[batchSize, outputFeatures]` for a vector. Allocates nothing.
    ///
    /// - Parameters:
    ///   - input: the steps, `batchSize · steps · features` values.
    ///   - steps: how many steps each stream advances, at least 1.
    ///   - output: room for the outputs, exactly their count.
    /// - Throws: `ModelError.invalidConfiguration` when a count does not fit, saying what it
    ///   should be; `ModelError.idOutOfRange` for an id outside an `Embedding`'s table (no state
    ///   changes then).
    @_specialize(where Scalar == Float)
    public func predict(_ input: UnsafeBufferPointer<Scalar>, steps: Int, into output: UnsafeMutableBufferPointer<Scalar>) throws {
        guard steps >= 1 else { throw ModelError.invalidConfiguration("a streaming session feeds 1 step or more, not \(steps)") }
        let (inputCount, inputOverflow) = steps.multipliedReportingOverflow(by: batchSize * features)
        guard !inputOverflow, input.count == inputCount else {
            throw ModelError.invalidConfiguration(
                "the session takes \(batchSize) stream\(batchSize == 1 ? "" : "s") × \(steps) step\(steps == 1 ? "" : "s") × \(features) feature\(features == 1 ? "" : "s") = \(inputOverflow ? "too many" : String(inputCount)) values, not \(input.count)"
            )
        }
        let (outputCount, outputOverflow) = (batchSize * outputFeatures).multipliedReportingOverflow(by: outputsSequence ? steps : 1)
        guard !outputOverflow, output.count == outputCount else {
            throw ModelError.invalidConfiguration(
                "the session writes \(outputCount) outputs for \(steps) step\(steps == 1 ? "" : "s"), into room for \(output.count)")
        }
        guard let input = input.baseAddress, let output = output.baseAddress else { return }
        try checkIDs(input, steps: steps)
        for state in statesResetEachCall { state.reset(rows: 0..<batchSize) }
        BLASConfiguration.passGate.shared { run(input, steps: steps, into: output) }
    }

    /// Feeds the steps of `input`, `[batchSize, steps, features]` (or `[batchSize, features]`, one
    /// step), and returns the outputs: `[batchSize, steps, outputFeatures]` for a model that
    /// outputs a sequence (`[batchSize, 1, outputFeatures]` for one step given as
    /// `[batchSize, features]`), `[batchSize, outputFeatures]` for one that outputs a vector.
    ///
    /// - Parameter input: the steps of every stream, batch-major.
    /// - Returns: the outputs for those steps.
    /// - Throws: `ModelError.invalidConfiguration` naming a batch or feature count that differs
    ///   from the session's; `ModelError.idOutOfRange` for an id outside an `Embedding`'s table.
    public func predict(_ input: Tensor<Scalar>) throws -> Tensor<Scalar> {
        let shape = input.shape
        guard shape.count == 2 || shape.count == 3 else {
            throw ModelError.invalidConfiguration("a streaming session takes [batch, steps, features] or [batch, features], not \(shape)")
        }
        guard shape[0] == batchSize else {
            throw ModelError.invalidConfiguration(
                "the session carries a batch of \(batchSize) stream\(batchSize == 1 ? "" : "s"); the input has \(shape[0])")
        }
        guard shape[shape.count - 1] == features else {
            throw ModelError.invalidConfiguration(
                "the model reads \(features) feature\(features == 1 ? "" : "s") a step; the input has \(shape[shape.count - 1])")
        }
        let steps = shape.count == 3 ? shape[1] : 1
        var result = Tensor<Scalar>(shape: outputsSequence ? [batchSize, steps, outputFeatures] : [batchSize, outputFeatures])
        try input.scalars.withUnsafeBufferPointer { x in
            try result.scalars.withUnsafeMutableBufferPointer { try predict(x, steps: steps, into: $0) }
        }
        return result
    }

    /// Feeds token ids to a model that starts with an `Embedding`: `ids[b]` are stream b's next
    /// steps (the same count for every stream). Returns what `predict(_:)` returns.
    ///
    /// - Parameter ids: `batchSize` arrays of the same length, at least 1.
    /// - Returns: the outputs for those steps.
    /// - Throws: `ModelError.invalidConfiguration` for a model without an `Embedding` first or
    ///   ids of another batch or of ragged lengths; `ModelError.idOutOfRange` for an id outside its table.
    public func predict(ids: [[Int]]) throws -> Tensor<Scalar> {
        guard embedding != nil else {
            throw ModelError.invalidConfiguration("predict(ids:) needs a model that starts with an Embedding")
        }
        guard ids.count == batchSize else {
            throw ModelError.invalidConfiguration(
                "the session carries a batch of \(batchSize) stream\(batchSize == 1 ? "" : "s"); got ids for \(ids.count)")
        }
        let steps = ids.first?.count ?? 0
        guard steps >= 1, ids.allSatisfy({ $0.count == steps }) else {
            throw ModelError.invalidConfiguration("every stream needs the same number of ids, at least 1; got \(ids.map(\.count))")
        }
        for (b, stream) in ids.enumerated() {
            for (t, id) in stream.enumerated() where Scalar(exactly: id) == nil {
                // Too large to hold exactly in the model's scalars, so certainly outside the table.
                throw ModelError.idOutOfRange(layer: embedding!.name, id: Double(id), sample: b, step: t, inputDim: embedding!.inputDim)
            }
        }
        let values = ids.flatMap { $0.map { Scalar(exactly: $0)! } }
        return try predict(Tensor(shape: [batchSize, steps, 1], scalars: values))
    }

    /// Refuses an id outside the first `Embedding`'s table, before any state changes.
    private func checkIDs(_ input: UnsafePointer<Scalar>, steps: Int) throws {
        guard let embedding else { return }
        for b in 0..<batchSize {
            for t in 0..<steps where embedding.row(of: input[b * steps + t]) == nil {
                throw ModelError.idOutOfRange(
                    layer: embedding.name, id: Double(input[b * steps + t]), sample: b, step: t, inputDim: embedding.inputDim)
            }
        }
    }

    /// Runs the piece as passes of 2^k steps, longest first.
    private func run(_ input: UnsafePointer<Scalar>, steps: Int, into output: UnsafeMutablePointer<Scalar>) {
        var done = 0
        while done < steps {
            let left = steps - done
            let pass = passes[min(passes.count - 1, Int.bitWidth - 1 - left.leadingZeroBitCount)]
            let n = pass.steps
            // Batch-major [B, steps, F] → time-major [n, B, F] for the pass (the same memory when B is 1).
            var x = input + done * features
            if batchSize > 1 {
                for t in 0..<n {
                    for b in 0..<batchSize {
                        (scratch.pointer + (t * batchSize + b) * features).update(
                            from: input + (b * steps + done + t) * features, count: features)
                    }
                }
                x = UnsafePointer(scratch.pointer)
            }
            let y = pass.run(x, backend: backend)
            if outputsSequence {
                for t in 0..<n {
                    for b in 0..<batchSize {
                        (output + (b * steps + done + t) * outputFeatures).update(
                            from: y + (t * batchSize + b) * outputFeatures, count: outputFeatures)
                    }
                }
            } else if done + n == steps {
                output.update(from: y, count: batchSize * outputFeatures)
            }
            done += n
        }
    }

    /// The recurrent layers whose weights the session keeps packed (for tests).
    var packedLayerNames: [String] {
        zip(recurrentLayerNames, packedLayers).compactMap { $1 == nil ? nil : $0 }
    }

    /// The recurrent layers whose weights the session holds in 16 bits (binary16 with `.half`,
    /// bfloat16 with `.bfloat16`): those it keeps packed; none with `.full`. The others run in
    /// float as before.
    public var halfWeightLayerNames: [String] { weights != .full && Scalar.self == Float.self ? packedLayerNames : [] }

    /// Reads the model's weights again, after they changed (training, `setWeights`); the states stay.
    ///
    /// - Throws: with `.half` weights, `ModelError.invalidConfiguration` naming a layer and a
    ///   weight binary16 cannot hold (see `StreamingWeights.half`), with `.bfloat16` one bfloat16
    ///   cannot hold (see `StreamingWeights.bfloat16`); every layer is checked before
    ///   any is packed, so the session then keeps computing with its previous weights. With
    ///   `.full` weights it throws nothing.
    public func reloadWeights() throws {
        for layer in packedLayers { try layer?.checkHalfWeights() }
        for layer in packedLayers { layer?.reloadWeights() }
    }

    // MARK: States

    /// Starts every stream from zeros again (Keras's `reset_states()`).
    public func reset() {
        for state in states { state.reset(rows: 0..<batchSize) }
    }

    /// Starts the streams at `rows` (indices into the batch) from zeros again, leaving the others.
    ///
    /// - Parameter rows: the streams to reset, each in `0..<batchSize`.
    /// - Throws: `ModelError.invalidConfiguration` for a row outside the batch (nothing reset then).
    public func reset(rows: some Sequence<Int>) throws {
        let rows = Array(rows)
        if let bad = rows.first(where: { !(0..<batchSize).contains($0) }) {
            throw ModelError.invalidConfiguration("stream \(bad) is outside the session's batch 0..<\(batchSize)")
        }
        for state in states {
            for row in rows { state.reset(rows: row..<(row + 1)) }
        }
    }

    /// The state of the recurrent layer `layer` (one of `recurrentLayerNames`): h `[batchSize,
    /// units]` and, for LSTM, c.
    ///
    /// - Parameter layer: the layer's name.
    /// - Returns: copies of its h and c.
    /// - Throws: `ModelError.invalidConfiguration` for a name that is not a recurrent layer's.
    public func state(of layer: String) throws -> (h: Tensor<Scalar>, c: Tensor<Scalar>?) {
        let state = try self.state(named: layer)
        let count = batchSize * state.units
        let h = Tensor(shape: [batchSize, state.units], scalars: Array(UnsafeBufferPointer(start: state.h.pointer, count: count)))
        let c = state.c.map {
            Tensor(shape: [batchSize, state.units], scalars: Array(UnsafeBufferPointer(start: $0.pointer, count: count)))
        }
        return (h, c)
    }

    /// Sets the state of the recurrent layer `layer`: h `[batchSize, units]` and, for an LSTM, c
    /// (zeros when nil).
    ///
    /// - Parameters:
    ///   - layer: the layer's name, one of `recurrentLayerNames`.
    ///   - h: the state, `[batchSize, units]`.
    ///   - c: an LSTM's cell state, `[batchSize, units]`; nil for zeros (and for other cells).
    /// - Throws: `ModelError.invalidConfiguration` for an unknown layer, a shape that is not
    ///   `[batchSize, units]`, or a cell state given to a layer without one.
    public func setState(of layer: String, h: Tensor<Scalar>, c: Tensor<Scalar>? = nil) throws {
        let state = try self.state(named: layer)
        let shape = [batchSize, state.units]
        guard h.shape == shape else { throw ModelError.invalidConfiguration("\(layer)'s state is \(shape), not \(h.shape)") }
        guard c == nil || state.c != nil else { throw ModelError.invalidConfiguration("\(layer) has no cell state (only an LSTM has one)") }
        if let c, c.shape != shape { throw ModelError.invalidConfiguration("\(layer)'s cell state is \(shape), not \(c.shape)") }
        // The shape is checked above; the values are what is copied, and `scalars` can be set apart from it.
        let count = batchSize * state.units
        guard h.scalars.count == count, c.map({ $0.scalars.count == count }) ?? true else {
            throw ModelError.invalidConfiguration("\(layer)'s state takes \(count) values; the tensor's shape and values differ")
        }
        state.h.pointer.update(from: h.scalars, count: count)
        if let cell = state.c {
            if let c {
                cell.pointer.update(from: c.scalars, count: count)
            } else {
                cell.pointer.update(repeating: 0, count: count)
            }
        }
    }

    private func state(named layer: String) throws -> StreamState<Scalar> {
        guard let index = recurrentLayerNames.firstIndex(of: layer) else {
            throw ModelError.invalidConfiguration("no recurrent layer \(layer) in the session; it has \(recurrentLayerNames)")
        }
        return states[index]
    }
}

/// How a `StreamingSession` stores the weights of the layers it keeps packed (LSTM and reset-after
/// GRU over 64 units with tanh and sigmoid, in `Float`, that no mask reaches).
public enum StreamingWeights: Sendable, Hashable {
    /// Float, as the model holds them: the session gives `predict`'s outputs to rounding (the
    /// products are summed in another order).
    case full
    /// Half of each packed layer's recurrent kernel `U` in IEEE binary16 (the weights of LSTM's
    /// input and forget gates, of GRU's update and reset gates), widened to float as the step
    /// reads them; the other gates, the input kernel `W`, the biases, every sum and the states stay
    /// float. A step at batch 1 waits on reading its weights, and reading part of them as binary16
    /// beside the float rest is faster than reading all in either. The outputs differ from
    /// `predict` by the rounding of those weights (a relative 2^-11 each), carried by the state from
    /// step to step. Refused (`ModelError.invalidConfiguration`, naming the layer) when a weight of
    /// `U` is NaN or beyond ±65504, or when more than 1% of its non-zero weights are under 2^-25
    /// (binary16 would make them 0). `Double` models, and layers the session does not pack, run
    /// in full precision.
    case half
    /// All of each packed layer's recurrent kernel `U` in bfloat16 (float's upper 16 bits, rounded
    /// to nearest even when the session packs them), widened to float as the step reads them by an
    /// integer shift or mask rather than a conversion; `W`, the biases, every sum and the states
    /// stay float. Half of `U`'s bytes and no conversion work: the fastest step at batch 1, at a
    /// coarser rounding than `.half` (a relative 2^-8 on every weight, against 2^-11 on half of
    /// them), carried by the state from step to step. Refused (`ModelError.invalidConfiguration`,
    /// naming the layer) when a weight of `U` is NaN or infinite (or so near float's largest that
    /// it would round to infinity); bfloat16 has float's exponent range, so nothing is flushed.
    /// Needs RNNKit's AVX-512 kernels: on other CPUs making the session throws.
    case bfloat16
}

/// One recurrent layer's state in a session: h `[B, H]` and, for LSTM, c. Every pass's copy of
/// the layer starts from these buffers and leaves its final state in them.
final class StreamState<Scalar: BLASScalar> {
    let units: Int
    let h: Buffer<Scalar>
    let c: Buffer<Scalar>?

    init(units: Int, hasCell: Bool, batchSize: Int) {
        self.units = units
        h = Buffer(count: batchSize * units)
        c = hasCell ? Buffer(count: batchSize * units) : nil
    }

    func reset(rows: Range<Int>) {
        (h.pointer + rows.lowerBound * units).update(repeating: 0, count: rows.count * units)
        if let c { (c.pointer + rows.lowerBound * units).update(repeating: 0, count: rows.count * units) }
    }
}

/// The model's layers copied for pieces of `steps` steps (sharing the weights), their buffers
/// sized for the session's batch, each recurrent copy starting from the session's states. A
/// pass runs large gated layers, where no mask reaches them, as `PackedStreamLayer`s.
final class StreamPass<Scalar: BLASScalar> {
    /// What a layer does in a pass, held typed: the model's `MaskRole` calls closures from
    /// unspecialised generic code, which allocates on every call.
    private enum Role {
        case masking(Masking<Scalar>)
        case embedding(Embedding<Scalar>)
        case recurrent(RecurrentLayer<Scalar>, StreamState<Scalar>, PackedStreamLayer<Scalar>?, endsMask: Bool)
        case other(any Layer<Scalar>, endsMask: Bool)
    }

    let steps: Int
    private let batchSize: Int
    private let roles: [Role]

    /// The pass's copies of the model's layers, its recurrent layers' states in `states`, those
    /// that run packed in `packed` (nil for the others).
    init(
        _ modelLayers: [any Layer<Scalar>], steps: Int, batchSize: Int, states: [StreamState<Scalar>],
        packed: [PackedStreamLayer<Scalar>?], backend: any Backend
    ) {
        self.steps = steps
        self.batchSize = batchSize
        var roles: [Role] = [], next = 0
        for layer in modelLayers.map({ Self.copy($0, steps: steps) }) {
            layer.setTraining(false, step: 0)
            // A recurrent layer that runs packed never runs its copy: no buffers for it.
            if !(layer is RecurrentLayer<Scalar> && packed[next] != nil) {
                layer.reserve(batchCapacity: batchSize, needsInputGradient: false, backend: backend)
            }
            let endsMask = { if case .vector = layer.outputShape { true } else { false } }()
            switch layer {
            case let masking as Masking<Scalar>: roles.append(.masking(masking))
            case let embedding as Embedding<Scalar> where embedding.maskZero: roles.append(.embedding(embedding))
            case let recurrent as RecurrentLayer<Scalar>:
                let state = states[next]
                next += 1
                recurrent.setInitialState(h: UnsafePointer(state.h.pointer), c: state.c.map { UnsafePointer($0.pointer) })
                let packed = packed[next - 1]
                roles.append(.recurrent(recurrent, state, packed, endsMask: endsMask))
            default: roles.append(.other(layer, endsMask: endsMask))
            }
        }
        self.roles = roles
    }

    /// Runs the layers over `x [steps, B, F]` (time-major), handing a mask from a `Masking` layer
    /// or an `Embedding` with `maskZero` to the recurrent layers after it, and carries each
    /// recurrent layer's final state into the session's; returns the last layer's output
    /// (time-major), valid until the next run.
    func run(_ x: UnsafePointer<Scalar>, backend: any Backend) -> UnsafePointer<Scalar> {
        var output = x, mask: UnsafePointer<UInt8>?
        for role in roles {
            switch role {
            case .masking(let masking):
                output = masking.forward(output, batchSize: batchSize, backend: backend)
                mask = masking.lastMask
            case .embedding(let embedding):
                output = embedding.forward(output, batchSize: batchSize, backend: backend)
                mask = embedding.lastMask
            case .recurrent(let layer, let state, let packed, let endsMask):
                if let packed { // no mask reaches it
                    output = packed.run(output, steps: steps)
                } else {
                    layer.setMask(mask)
                    output = layer.forward(output, batchSize: batchSize, backend: backend)
                    let final = layer.finalState
                    state.h.pointer.update(from: final.h, count: state.h.count)
                    if let cell = state.c, let c = final.c { cell.pointer.update(from: c, count: cell.count) }
                }
                if endsMask { mask = nil }
            case .other(let layer, let endsMask):
                output = layer.forward(output, batchSize: batchSize, backend: backend)
                if endsMask { mask = nil }
            }
        }
        return output
    }

    /// Throws, naming the layer, when a stream cannot run it.
    static func checkStreamable(_ layer: any Layer<Scalar>) throws {
        switch layer {
        case let recurrent as RecurrentLayer<Scalar> where recurrent.goBackwards:
            throw ModelError.invalidConfiguration(
                "\(recurrent.name) reads its sequence backwards (goBackwards): it needs the whole sequence, which a stream does not have")
        case is RecurrentLayer<Scalar>, is Dense<Scalar>, is TimeDistributed<Scalar>, is Embedding<Scalar>, is Masking<Scalar>,
            is Dropout<Scalar>:
            return
        case let bidirectional as Bidirectional<Scalar>:
            throw ModelError.invalidConfiguration(
                "\(bidirectional.name) is Bidirectional: its backward half needs the whole sequence, which a stream does not have")
        default:
            throw ModelError.invalidConfiguration(
                "\(layer.name) (\(layer.typeName)) is not a layer a streaming session runs (Embedding, Masking, SimpleRNN, LSTM, GRU, Dense, TimeDistributed, Dropout)"
            )
        }
    }

    private static func copy(_ layer: any Layer<Scalar>, steps: Int) -> any Layer<Scalar> {
        switch layer {
        case let recurrent as RecurrentLayer<Scalar>: return recurrent.streamingCopy(steps: steps)
        case let dense as Dense<Scalar>: return dense.streamingCopy(steps: steps)
        case let wrapper as TimeDistributed<Scalar>:
            let copy = TimeDistributed(wrapper.layer.streamingCopy(steps: steps))
            copy.name = wrapper.name
            return copy
        case let embedding as Embedding<Scalar>: return embedding.streamingCopy(steps: steps)
        case let masking as Masking<Scalar>: return masking.streamingCopy(steps: steps)
        case let dropout as Dropout<Scalar>: return dropout.streamingCopy(steps: steps)
        default: preconditionFailure("checkStreamable lets only the layers above through")
        }
    }
}
