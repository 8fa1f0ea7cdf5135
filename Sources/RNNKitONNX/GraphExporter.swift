import Foundation
import RNNKit

/// Walks a model's layers, adding each one's nodes to a graph. Values between layers are
/// time-major (`[T, B, F]`, as RNNKit's layers and ONNX's recurrent operators read them); the graph
/// transposes the batch-major input once at the start and a sequence output once at the end.
struct GraphExporter<Scalar: BLASScalar> {
    let model: Sequential<Scalar>
    let options: ONNXExportOptions
    var graph = GraphBuilder()
    /// The value the next layer reads, and its shape.
    private var current = ""
    private var shape: FeatureShape
    /// Each sample's length (int32 `[B]`) while a mask is active: from the input, the ids, a
    /// `Masking` layer; it ends at the first recurrent layer that returns its last state.
    private var lengths: String?
    /// The graph input `lengths`, which reaches only the layers up to the end of the first mask.
    private var lengthsInput: String?
    /// `[T, 1]` int32 positions 1…T, and `[T, B, 1]` whether each step is within its sample's length.
    private var positions: String?
    private var stepMasks: [String: String] = [:]

    init(model: Sequential<Scalar>, options: ONNXExportOptions) {
        self.model = model
        self.options = options
        self.shape = model.inputShape
    }

    mutating func export() throws -> Onnx_GraphProto {
        let batch = GraphBuilder.Dimension.named("batch")
        var steps = GraphBuilder.Dimension.named("steps")
        if case .sequence(let count, _) = model.inputShape, !options.dynamicSteps { steps = .fixed(count) }
        switch model.inputShape {
        case .sequence(_, let features):
            let input = graph.input("input", type: .float, dims: [batch, steps, .fixed(features)])
            current = graph.op("Transpose", [input], name: "input", attributes: [Attribute.ints("perm", [1, 0, 2])])
        case .vector(let features):
            current = graph.input("input", type: .float, dims: [batch, .fixed(features)])
        }
        if options.lengthsInput {
            guard case .sequence = model.inputShape else {
                throw ONNXExportError.maskNotExpressible(layer: "input", reason: "a model of vectors has no steps to take lengths of")
            }
            let input = graph.input("lengths", type: .int32, dims: [batch])
            lengthsInput = input
            lengths = input
        }
        for layer in model.layers {
            try add(layer)
        }
        switch shape {
        case .sequence(_, let features):
            let output = graph.op("Transpose", [current], name: "output", attributes: [Attribute.ints("perm", [1, 0, 2])])
            graph.output(output, as: "output", type: .float, dims: [batch, steps, .fixed(features)])
        case .vector(let features):
            graph.output(current, as: "output", type: .float, dims: [batch, .fixed(features)])
        }
        return graph.graph(name: model.name)
    }

    private mutating func add(_ layer: any Layer<Scalar>) throws {
        switch layer {
        case let dense as Dense<Scalar>:
            current = try self.dense(dense, name: dense.name)
        case let distributed as TimeDistributed<Scalar>:
            current = try self.dense(distributed.layer, name: distributed.name)
        case is Dropout<Scalar>:
            break // inference: the identity
        case let embedding as Embedding<Scalar>:
            try self.embedding(embedding)
        case let masking as RNNKit.Masking<Scalar>:
            try self.masking(masking)
        case let bidirectional as Bidirectional<Scalar>:
            try recurrent(bidirectional.forwardLayer, bidirectional.backwardLayer, merge: bidirectional.mergeMode, name: bidirectional.name)
        case let recurrent as RecurrentLayer<Scalar>:
            try self.recurrent(recurrent, nil, merge: nil, name: recurrent.name)
        default:
            throw ONNXExportError.unsupportedLayer(layer: layer.name, type: layer.typeName)
        }
        shape = layer.outputShape
    }

    // MARK: Weights

    /// A parameter's values in float32, row-major in its own shape.
    private static func values(_ parameter: Parameter<Scalar>) -> [Float] {
        parameter.tensor.scalars.map { Float($0) }
    }

    // MARK: Dense, Embedding, Masking

    private mutating func dense(_ dense: Dense<Scalar>, name: String) throws -> String {
        let kernel = dense.parameters[0]
        var value = graph.op("MatMul", [current, graph.floats(Self.values(kernel), shape: kernel.shape, name: kernel.name)], name: name)
        if dense.useBias {
            let bias = dense.parameters[1]
            value = graph.op("Add", [value, graph.floats(Self.values(bias), shape: bias.shape, name: bias.name)], name: name)
        }
        return try activation(dense.activation, value, layer: name)
    }

    /// `value` through `activation`, softmax across the last axis.
    private mutating func activation(_ activation: Activation, _ value: String, layer: String) throws -> String {
        switch activation {
        case .linear: value
        case .tanh: graph.op("Tanh", [value], name: layer)
        case .relu: graph.op("Relu", [value], name: layer)
        case .sigmoid: graph.op("Sigmoid", [value], name: layer)
        case .hardSigmoid:
            graph.op("HardSigmoid", [value], name: layer, attributes: [Attribute.float("alpha", 1.0 / 6), Attribute.float("beta", 0.5)])
        case .softmax: graph.op("Softmax", [value], name: layer, attributes: [Attribute.int("axis", -1)])
        }
    }

    private mutating func embedding(_ embedding: Embedding<Scalar>) throws {
        let name = embedding.name, table = embedding.parameters[0]
        let ids = graph.op("Squeeze", [current, graph.int64s([2], name: "\(name)/axes")], name: name)
        let rows = graph.op("Cast", [ids], name: name, attributes: [Attribute.int("to", Int(Onnx_TensorProto.DataType.int64.rawValue))])
        current = graph.op(
            "Gather", [graph.floats(Self.values(table), shape: table.shape, name: table.name), rows], name: name,
            attributes: [Attribute.int("axis", 0)])
        if embedding.maskZero {
            // A step is kept when its id is not 0; the length is the last kept step's position.
            let zero = graph.floats([0], shape: [], name: "\(name)/zero")
            let kept = graph.op("Not", [graph.op("Equal", [ids, zero], name: name)], name: name)
            addMaskLengths(kept: kept, name: name)
        }
    }

    private mutating func masking(_ masking: RNNKit.Masking<Scalar>) throws {
        guard options.masking == .trailingPadding else {
            throw ONNXExportError.maskNotExpressible(
                layer: masking.name,
                reason:
                    "a Masking layer may mask steps at the start or in the middle of a sequence, which ONNX's sequence_lens cannot skip; "
                    + "export with masking: .trailingPadding when the masked steps of your data always trail")
        }
        let name = masking.name
        let value = graph.floats([Float(masking.maskValue)], shape: [], name: "\(name)/mask_value")
        // A step is kept when some feature differs from the mask value; kept steps pass, masked ones are zeroed.
        let differs = graph.op("Not", [graph.op("Equal", [current, value], name: name)], name: name)
        let some = graph.op(
            "ReduceMax",
            [graph.op("Cast", [differs], name: name, attributes: [Attribute.int("to", Int(Onnx_TensorProto.DataType.int32.rawValue))])],
            name: name, attributes: [Attribute.ints("axes", [2]), Attribute.int("keepdims", 1)])
        let keep = graph.op("Cast", [some], name: name, attributes: [Attribute.int("to", Int(Onnx_TensorProto.DataType.float.rawValue))])
        current = graph.op("Mul", [current, keep], name: name)
        let kept = graph.op("Squeeze", [some, graph.int64s([2], name: "\(name)/axes")], name: name)
        addMaskLengths(kept: kept, name: name)
    }

    /// Sets `lengths` from `kept` (`[T, B]`, bool or int32: whether each step is kept) as each
    /// sample's last kept position, the shorter one where a length is already set.
    private mutating func addMaskLengths(kept: String, name: String) {
        let int32 = Int(Onnx_TensorProto.DataType.int32.rawValue)
        let keptInt = graph.op("Cast", [kept], name: name, attributes: [Attribute.int("to", int32)])
        let positioned = graph.op("Mul", [keptInt, stepPositions()], name: name)
        var length = graph.op(
            "ReduceMax", [positioned], name: name, attributes: [Attribute.ints("axes", [0]), Attribute.int("keepdims", 0)])
        if let lengths { length = graph.op("Min", [lengths, length], name: name) }
        lengths = length
    }

    /// `[T, 1]` int32: 1, 2, …, T, where T is the time dimension of the value the layers read.
    private mutating func stepPositions() -> String {
        if let positions { return positions }
        let name = "steps"
        let int32 = Int(Onnx_TensorProto.DataType.int32.rawValue)
        let count = graph.op("Shape", [current], name: name, attributes: [Attribute.int("start", 0), Attribute.int("end", 1)])
        let scalar = graph.op(
            "Cast", [graph.op("Squeeze", [count, graph.int64s([0], name: "\(name)/axes")], name: name)], name: name,
            attributes: [Attribute.int("to", int32)])
        let one = graph.int32Scalar(1, name: "\(name)/one")
        let last = graph.op("Add", [scalar, one], name: name)
        let range = graph.op("Range", [one, last, one], name: name)
        positions = graph.op("Unsqueeze", [range, graph.int64s([1], name: "\(name)/axes")], name: name)
        return positions!
    }

    /// `[T, B, 1]` bool: whether each step lies within its sample's `length`.
    private mutating func stepMask(_ length: String) -> String {
        if let mask = stepMasks[length] { return mask }
        let name = "step_mask"
        let within = graph.op("LessOrEqual", [stepPositions(), length], name: name)
        let mask = graph.op("Unsqueeze", [within, graph.int64s([2], name: "\(name)/axes")], name: name)
        stepMasks[length] = mask
        return mask
    }

    // MARK: Recurrent layers

    /// One recurrent layer, or (with `backward`) a bidirectional pair merged by `merge`.
    private mutating func recurrent(
        _ forward: RecurrentLayer<Scalar>, _ backward: RecurrentLayer<Scalar>?, merge: MergeMode?, name: String
    ) throws {
        let returnSequences = forward.returnSequences
        if lengths != nil, returnSequences, forward.goBackwards {
            throw ONNXExportError.maskNotExpressible(
                layer: forward.name,
                reason: "a layer reading backwards that returns its sequence under a mask hands on its outputs in reversed order")
        }
        // ONNX's direction 0 reads forwards, 1 backwards.
        let layers: [RecurrentLayer<Scalar>] =
            if let backward { forward.goBackwards ? [backward, forward] : [forward, backward] } else { [forward] }
        let direction = backward != nil ? "bidirectional" : forward.goBackwards ? "reverse" : "forward"
        let operatorName: String, activations: [Activation]
        switch forward.cell {
        case .simple(let f): (operatorName, activations) = ("RNN", [f])
        case .lstm(let f, let sigma): (operatorName, activations) = ("LSTM", [sigma, f, f])
        case .gru(let f, let sigma, _): (operatorName, activations) = ("GRU", [sigma, f])
        }
        var attributes = [Attribute.int("hidden_size", forward.units), Attribute.string("direction", direction)]
        attributes += try activationAttributes(Array(repeating: activations, count: layers.count).flatMap { $0 }, layer: forward.name)
        if case .gru(_, _, let resetAfter) = forward.cell { attributes.append(Attribute.int("linear_before_reset", resetAfter ? 1 : 0)) }

        let weights = layers.map { RecurrentWeights(layer: $0) }
        let H = forward.units, D = weights[0].inputs, rows = forward.cell.gates * H
        let w = graph.floats(weights.flatMap(\.w), shape: [layers.count, rows, D], name: "\(name)/W")
        let r = graph.floats(weights.flatMap(\.r), shape: [layers.count, rows, H], name: "\(name)/R")
        let b = graph.floats(weights.flatMap(\.b), shape: [layers.count, 2 * rows], name: "\(name)/B")
        var inputs = [current, w, r, b, lengths ?? ""]
        if options.initialStateInputs {
            inputs.append(initialState(layers, leaf: "initial_h", name: name))
            if case .lstm = forward.cell { inputs.append(initialState(layers, leaf: "initial_c", name: name)) }
        }
        while inputs.last == "" { inputs.removeLast() }
        // Y, every step's state, only when the sequence is returned (a runtime need not compute it otherwise).
        let outputs = graph.node(operatorName, inputs, outputs: 2, unused: returnSequences ? [] : [0], name: name, attributes: attributes)
        let (y, yh) = (outputs[0], outputs[1]) // [T, dirs, B, H] and [dirs, B, H]

        if backward == nil {
            if returnSequences {
                var sequence = graph.op("Squeeze", [y, graph.int64s([1], name: "\(name)/axes")], name: name)
                if forward.goBackwards {
                    sequence = reversedInTime(sequence, name: name)
                } else if let lengths, !forward.zeroOutputForMask {
                    // RNNKit (as Keras) repeats the last state at masked steps; ONNX writes zeros there.
                    let last = graph.op("Squeeze", [yh, graph.int64s([0], name: "\(name)/axes")], name: name)
                    sequence = graph.op("Where", [stepMask(lengths), sequence, last], name: name)
                }
                current = sequence
            } else {
                current = graph.op("Squeeze", [yh, graph.int64s([0], name: "\(name)/axes")], name: name)
            }
        } else {
            // Each direction's output in time order: step t of both is about x_t (as Bidirectional
            // merges them); a forward layer reading backwards reverses the merged sequence.
            let source = returnSequences ? y : yh, axis = returnSequences ? 1 : 0
            let halves = graph.node("Split", [source], outputs: 2, name: name, attributes: [Attribute.int("axis", axis)])
            let directions = halves.map { graph.op("Squeeze", [$0, graph.int64s([axis], name: "\(name)/axes")], name: name) }
            let (f, bw) = forward.goBackwards ? (directions[1], directions[0]) : (directions[0], directions[1])
            var merged: String
            switch merge ?? .concat {
            case .concat: merged = graph.op("Concat", [f, bw], name: name, attributes: [Attribute.int("axis", -1)])
            case .sum: merged = graph.op("Add", [f, bw], name: name)
            case .mul: merged = graph.op("Mul", [f, bw], name: name)
            case .average:
                merged = graph.op(
                    "Mul", [graph.op("Add", [f, bw], name: name), graph.floats([0.5], shape: [], name: "\(name)/half")], name: name)
            }
            if returnSequences, forward.goBackwards { merged = reversedInTime(merged, name: name) }
            current = merged
        }
        if !returnSequences { lengths = nil }
    }

    /// `value` `[T, …]` with its time axis reversed.
    private mutating func reversedInTime(_ value: String, name: String) -> String {
        graph.op(
            "Slice",
            [
                value, graph.int64s([-1], name: "\(name)/starts"), graph.int64s([Int(Int64.min)], name: "\(name)/ends"),
                graph.int64s([0], name: "\(name)/slice_axes"), graph.int64s([-1], name: "\(name)/slice_steps"),
            ], name: name)
    }

    /// The graph inputs of the layers' initial states (`[B, H]` each), as ONNX's `[dirs, B, H]`.
    private mutating func initialState(_ layers: [RecurrentLayer<Scalar>], leaf: String, name: String) -> String {
        let parts = layers.map { layer in
            let input = graph.input("\(layer.name)/\(leaf)", type: .float, dims: [.named("batch"), .fixed(layer.units)])
            return graph.op("Unsqueeze", [input, graph.int64s([0], name: "\(name)/axes")], name: name)
        }
        return parts.count == 1 ? parts[0] : graph.op("Concat", parts, name: name, attributes: [Attribute.int("axis", 0)])
    }

    /// The `activations` attribute (and the α, β the functions that take them need) of a recurrent operator.
    private func activationAttributes(_ activations: [Activation], layer: String) throws -> [Onnx_AttributeProto] {
        var names: [String] = [], alphas: [Float] = [], betas: [Float] = []
        for activation in activations {
            switch activation {
            case .tanh: names.append("Tanh")
            case .sigmoid: names.append("Sigmoid")
            case .relu: names.append("Relu")
            case .linear:
                // Affine(x) = αx + β.
                names.append("Affine")
                alphas.append(1)
                betas.append(0)
            case .hardSigmoid:
                names.append("HardSigmoid")
                alphas.append(1.0 / 6)
                betas.append(0.5)
            case .softmax:
                throw ONNXExportError.unsupportedActivation(layer: layer, activation: activation.rawValue)
            }
        }
        var attributes = [Attribute.strings("activations", names)]
        if !alphas.isEmpty {
            attributes += [Attribute.floats("activation_alpha", alphas), Attribute.floats("activation_beta", betas)]
        }
        return attributes
    }
}

/// One recurrent layer's weights in ONNX's layout: `W [G·H, D]`, `R [G·H, H]` (Keras's kernels
/// transposed, LSTM's gate blocks reordered from i f c o to i o f c) and `B [2·G·H]` (the input
/// bias, then the recurrent bias, zero but for GRU with reset-after).
struct RecurrentWeights {
    let inputs: Int
    let w: [Float], r: [Float], b: [Float]

    init<Scalar: BLASScalar>(layer: RecurrentLayer<Scalar>) {
        let parameters = layer.parameters, H = layer.units, G = layer.cell.gates
        let kernel = parameters[0].tensor.scalars.map { Float($0) }, recurrent = parameters[1].tensor.scalars.map { Float($0) }
        let D = parameters[0].shape[0]
        inputs = D
        // ONNX gate g takes Keras's block order[g].
        let order: [Int] =
            switch layer.cell {
            case .lstm: [0, 3, 1, 2]
            default: Array(0..<G)
            }
        func transposed(_ matrix: [Float], rows: Int) -> [Float] {
            var out = [Float](repeating: 0, count: G * H * rows)
            for (g, block) in order.enumerated() {
                for u in 0..<H {
                    for i in 0..<rows { out[(g * H + u) * rows + i] = matrix[i * G * H + block * H + u] }
                }
            }
            return out
        }
        w = transposed(kernel, rows: D)
        r = transposed(recurrent, rows: H)
        var inputBias = [Float](repeating: 0, count: G * H), recurrentBias = [Float](repeating: 0, count: G * H)
        if layer.useBias, parameters.count > 2 {
            let bias = parameters[2].tensor.scalars.map { Float($0) }
            let hasRecurrentRow = bias.count == 2 * G * H
            for (g, block) in order.enumerated() {
                for u in 0..<H {
                    inputBias[g * H + u] = bias[block * H + u]
                    if hasRecurrentRow { recurrentBias[g * H + u] = bias[G * H + block * H + u] }
                }
            }
        }
        b = inputBias + recurrentBias
    }
}
