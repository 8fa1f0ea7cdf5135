import CSmallKernels

/// A large gated layer (LSTM, or GRU with the reset gate after the product, with tanh and
/// sigmoid) run over a stream's pieces with its weights packed once rather than at every call.
///
/// The engine packs `W` and `U` into panels at the start of each pass, which a whole sequence
/// repays over its steps; a stream's pass is a few steps or one, and packing would then cost
/// more than the steps. Here both are packed when the session is made (and by
/// `reloadWeights()`); a piece is the input projection of all its steps against the packed `W`
/// (one product), then at each step the fused product and cell step against the packed `U`
/// that the engine runs (`PackedRecurrence`). Taken for the cells whose step the engine fuses
/// (`PackedRecurrence.fusesStep`: LSTM and reset-after GRU with tanh and sigmoid) where it takes
/// its packed path (`PackedRecurrence.applies`), for layers no mask reaches; one per layer serves
/// every pass.
///
/// With half weights, `U` is packed with some of its gates in IEEE binary16
/// (`rnnkit_cell_half_gates`: LSTM's i and f, GRU's z and r), which the kernel widens to float in
/// registers: at batch 1 a step waits on reading `U`, and a core widens binary16 no faster than it
/// reads float from its L2 cache, so the step is fastest reading both at once, part binary16 and
/// part float. `W`, the biases, the sums and the states stay float (`W` in binary16 measured no
/// faster).
///
/// With bfloat16 weights, every gate of `U` is packed in bfloat16, two gates to a vector of
/// 32-bit lanes: bfloat16 is float's upper half, so the kernel widens it with an integer shift or
/// mask rather than the conversion unit, and reads half of float's bytes (AVX-512 only).
final class PackedStreamLayer<Scalar: BLASScalar> {
    private let layer: RecurrentLayer<Scalar>
    private let state: StreamState<Scalar>
    private let batchSize: Int
    private let longestPass: Int
    private let inputs: Int
    private let columns: Int // G·H
    private let weights: StreamingWeights // .full: U in packedRecurrent; else in halfRecurrent
    private let packedInput: Buffer<Scalar> // W [D, G·H] in panels
    private let packedRecurrent: Buffer<Scalar> // U [H, G·H] in the fused layout
    private let halfRecurrent: Buffer<UInt16> // U in the fused layout, in binary16 (some gates) or bfloat16
    private let inputBias: Buffer<Scalar> // [G·H]: b (GRU: its input row)
    private let recurrentBias: Buffer<Scalar> // GRU: b′, its recurrent row
    private let gates: Buffer<Scalar> // [T, B, G·H]
    private let cells: Buffer<Scalar> // LSTM: c_t [T, B, H]
    private let auxiliary: Buffer<Scalar> // LSTM: tanh(c_t); GRU: h_{t−1}·U_h + b′_h [B, H]
    private let outputs: Buffer<Scalar> // h_t [T, B, H]

    /// `layer` (taken only where `applies`) over pieces of up to `longestPass` steps, carrying
    /// `state`, its weights in float or (`weights` other than `.full`, for `Float` only) in
    /// binary16 or bfloat16.
    ///
    /// - Throws: `ModelError.invalidConfiguration` when a weight does not fit the 16-bit format
    ///   (`checkHalfWeights()`).
    init(
        _ layer: RecurrentLayer<Scalar>, state: StreamState<Scalar>, batchSize: Int, longestPass: Int, weights: StreamingWeights
    ) throws {
        precondition(
            weights == .full
                || (Scalar.self == Float.self
                    && (weights == .half ? rnnkit_half_panel_width() : rnnkit_bfloat16_panel_width()) > 0),
            "16-bit weights where they do not run")
        self.layer = layer
        self.weights = weights
        let half = weights != .full
        self.state = state
        self.batchSize = batchSize
        self.longestPass = longestPass
        inputs = layer.parameters[0].shape[0]
        let H = layer.units, G = layer.cell.gates
        columns = G * H
        packedInput = Buffer(count: rnnkit_panels_count(columns, inputs))
        packedRecurrent = Buffer(count: half ? 0 : rnnkit_cell_packed_count(G, H))
        halfRecurrent = Buffer(
            count: weights == .half
                ? rnnkit_cell_packed_half_count(G, H) : weights == .bfloat16 ? rnnkit_cell_packed_bfloat16_count(G, H) : 0)
        inputBias = Buffer(count: columns)
        recurrentBias = Buffer(count: columns)
        gates = Buffer(count: longestPass * batchSize * columns)
        cells = Buffer(count: longestPass * batchSize * H)
        auxiliary = Buffer(count: batchSize * H)
        outputs = Buffer(count: longestPass * batchSize * H)
        try checkHalfWeights()
        reloadWeights()
    }

    /// Whether a stream's one-step pass runs `layer` here.
    static func applies(_ layer: RecurrentLayer<Scalar>, backend: any Backend) -> Bool {
        guard let blas = backend as? BLASBackend, PackedRecurrence.fusesStep(layer.cell) else { return false }
        return PackedRecurrence.applies(Scalar.self, layer.cell, units: layer.units, kernels: blas.kernels)
    }

    /// How many of a cell's `gates` gate blocks of `U` half weights hold in binary16 (the first ones).
    static func halfGates(_ gates: Int) -> Int { rnnkit_cell_half_gates(gates) }

    /// The share of `U`'s non-zero weights that may round to zero in binary16 before the layer is
    /// refused: a few tiny weights cost less than binary16's rounding of the others; a kernel
    /// scaled down below binary16's range would lose what it computes.
    static var largestFlushedShare: Double { 0.01 }

    /// With half weights, throws when a weight of `U` does not fit binary16: NaN or beyond ±65504,
    /// or more than `largestFlushedShare` of its non-zero weights under 2^-25 (they would become
    /// 0). Every gate's weights are checked, also those kept in float, so that what is refused does
    /// not depend on the CPU. Nothing is packed here, so a refusal leaves the packed weights as
    /// they were.
    /// With bfloat16 weights, throws when a weight of `U` is NaN, infinite, or so near float's
    /// largest that bfloat16 rounds it to infinity; bfloat16 has float's exponent range, so there
    /// is no flushing to refuse.
    func checkHalfWeights() throws {
        guard self.weights != .full else { return }
        let recurrentKernel = layer.parameters[1].value
        let weights = Self.float(UnsafePointer(recurrentKernel.pointer)), count = recurrentKernel.count
        if self.weights == .bfloat16 {
            let bad = rnnkit_bfloat16_from_floats(weights, count, nil)
            if bad >= 0 {
                throw ModelError.invalidConfiguration(
                    "\(layer.name)'s recurrent kernel holds \(weights[bad]) at [\(bad / columns), \(bad % columns)], which bfloat16 cannot hold: the layer cannot run with .bfloat16 weights; use .full"
                )
            }
            return
        }
        var flushed = 0
        let bad = rnnkit_half_from_floats(weights, count, nil, &flushed)
        if bad >= 0 {
            throw ModelError.invalidConfiguration(
                "\(layer.name)'s recurrent kernel holds \(weights[bad]) at [\(bad / columns), \(bad % columns)], which binary16 cannot hold (at most ±65504): the layer cannot run with .half weights; use .full"
            )
        }
        let nonZero = UnsafeBufferPointer(start: weights, count: count).reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        if flushed > 0, Double(flushed) > Self.largestFlushedShare * Double(nonZero) {
            throw ModelError.invalidConfiguration(
                "\(layer.name)'s recurrent kernel has \(flushed) of its \(nonZero) non-zero weights under 2^-25 in size, which binary16 rounds to 0 (more than \(Int(Self.largestFlushedShare * 100))% of them): the layer cannot run with .half weights; use .full"
            )
        }
    }

    /// Packs the layer's weights again (after they changed; with half weights, after
    /// `checkHalfWeights()` passed).
    func reloadWeights() {
        let parameters = layer.parameters
        let packedW = PackedRecurrence.packInputKernel(
            inputs: inputs, columns: columns, kernel: parameters[0].value.pointer, into: packedInput.pointer)
        let recurrentKernel = Self.float(UnsafePointer(parameters[1].value.pointer))
        let packedU: Bool
        switch weights {
        case .half: packedU = rnnkit_cell_pack_half(layer.cell.gates, layer.units, recurrentKernel, halfRecurrent.pointer) != 0
        case .bfloat16:
            packedU = rnnkit_cell_pack_bfloat16(layer.cell.gates, layer.units, recurrentKernel, halfRecurrent.pointer) != 0
        case .full:
            packedU = PackedRecurrence.packForward(
                layer.cell, units: layer.units, recurrentKernel: parameters[1].value.pointer, into: packedRecurrent.pointer)
        }
        precondition(packedW && packedU, "the packed stream step was chosen where the packed kernels do not run")
        if parameters.count > 2 {
            let bias = parameters[2].value.pointer
            inputBias.pointer.update(from: bias, count: columns)
            // GRU reset-after's bias is [2, 3·H]: the input row, then the recurrent row.
            if case .gru = layer.cell { recurrentBias.pointer.update(from: bias + columns, count: columns) }
        } else {
            inputBias.pointer.update(repeating: 0, count: columns)
            recurrentBias.pointer.update(repeating: 0, count: columns)
        }
    }

    /// The layer over `steps` steps of `x [T, B, D]` (time-major), the state advanced: every h_t
    /// `[T, B, H]`, or the last `[B, H]` when the layer returns no sequence; valid until the next run.
    func run(_ x: UnsafePointer<Scalar>, steps: Int) -> UnsafePointer<Scalar> {
        precondition(steps <= longestPass, "a piece of \(steps) steps is longer than the session's passes")
        let H = layer.units, B = batchSize, rows = steps * B
        for row in 0..<rows { (gates.pointer + row * columns).update(from: inputBias.pointer, count: columns) }
        PackedRecurrence.product(
            rows: rows, columns: columns, depth: inputs, a: x, lda: inputs, packed: packedInput.pointer,
            panelDepth: inputs, accumulate: true, c: gates.pointer, ldc: columns)
        for t in 0..<steps {
            let previous = UnsafePointer(t == 0 ? state.h.pointer : outputs.pointer + (t - 1) * B * H)
            let stepGates = gates.pointer + t * B * columns, output = outputs.pointer + t * B * H
            if weights != .full {
                halfStep(previous: previous, t: t, gates: stepGates, output: output)
            } else if let stateCell = state.c {
                let previousCell = UnsafePointer(t == 0 ? stateCell.pointer : cells.pointer + (t - 1) * B * H)
                PackedRecurrence.lstmStep(
                    batch: B, units: H, packed: packedRecurrent.pointer, previousState: previous, previousCell: previousCell,
                    gates: stepGates, cell: cells.pointer + t * B * H, activatedCell: auxiliary.pointer, state: output)
            } else {
                PackedRecurrence.gruStep(
                    batch: B, units: H, packed: packedRecurrent.pointer, recurrentBias: recurrentBias.pointer,
                    previousForProduct: previous, previousState: previous, gates: stepGates, auxiliary: auxiliary.pointer,
                    state: output)
            }
        }
        let last = (steps - 1) * B * H
        state.h.pointer.update(from: outputs.pointer + last, count: B * H)
        state.c?.pointer.update(from: cells.pointer + last, count: B * H)
        return UnsafePointer(layer.returnSequences ? outputs.pointer : outputs.pointer + last)
    }

    /// Step `t` of a piece against the binary16 or bfloat16 `U`: as `run`'s float step.
    private func halfStep(
        previous: UnsafePointer<Scalar>, t: Int, gates: UnsafeMutablePointer<Scalar>, output: UnsafeMutablePointer<Scalar>
    ) {
        let H = layer.units, B = batchSize
        let done: Int32
        if let stateCell = state.c {
            let previousCell = UnsafePointer(t == 0 ? stateCell.pointer : cells.pointer + (t - 1) * B * H)
            done = (weights == .bfloat16 ? rnnkit_lstm_forward_step_bfloat16 : rnnkit_lstm_forward_step_half)(
                B, H, halfRecurrent.pointer, Self.float(previous), Self.float(previousCell), Self.float(gates),
                Self.float(cells.pointer + t * B * H), Self.float(auxiliary.pointer), Self.float(output))
        } else {
            done = (weights == .bfloat16 ? rnnkit_gru_forward_step_bfloat16 : rnnkit_gru_forward_step_half)(
                B, H, halfRecurrent.pointer, Self.float(UnsafePointer(recurrentBias.pointer)), Self.float(previous),
                Self.float(previous), Self.float(gates), Self.float(auxiliary.pointer), Self.float(output))
        }
        precondition(done != 0, "the half-weight step was chosen where it does not run")
    }

    private static func float(_ p: UnsafePointer<Scalar>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }
    private static func float(_ p: UnsafeMutablePointer<Scalar>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }
}
