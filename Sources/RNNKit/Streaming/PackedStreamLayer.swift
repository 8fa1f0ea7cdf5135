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
final class PackedStreamLayer<Scalar: BLASScalar> {
    private let layer: RecurrentLayer<Scalar>
    private let state: StreamState<Scalar>
    private let batchSize: Int
    private let longestPass: Int
    private let inputs: Int
    private let columns: Int // G·H
    private let packedInput: Buffer<Scalar> // W [D, G·H] in panels
    private let packedRecurrent: Buffer<Scalar> // U [H, G·H] in the fused layout
    private let inputBias: Buffer<Scalar> // [G·H]: b (GRU: its input row)
    private let recurrentBias: Buffer<Scalar> // GRU: b′, its recurrent row
    private let gates: Buffer<Scalar> // [T, B, G·H]
    private let cells: Buffer<Scalar> // LSTM: c_t [T, B, H]
    private let auxiliary: Buffer<Scalar> // LSTM: tanh(c_t); GRU: h_{t−1}·U_h + b′_h [B, H]
    private let outputs: Buffer<Scalar> // h_t [T, B, H]

    /// `layer` (taken only where `applies`) over pieces of up to `longestPass` steps, carrying `state`.
    init(_ layer: RecurrentLayer<Scalar>, state: StreamState<Scalar>, batchSize: Int, longestPass: Int) {
        self.layer = layer
        self.state = state
        self.batchSize = batchSize
        self.longestPass = longestPass
        inputs = layer.parameters[0].shape[0]
        let H = layer.units, G = layer.cell.gates
        columns = G * H
        packedInput = Buffer(count: rnnkit_panels_count(columns, inputs))
        packedRecurrent = Buffer(count: rnnkit_cell_packed_count(G, H))
        inputBias = Buffer(count: columns)
        recurrentBias = Buffer(count: columns)
        gates = Buffer(count: longestPass * batchSize * columns)
        cells = Buffer(count: longestPass * batchSize * H)
        auxiliary = Buffer(count: batchSize * H)
        outputs = Buffer(count: longestPass * batchSize * H)
        reloadWeights()
    }

    /// Whether a stream's one-step pass runs `layer` here.
    static func applies(_ layer: RecurrentLayer<Scalar>, backend: any Backend) -> Bool {
        guard let blas = backend as? BLASBackend, PackedRecurrence.fusesStep(layer.cell) else { return false }
        return PackedRecurrence.applies(Scalar.self, layer.cell, units: layer.units, kernels: blas.kernels)
    }

    /// Packs the layer's weights again (after they changed).
    func reloadWeights() {
        let parameters = layer.parameters
        let packedW = PackedRecurrence.packInputKernel(
            inputs: inputs, columns: columns, kernel: parameters[0].value.pointer, into: packedInput.pointer)
        let packedU = PackedRecurrence.packForward(
            layer.cell, units: layer.units, recurrentKernel: parameters[1].value.pointer, into: packedRecurrent.pointer)
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
            if let stateCell = state.c {
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
}
