import Foundation
import RNNKit

/// What `config.json` describes, in RNNKit's terms: read and checked by `KerasConfig.parse`,
/// built into a `Sequential` by `KerasModel`.
struct KerasModelSpec {
    enum LayerSpec {
        case recurrent(RecurrentSpec)
        case bidirectional(RecurrentSpec, mergeMode: MergeMode)
        case dense(DenseSpec, timeDistributed: Bool)
        case dropout(rate: Double, seed: UInt64)
        case masking(value: Double)
        case embedding(inputDim: Int, outputDim: Int, maskZero: Bool, initializer: Initializer)
    }

    struct RecurrentSpec: Equatable {
        var kind: RecurrentCellKind
        var units: Int
        var activation: Activation = .tanh
        var recurrentActivation: Activation = .sigmoid
        var returnSequences = false
        var goBackwards = false
        var dropout = 0.0
        var recurrentDropout = 0.0
        var seed: UInt64 = 0
        var zeroOutputForMask = false
        var unitForgetBias = true
        var resetAfter = true
        var kernelInitializer: Initializer = .glorotUniform
        var recurrentInitializer: Initializer = .orthogonal()
        var biasInitializer: Initializer = .zeros
        var useBias = true
        var kernelRegularizer: Regularizer?
        var recurrentRegularizer: Regularizer?
        var biasRegularizer: Regularizer?
        var stateful = false
    }

    struct DenseSpec {
        var units: Int
        var activation: Activation = .linear
        var kernelInitializer: Initializer = .glorotUniform
        var biasInitializer: Initializer = .zeros
        var useBias = true
        var kernelRegularizer: Regularizer?
        var biasRegularizer: Regularizer?
    }

    enum OptimizerKind {
        case adam(learningRate: Double, beta1: Double, beta2: Double, epsilon: Double)
        case adamW(learningRate: Double, weightDecay: Double, beta1: Double, beta2: Double, epsilon: Double)
        case sgd(learningRate: Double, momentum: Double, nesterov: Bool)
        case rmsprop(learningRate: Double, rho: Double, epsilon: Double)
    }

    struct OptimizerSpec {
        var kind: OptimizerKind
        var clipping: GradientClipping
    }

    var name: String
    /// `float32` or `float64`: the dtype policy the file's model computes in.
    var dtype: String
    var inputShape: FeatureShape
    /// The batch size the input fixes (`batch_shape[0]`), kept for a stateful model.
    var batchSize: Int?
    var layers: [LayerSpec]
    /// What the model was built with that the file did not say, one line each.
    var notes: [String] = []

    /// Whether a recurrent layer is stateful.
    var isStateful: Bool {
        layers.contains { if case .recurrent(let r) = $0 { r.stateful } else { false } }
    }
    var optimizer: OptimizerSpec?
    var loss: (any Loss)?

    /// Builds the layers (unbuilt; `Sequential` builds them).
    func makeLayers<Scalar: BLASScalar>(_: Scalar.Type) -> [any Layer<Scalar>] {
        layers.map { spec -> any Layer<Scalar> in
            switch spec {
            case .recurrent(let r):
                return Self.recurrentLayer(r, Scalar.self)
            case .bidirectional(let r, let mode):
                return Bidirectional(Self.recurrentLayer(r, Scalar.self), mergeMode: mode)
            case .dense(let d, let timeDistributed):
                let dense = Dense<Scalar>(
                    units: d.units, activation: d.activation,
                    kernelInitializer: d.kernelInitializer, biasInitializer: d.biasInitializer, useBias: d.useBias,
                    kernelRegularizer: d.kernelRegularizer, biasRegularizer: d.biasRegularizer)
                return timeDistributed ? TimeDistributed(dense) : dense
            case .dropout(let rate, let seed):
                return Dropout<Scalar>(rate: rate, seed: seed)
            case .masking(let value):
                return Masking<Scalar>(maskValue: value)
            case .embedding(let inputDim, let outputDim, let maskZero, let initializer):
                return Embedding<Scalar>(
                    inputDim: inputDim, outputDim: outputDim, maskZero: maskZero, embeddingsInitializer: initializer)
            }
        }
    }

    private static func recurrentLayer<Scalar: BLASScalar>(_ r: RecurrentSpec, _: Scalar.Type) -> RecurrentLayer<Scalar> {
        let layer = plainRecurrentLayer(r, Scalar.self)
        layer.zeroOutputForMask = r.zeroOutputForMask
        return layer
    }

    private static func plainRecurrentLayer<Scalar: BLASScalar>(_ r: RecurrentSpec, _: Scalar.Type) -> RecurrentLayer<Scalar> {
        switch r.kind {
        case .simpleRNN:
            SimpleRNN<Scalar>(
                units: r.units, returnSequences: r.returnSequences, activation: r.activation, goBackwards: r.goBackwards,
                dropout: r.dropout, recurrentDropout: r.recurrentDropout, seed: r.seed,
                kernelInitializer: r.kernelInitializer, recurrentInitializer: r.recurrentInitializer,
                biasInitializer: r.biasInitializer, useBias: r.useBias, kernelRegularizer: r.kernelRegularizer,
                recurrentRegularizer: r.recurrentRegularizer, biasRegularizer: r.biasRegularizer, stateful: r.stateful)
        case .lstm:
            LSTM<Scalar>(
                units: r.units, activation: r.activation, recurrentActivation: r.recurrentActivation,
                unitForgetBias: r.unitForgetBias, returnSequences: r.returnSequences, goBackwards: r.goBackwards, dropout: r.dropout,
                recurrentDropout: r.recurrentDropout, seed: r.seed,
                kernelInitializer: r.kernelInitializer, recurrentInitializer: r.recurrentInitializer,
                biasInitializer: r.biasInitializer, useBias: r.useBias, kernelRegularizer: r.kernelRegularizer,
                recurrentRegularizer: r.recurrentRegularizer, biasRegularizer: r.biasRegularizer, stateful: r.stateful)
        case .gru:
            GRU<Scalar>(
                units: r.units, activation: r.activation, recurrentActivation: r.recurrentActivation,
                resetAfter: r.resetAfter, returnSequences: r.returnSequences, goBackwards: r.goBackwards, dropout: r.dropout,
                recurrentDropout: r.recurrentDropout, seed: r.seed,
                kernelInitializer: r.kernelInitializer, recurrentInitializer: r.recurrentInitializer,
                biasInitializer: r.biasInitializer, useBias: r.useBias, kernelRegularizer: r.kernelRegularizer,
                recurrentRegularizer: r.recurrentRegularizer, biasRegularizer: r.biasRegularizer, stateful: r.stateful)
        }
    }

    func makeOptimizer<Scalar: BLASScalar>(_: Scalar.Type) -> (any StatefulOptimizer<Scalar>)? {
        guard let optimizer else { return nil }
        let clipping = optimizer.clipping
        return switch optimizer.kind {
        case .adam(let lr, let b1, let b2, let eps): Adam<Scalar>(learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, clipping: clipping)
        case .adamW(let lr, let wd, let b1, let b2, let eps):
            AdamW<Scalar>(learningRate: lr, weightDecay: wd, beta1: b1, beta2: b2, epsilon: eps, clipping: clipping)
        case .sgd(let lr, let momentum, let nesterov):
            SGD<Scalar>(learningRate: lr, momentum: momentum, nesterov: nesterov, clipping: clipping)
        case .rmsprop(let lr, let rho, let eps): RMSprop<Scalar>(learningRate: lr, rho: rho, epsilon: eps, clipping: clipping)
        }
    }
}

/// Reads Keras 3's `config.json` (and Keras 2.13+'s), refusing whatever RNNKit does not
/// implement: every such item is collected, with where it is, before anything is built.
struct KerasConfig {
    private var problems: [String] = []
    /// The steps to build an input of None steps for (`parse`'s `steps`).
    private var requestedSteps: Int?
    /// An input shape as read: the sample's shape, and what it said of the axes RNNKit does not
    /// keep in a `FeatureShape`: its batch (nil for None), and whether its steps were None (1
    /// stands for them until `model` settles them) or, for ids, its one axis.
    struct InputRead {
        var shape: FeatureShape
        var batch: Int?
        var openSteps = false, openIDs = false
    }

    /// What a config read from a file may describe, checked before anything is built.
    enum Limits {
        /// Keras writes a few kilobytes per layer.
        static let configBytes = 2 << 20
        static let layers = 256
        static let steps = 1 << 20
        static let features = 1 << 20
        /// Scalars in one input sample (steps × features).
        static let sampleScalars = 1 << 26
        /// The scalars a stateful model's states take for its whole batch (h, and c for LSTM,
        /// with the last batch's beside them): a 1 GiB of float32, as the weights' limit.
        static let stateScalars = 1 << 28
    }

    /// Parses `json`, the text of `config.json`; `file` names it in errors. `steps` builds a
    /// model whose input has no fixed number of steps (None) for sequences of that many; without
    /// it such a model is refused unless it is stateful, which is then built for pieces of 1 step.
    static func parse(_ json: Data, file: String, steps: Int? = nil) throws -> KerasModelSpec {
        guard json.count <= Limits.configBytes else {
            throw FileFormatError(
                file: file, format: .kerasConfig,
                reason: "is \(json.count) bytes long, more than the \(Limits.configBytes) a model's config takes")
        }
        let parsed: Any
        do { parsed = try StrictJSON.value(from: json) } catch {
            throw FileFormatError(
                file: file, format: .kerasConfig,
                reason: "is not valid JSON (or nests deeper than 512 levels, or holds a number out of range)")
        }
        guard let root = parsed as? [String: Any] else {
            throw FileFormatError(file: file, format: .kerasConfig, reason: "is not a JSON object")
        }
        var reader = KerasConfig()
        reader.requestedSteps = steps
        let spec = reader.model(root)
        guard reader.problems.isEmpty, let spec else {
            throw UnsupportedKerasModel(file: file, items: reader.problems.isEmpty ? ["the model could not be read"] : reader.problems)
        }
        return spec
    }

    private mutating func refuse(_ place: String, _ what: String) { problems.append("\(place): \(what)") }

    // MARK: The model

    private mutating func model(_ root: [String: Any]) -> KerasModelSpec? {
        let className = root["class_name"] as? String ?? "(no class_name)"
        guard let config = root["config"] as? [String: Any] else {
            refuse("class_name \(className)", "the model has no config")
            return nil
        }
        let layerConfigs = config["layers"] as? [[String: Any]] ?? []
        guard layerConfigs.count <= Limits.layers + 1 else {
            refuse("layers", "the model has \(layerConfigs.count) layers, more than the \(Limits.layers) RNNKit builds from a file")
            return nil
        }
        let chain: [[String: Any]]
        switch className {
        case "Sequential":
            chain = layerConfigs
        case "Functional", "Model":
            guard let stack = plainStack(config, layers: layerConfigs) else { return nil }
            chain = stack
        default:
            refuse("class_name \(className)", "only Sequential models, and Functional ones that are a plain stack, are supported")
            return nil
        }
        let name = config["name"] as? String ?? "sequential"
        let dtype = dtypeName(config["dtype"], place: "the model") ?? "float32"

        // The first shape read is the model's (build_input_shape, else the InputLayer's, else a
        // layer's batch_input_shape); the others are checked for what they are, not kept.
        var input: InputRead?
        if let shape = config["build_input_shape"] {
            input = featureShape(shape, place: "build_input_shape")
        }
        var specs: [KerasModelSpec.LayerSpec] = []
        var layerDtypes: Set<String> = []
        for (index, layer) in chain.enumerated() {
            let layerClass = layer["class_name"] as? String ?? "(no class_name)"
            let layerConfig = layer["config"] as? [String: Any] ?? [:]
            let place = "layers[\(index)] (\(layerClass) \"\(layerConfig["name"] as? String ?? "?")\")"
            if layerClass == "InputLayer" {
                let shape = layerConfig["batch_shape"] ?? layerConfig["batch_input_shape"]
                if let parsed = featureShape(shape as Any, place: place) { input = input ?? parsed }
                checkOptions(
                    layerConfig, place: place, known: ["batch_shape", "batch_input_shape", "dtype", "name"],
                    expected: ["sparse": false, "ragged": false, "optional": false])
                continue
            }
            if let shape = layerConfig["batch_input_shape"] ?? layerConfig["batch_shape"], input == nil {
                input = featureShape(shape, place: place)
            }
            if let dtype = dtypeName(layerConfig["dtype"], place: place) { layerDtypes.insert(dtype) }
            if let spec = layerSpec(layerClass, layerConfig, place: place) { specs.append(spec) }
        }
        var inputShape = input?.shape
        var openSteps = input?.openSteps ?? false
        let openIDs = input?.openIDs ?? false
        // Keras's Embedding takes ids (None, steps); RNNKit's, one float feature per step.
        if case .embedding = specs.first, case .vector(let steps)? = inputShape {
            inputShape = .sequence(steps: steps, features: 1)
            openSteps = openSteps || openIDs
        } else if openIDs {
            refuse("the model", "its input (None, None) has no fixed number of features")
        }
        if openSteps, let shape = inputShape { inputShape = settleOpenSteps(shape, stateful: specs) }
        for (index, spec) in specs.enumerated() where index > 0 {
            if case .embedding = spec { refuse("layers", "an Embedding must be the model's first layer") }
        }
        if layerDtypes.count > 1 { refuse("the layers", "mix the dtypes \(layerDtypes.sorted()); RNNKit computes a model in one") }
        if chain.allSatisfy({ ($0["class_name"] as? String) == "InputLayer" }) { refuse("layers", "the model has no layers") }
        guard let inputShape else {
            refuse("the model", "has no input shape (no InputLayer, build_input_shape or batch_input_shape)")
            return nil
        }
        if problems.isEmpty {
            if let count = Self.weightCount(specs, input: inputShape) {
                if count > Self.largestModel {
                    refuse("the model", "would have \(count) weights, more than the \(Self.largestModel) RNNKit builds from a file")
                }
            } else {
                refuse("the model", "has more weights than can be counted")
            }
        }
        var spec = KerasModelSpec(name: name, dtype: layerDtypes.first ?? dtype, inputShape: inputShape, layers: specs)
        if spec.isStateful {
            if let inputBatch = input?.batch {
                spec.batchSize = inputBatch
                // In Double: a crafted units count must not overflow the sum.
                var scalars = 0.0
                for case .recurrent(let r) in specs where r.stateful {
                    scalars += Double(inputBatch) * Double(r.units) * (r.kind == .lstm ? 4 : 2)
                }
                if scalars > Double(Limits.stateScalars) {
                    refuse(
                        "the model",
                        String(
                            format:
                                "its stateful layers' states at batch %d would take %.0f scalars, more than the %d RNNKit builds from a file",
                            inputBatch, scalars, Limits.stateScalars))
                }
            } else {
                refuse("the model", "has stateful layers but no fixed batch size: Keras needs one too (batch_shape)")
            }
        }
        if openSteps, requestedSteps == nil {
            spec.notes.append(
                "the input has no fixed number of steps (None): built for pieces of 1 step (pass steps: to train on longer ones); a stateful model's predict takes pieces of any length"
            )
        }
        if let compile = root["compile_config"] as? [String: Any] { compileSettings(compile, into: &spec) }
        return spec
    }

    /// The most weights a model read from a file may have (1 GiB of Float), checked before anything
    /// is allocated, so that a crafted `units` cannot exhaust memory.
    static let largestModel = 1 << 28

    /// The number of weights `layers` would have on `input`, or nil when it overflows.
    static func weightCount(_ layers: [KerasModelSpec.LayerSpec], input: FeatureShape) -> Int? {
        var features = input.features, total = 0
        for layer in layers {
            if case .embedding(let inputDim, let outputDim, _, _) = layer {
                let (count, o1) = inputDim.multipliedReportingOverflow(by: outputDim)
                let (sum, o2) = total.addingReportingOverflow(count)
                guard !o1, !o2 else { return nil }
                total = sum
                features = outputDim
                continue
            }
            let (units, gates, recurrentBias, copies): (Int, Int, Bool, Int) =
                switch layer {
                case .recurrent(let r): (r.units, r.kind.gateCount, r.kind == .gru && r.resetAfter, 1)
                case .bidirectional(let r, _): (r.units, r.kind.gateCount, r.kind == .gru && r.resetAfter, 2)
                case .dense(let d, _): (d.units, 1, false, 1)
                case .dropout, .masking, .embedding: (features, 0, false, 0)
                }
            let recurrent = { if case .dense = layer { return false } else { return true } }()
            let (width, o1) = gates.multipliedReportingOverflow(by: units)
            let (inputWeights, o2) = width.multipliedReportingOverflow(by: features)
            let (stateWeights, o3) = recurrent ? width.multipliedReportingOverflow(by: units) : (0, false)
            guard !o1, !o2, !o3 else { return nil }
            let (sum, o4) = total.addingReportingOverflow(inputWeights)
            let (sum2, o5) = sum.addingReportingOverflow(stateWeights)
            let (sum3, o6) = sum2.addingReportingOverflow(recurrentBias ? 2 * width : width)
            guard !o4, !o5, !o6 else { return nil }
            // A bidirectional layer holds two copies and, concatenated, outputs twice the units.
            let (layerTotal, o7) = (sum3 - total).multipliedReportingOverflow(by: copies)
            guard !o7 else { return nil }
            total += layerTotal
            if case .bidirectional(_, .concat) = layer { features = 2 * units } else { features = units }
        }
        return total
    }

    /// The layers of a Functional model in order, when each takes the one before it as its only input.
    private mutating func plainStack(_ config: [String: Any], layers: [[String: Any]]) -> [[String: Any]]? {
        func history(_ value: Any?) -> String? {
            // A tensor reference: {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node, index]}},
            // or Keras 2's [[layer, node, index, kwargs]].
            if let tensor = value as? [String: Any], let config = tensor["config"] as? [String: Any],
                let history = config["keras_history"] as? [Any]
            {
                return history.first as? String
            }
            if let list = value as? [Any], let first = list.first as? String { return first }
            if let list = value as? [Any], list.count == 1 { return history(list[0]) }
            return nil
        }
        var previous: String?
        for (index, layer) in layers.enumerated() {
            let name = (layer["config"] as? [String: Any])?["name"] as? String ?? layer["name"] as? String ?? "?"
            let nodes = layer["inbound_nodes"] as? [Any] ?? []
            if index == 0 {
                guard layer["class_name"] as? String == "InputLayer", nodes.isEmpty else {
                    refuse("layers[0] \"\(name)\"", "a Functional model must start with its one InputLayer")
                    return nil
                }
            } else {
                var inputs: [String] = []
                if nodes.count == 1, let node = nodes[0] as? [String: Any], let args = node["args"] as? [Any] {
                    inputs = args.compactMap(history)
                    if let kwargs = node["kwargs"] as? [String: Any], kwargs.values.contains(where: { !($0 is NSNull) }) {
                        refuse(
                            "layers[\(index)] \"\(name)\"", "is called with arguments \(kwargs.keys.sorted()), which RNNKit does not pass")
                    }
                } else if nodes.count == 1, let node = nodes[0] as? [Any] {
                    inputs = node.compactMap(history)
                }
                guard nodes.count == 1, inputs == [previous ?? ""] else {
                    refuse(
                        "layers[\(index)] \"\(name)\"",
                        "takes \(nodes.count == 1 ? "\(inputs)" : "\(nodes.count) calls") as input, not only the layer before it: a Functional graph that is not a plain stack"
                    )
                    return nil
                }
            }
            previous = name
        }
        let outputs = (config["output_layers"] as? [Any]).flatMap { history($0) ?? history(($0.first)) }
        if let outputs, outputs != previous {
            refuse("output_layers", "the model's output is \(outputs), not its last layer \(previous ?? "?")")
            return nil
        }
        return layers
    }

    /// `[B, T, F]` or `[B, F]`, the batch `B` None or a size, the steps `T` a size or None.
    private mutating func featureShape(_ value: Any, place: String) -> InputRead? {
        let extents = (value as? [Any]) ?? []
        let sizes = extents.dropFirst().map { $0 as? Int }
        var batch: Int?
        if let first = extents.first, !(first is NSNull) {
            guard let size = first as? Int, (1...(1 << 16)).contains(size) else {
                refuse(place, "the input's batch size \(describe(first)) is not None or in 1...65536")
                return nil
            }
            batch = size
        }
        switch sizes.count {
        case 2:
            let open = sizes[0] == nil && extents[1] is NSNull
            guard let features = sizes[1], let steps = open ? 1 : sizes[0], steps > 0, features > 0 else { break }
            guard steps <= Limits.steps, features <= Limits.features, steps * features <= Limits.sampleScalars else {
                refuse(
                    place,
                    "input shape (None, \(steps), \(features)) is larger than RNNKit reads from a file (at most \(Limits.steps) steps, \(Limits.features) features, \(Limits.sampleScalars) scalars a sample)"
                )
                return nil
            }
            return InputRead(shape: .sequence(steps: steps, features: features), batch: batch, openSteps: open)
        case 1:
            if sizes[0] == nil, extents[1] is NSNull {
                // (None, None): ids of open length for an Embedding; `model` checks there is one.
                return InputRead(shape: .vector(features: 1), batch: batch, openIDs: true)
            }
            guard let features = sizes[0], features > 0 else { break }
            guard features <= Limits.features else {
                refuse(
                    place, "input shape (None, \(features)) is larger than RNNKit reads from a file (at most \(Limits.features) features)")
                return nil
            }
            return InputRead(shape: .vector(features: features), batch: batch)
        default:
            break
        }
        refuse(
            place,
            "input shape \(extents.map { ($0 as? Int).map(String.init) ?? "None" }) is not (None, steps, features) or (None, features)")
        return nil
    }

    /// The shape an input of None steps is built with: `requestedSteps`, else 1 for a stateful
    /// model (whose `predict` takes pieces of any length); refused otherwise.
    private mutating func settleOpenSteps(_ shape: FeatureShape, stateful layers: [KerasModelSpec.LayerSpec]) -> FeatureShape {
        let stateful = layers.contains { if case .recurrent(let r) = $0 { r.stateful } else { false } }
        guard let steps = requestedSteps ?? (stateful ? 1 : nil) else {
            refuse(
                "the model",
                "the input has no fixed number of steps (None); RNNKit builds a model for sequences of one length: pass steps:")
            return shape
        }
        guard (1...Limits.steps).contains(steps), steps * shape.features <= Limits.sampleScalars else {
            refuse("the model", "steps \(steps) is not in 1...\(Limits.steps) (and \(Limits.sampleScalars) scalars a sample)")
            return shape
        }
        return .sequence(steps: steps, features: shape.features)
    }

    /// The dtype policy's name, refused unless float32 or float64.
    private mutating func dtypeName(_ value: Any?, place: String) -> String? {
        let name: String?
        if let text = value as? String {
            name = text
        } else if let policy = value as? [String: Any] {
            name = (policy["config"] as? [String: Any])?["name"] as? String
        } else {
            return nil
        }
        guard let name, name == "float32" || name == "float64" else {
            refuse(place, "dtype \(name ?? "?") is not supported (float32 or float64)")
            return nil
        }
        return name
    }

    // MARK: Layers

    private mutating func layerSpec(_ className: String, _ config: [String: Any], place: String) -> KerasModelSpec.LayerSpec? {
        if let kind = RecurrentCellKind(kerasClassName: className) {
            return recurrentSpec(kind, config, place: place).map { .recurrent($0) }
        }
        switch className {
        case "Dense":
            return denseSpec(config, place: place).map { .dense($0, timeDistributed: false) }
        case "TimeDistributed":
            guard let inner = config["layer"] as? [String: Any], inner["class_name"] as? String == "Dense",
                let innerConfig = inner["config"] as? [String: Any]
            else {
                refuse(
                    place,
                    "only TimeDistributed(Dense) is supported, not TimeDistributed(\((config["layer"] as? [String: Any])?["class_name"] as? String ?? "?"))"
                )
                return nil
            }
            checkOptions(config, place: place, known: ["layer", "name", "dtype"], expected: ["trainable": true])
            return denseSpec(innerConfig, place: place + ".layer").map { .dense($0, timeDistributed: true) }
        case "Bidirectional":
            return bidirectionalSpec(config, place: place)
        case "Dropout":
            let rate = real(config, "rate", -1, place: place)
            guard (0..<1).contains(rate) else {
                refuse(place, "rate \(describe(config["rate"] ?? NSNull())) is not in [0, 1)")
                return nil
            }
            checkOptions(
                config, place: place, known: ["rate", "seed", "name", "dtype"], expected: ["trainable": true, "noise_shape": NSNull()])
            return .dropout(rate: rate, seed: seed(config, place: place))
        case "Embedding":
            guard let inputDim = positiveInt(config["input_dim"], "input_dim", place: place),
                let outputDim = positiveInt(config["output_dim"], "output_dim", place: place)
            else { return nil }
            let maskZero = flag(config, "mask_zero", false, place: place)
            let initializer =
                initializer(config["embeddings_initializer"], "embeddings_initializer", place: place)
                ?? .uniform(lower: -0.05, upper: 0.05)
            checkOptions(
                config, place: place, known: ["input_dim", "output_dim", "mask_zero", "embeddings_initializer", "name", "dtype"],
                expected: ["trainable": true, "sparse": false])
            return .embedding(inputDim: inputDim, outputDim: outputDim, maskZero: maskZero, initializer: initializer)
        case "Masking":
            let value = real(config, "mask_value", 0, place: place)
            checkOptions(config, place: place, known: ["mask_value", "name", "dtype"], expected: ["trainable": true])
            return .masking(value: value)
        default:
            refuse(
                place,
                "layer \(className) is not supported (RNNKit has InputLayer, Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, Dense, TimeDistributed(Dense) and Dropout)"
            )
            return nil
        }
    }

    /// `Bidirectional(layer, merge_mode)`: RNNKit runs a mirror of `layer` backwards, so a
    /// `backward_layer` must be that mirror.
    private mutating func bidirectionalSpec(_ config: [String: Any], place: String) -> KerasModelSpec.LayerSpec? {
        func inner(_ key: String) -> KerasModelSpec.RecurrentSpec? {
            guard let layer = config[key] as? [String: Any], let className = layer["class_name"] as? String,
                let kind = RecurrentCellKind(kerasClassName: className)
            else {
                refuse(
                    place,
                    "\(key) must be a SimpleRNN, LSTM or GRU, not \((config[key] as? [String: Any])?["class_name"] as? String ?? "missing")"
                )
                return nil
            }
            return recurrentSpec(kind, layer["config"] as? [String: Any] ?? [:], place: "\(place).\(key)")
        }
        guard let forward = inner("layer") else { return nil }
        if forward.stateful { refuse(place, "a stateful layer inside Bidirectional is not supported") }
        guard let mode = MergeMode(rawValue: config["merge_mode"] as? String ?? MergeMode.concat.rawValue) else {
            refuse(place, "merge_mode \(describe(config["merge_mode"] ?? NSNull())) is not supported (concat, sum, mul, ave)")
            return nil
        }
        if config["backward_layer"] != nil, !(config["backward_layer"] is NSNull), var backward = inner("backward_layer") {
            backward.goBackwards.toggle()
            backward.seed = forward.seed // each direction draws its own dropout masks
            if backward != forward {
                refuse(place, "backward_layer is not the layer read backwards; RNNKit's Bidirectional runs a mirror of the layer")
            }
        }
        checkOptions(
            config, place: place, known: ["layer", "backward_layer", "merge_mode", "name", "dtype"], expected: ["trainable": true])
        return .bidirectional(forward, mergeMode: mode)
    }

    private mutating func recurrentSpec(_ kind: RecurrentCellKind, _ config: [String: Any], place: String) -> KerasModelSpec.RecurrentSpec?
    {
        guard let units = positiveInt(config["units"], "units", place: place) else { return nil }
        var spec = KerasModelSpec.RecurrentSpec(kind: kind, units: units)
        var known = [
            "units", "activation", "return_sequences", "go_backwards", "dropout", "recurrent_dropout", "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer", "name", "dtype", "unroll", "zero_output_for_mask", "seed", "use_bias", "kernel_regularizer",
            "recurrent_regularizer", "bias_regularizer", "stateful",
        ]
        spec.useBias = flag(config, "use_bias", true, place: place)
        spec.kernelRegularizer = regularizer(config["kernel_regularizer"], "kernel_regularizer", place: place)
        spec.recurrentRegularizer = regularizer(config["recurrent_regularizer"], "recurrent_regularizer", place: place)
        spec.biasRegularizer = regularizer(config["bias_regularizer"], "bias_regularizer", place: place)
        if let f = activation(config["activation"], "activation", place: place, elementwise: true) { spec.activation = f }
        spec.returnSequences = flag(config, "return_sequences", false, place: place)
        spec.goBackwards = flag(config, "go_backwards", false, place: place)
        if case let rate = real(config, "dropout", 0, place: place), rate != 0 {
            if (0..<1).contains(rate) { spec.dropout = rate } else { refuse(place, "option dropout = \(rate) is not in [0, 1)") }
        }
        if case let rate = real(config, "recurrent_dropout", 0, place: place), rate != 0 {
            if (0..<1).contains(rate) {
                spec.recurrentDropout = rate
            } else {
                refuse(place, "option recurrent_dropout = \(rate) is not in [0, 1)")
            }
        }
        spec.seed = seed(config, place: place)
        spec.zeroOutputForMask = flag(config, "zero_output_for_mask", false, place: place)
        spec.stateful = flag(config, "stateful", false, place: place)
        if spec.stateful, spec.goBackwards {
            refuse(place, "a stateful layer that reads backwards (go_backwards) is not supported")
        }
        spec.kernelInitializer = initializer(config["kernel_initializer"], "kernel_initializer", place: place) ?? .glorotUniform
        spec.recurrentInitializer = initializer(config["recurrent_initializer"], "recurrent_initializer", place: place) ?? .orthogonal()
        spec.biasInitializer = initializer(config["bias_initializer"], "bias_initializer", place: place) ?? .zeros
        if kind != .simpleRNN {
            known += ["recurrent_activation", "implementation"]
            if let sigma = activation(config["recurrent_activation"], "recurrent_activation", place: place, elementwise: true) {
                spec.recurrentActivation = sigma
            }
        }
        if kind == .lstm {
            known.append("unit_forget_bias")
            spec.unitForgetBias = flag(config, "unit_forget_bias", true, place: place)
        }
        if kind == .gru {
            known.append("reset_after")
            spec.resetAfter = flag(config, "reset_after", true, place: place)
        }
        checkOptions(
            config, place: place, known: Set(known),
            expected: [
                "return_state": false, "trainable": true,
            ])
        return spec
    }

    private mutating func denseSpec(_ config: [String: Any], place: String) -> KerasModelSpec.DenseSpec? {
        guard let units = positiveInt(config["units"], "units", place: place) else { return nil }
        var spec = KerasModelSpec.DenseSpec(units: units)
        if let f = activation(config["activation"], "activation", place: place, elementwise: false) { spec.activation = f }
        spec.kernelInitializer = initializer(config["kernel_initializer"], "kernel_initializer", place: place) ?? .glorotUniform
        spec.biasInitializer = initializer(config["bias_initializer"], "bias_initializer", place: place) ?? .zeros
        spec.useBias = flag(config, "use_bias", true, place: place)
        spec.kernelRegularizer = regularizer(config["kernel_regularizer"], "kernel_regularizer", place: place)
        spec.biasRegularizer = regularizer(config["bias_regularizer"], "bias_regularizer", place: place)
        checkOptions(
            config, place: place,
            known: [
                "units", "activation", "kernel_initializer", "bias_initializer", "name", "dtype", "use_bias", "kernel_regularizer",
                "bias_regularizer",
            ],
            expected: ["trainable": true])
        return spec
    }

    /// Refuses options whose value RNNKit cannot honour: those in `expected` with another value,
    /// and any other option not in `known` unless it is null (a regulariser, a constraint, …).
    private mutating func checkOptions(_ config: [String: Any], place: String, known: Set<String>, expected: [String: Any]) {
        for key in config.keys.sorted() where !known.contains(key) {
            let value = config[key]!
            if let wanted = expected[key] {
                if !sameValue(value, wanted) {
                    refuse(place, "option \(key) = \(describe(value)) is not supported (only \(describe(wanted)))")
                }
            } else if !(value is NSNull) {
                refuse(place, "option \(key) = \(describe(value)) is not supported")
            }
        }
    }

    private func sameValue(_ value: Any, _ wanted: Any) -> Bool {
        switch wanted {
        case let flag as Bool: return (value as? Bool) == flag
        case let number as Double: return (value as? Double) == number || (value as? Int).map(Double.init) == number
        case let text as String: return (value as? String) == text
        case is NSNull: return value is NSNull
        default: return false
        }
    }

    private func describe(_ value: Any) -> String {
        if value is NSNull { return "null" }
        if let text = value as? String { return "\"\(text)\"" }
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
            let text = String(decoding: data, as: UTF8.self)
            return text.count > 80 ? String(text.prefix(77)) + "…" : text
        }
        return "\(value)"
    }

    private mutating func positiveInt(_ value: Any?, _ key: String, place: String) -> Int? {
        guard let number = value as? Int, number > 0 else {
            refuse(place, "option \(key) = \(value.map(describe) ?? "missing") is not a positive whole number")
            return nil
        }
        return number
    }

    /// A boolean option: absent or null is `fallback`; anything but `true` or `false` is refused.
    private mutating func flag(_ config: [String: Any], _ key: String, _ fallback: Bool, place: String) -> Bool {
        guard let value = config[key], !(value is NSNull) else { return fallback }
        guard let flag = value as? Bool else {
            refuse(place, "option \(key) = \(describe(value)) is not a boolean (true or false)")
            return fallback
        }
        return flag
    }

    /// A finite number: absent or null is `fallback`; anything else is refused.
    private mutating func real(_ config: [String: Any], _ key: String, _ fallback: Double, place: String) -> Double {
        guard let value = config[key], !(value is NSNull) else { return fallback }
        if let number = value as? Int { return Double(number) }
        guard let number = value as? Double, number.isFinite else {
            refuse(place, "option \(key) = \(describe(value)) is not a finite number")
            return fallback
        }
        return number
    }

    /// A layer's `seed`: absent or null is 0; a negative or non-integer one is refused.
    private mutating func seed(_ config: [String: Any], place: String) -> UInt64 {
        guard let value = config["seed"], !(value is NSNull) else { return 0 }
        guard let number = value as? Int, number >= 0 else {
            refuse(place, "option seed = \(describe(value)) is not a whole number ≥ 0")
            return 0
        }
        return UInt64(number)
    }

    private mutating func activation(_ value: Any?, _ key: String, place: String, elementwise: Bool) -> Activation? {
        guard let value else { return nil }
        let name = (value as? String) ?? ((value as? [String: Any])?["config"] as? [String: Any])?["name"] as? String
        guard let name, let activation = Activation(rawValue: name), !elementwise || activation.isElementwise else {
            let supported = Activation.allCases.filter { !elementwise || $0.isElementwise }.map(\.rawValue).joined(separator: ", ")
            refuse(place, "\(key) \(describe(value)) is not supported (\(supported))")
            return nil
        }
        return activation
    }

    private mutating func initializer(_ value: Any?, _ key: String, place: String) -> Initializer? {
        guard let value, !(value is NSNull) else { return nil }
        guard let (className, config) = Self.serialized(value) else {
            refuse(place, "\(key) \(describe(value)) is not an initialiser")
            return nil
        }
        switch className {
        case "GlorotUniform", "glorot_uniform": return .glorotUniform
        case "Orthogonal", "orthogonal": return .orthogonal(gain: real(config, "gain", 1, place: "\(place).\(key)"))
        case "Zeros", "zeros": return .zeros
        case "RandomUniform", "random_uniform", "uniform":
            let lower = real(config, "minval", -0.05, place: "\(place).\(key)"),
                upper = real(config, "maxval", 0.05, place: "\(place).\(key)")
            guard lower < upper else {
                refuse(place, "\(key) RandomUniform has minval \(lower) ≥ maxval \(upper)")
                return nil
            }
            return .uniform(lower: lower, upper: upper)
        default:
            refuse(place, "\(key) \(className) is not supported (GlorotUniform, Orthogonal, Zeros, RandomUniform)")
            return nil
        }
    }

    /// Keras's `L1`, `L2` and `L1L2` regularisers (or their names `l1`, `l2`, `l1_l2`, whose factors
    /// default to 0.01); null is none. Other regularisers, and factors that are negative or not
    /// finite, are refused.
    private mutating func regularizer(_ value: Any?, _ key: String, place: String) -> Regularizer? {
        guard let value, !(value is NSNull) else { return nil }
        guard let (className, config) = Self.serialized(value) else {
            refuse(place, "\(key) \(describe(value)) is not a regulariser")
            return nil
        }
        let here = "\(place).\(key)"
        let named = value is String
        let l1: Double, l2: Double
        switch className {
        case "L1", "l1", "L1Regularizer":
            (l1, l2) = (real(config, "l1", 0.01, place: here), 0)
        case "L2", "l2", "L2Regularizer":
            (l1, l2) = (0, real(config, "l2", 0.01, place: here))
        case "L1L2", "l1_l2":
            (l1, l2) = (real(config, "l1", named ? 0.01 : 0, place: here), real(config, "l2", named ? 0.01 : 0, place: here))
        default:
            refuse(place, "\(key) \(className) is not supported (L1, L2, L1L2)")
            return nil
        }
        for key in config.keys where key != "l1" && key != "l2" { refuse(here, "option \(key) is not supported") }
        guard l1 >= 0, l2 >= 0 else {
            refuse(here, "factors l1 = \(l1), l2 = \(l2) must be ≥ 0")
            return nil
        }
        return Regularizer(l1: l1, l2: l2)
    }

    /// Keras names an object either by a string (`"adam"`) or as `{"class_name", "config"}`.
    private static func serialized(_ value: Any) -> (className: String, config: [String: Any])? {
        if let name = value as? String { return (name, [:]) }
        guard let object = value as? [String: Any], let name = object["class_name"] as? String else { return nil }
        return (name, object["config"] as? [String: Any] ?? [:])
    }

    // MARK: Training settings

    private mutating func compileSettings(_ compile: [String: Any], into spec: inout KerasModelSpec) {
        let place = "compile_config"
        if let optimizer = compile["optimizer"], !(optimizer is NSNull) {
            spec.optimizer = optimizerSpec(optimizer, place: place + ".optimizer")
        }
        if let loss = compile["loss"], !(loss is NSNull) {
            spec.loss = lossFunction(loss, place: place + ".loss")
        }
        if let weights = compile["loss_weights"], !(weights is NSNull) {
            refuse(place + ".loss_weights", "loss weights are not supported")
        }
    }

    private mutating func optimizerSpec(_ value: Any, place: String) -> KerasModelSpec.OptimizerSpec? {
        guard let (className, config) = Self.serialized(value) else {
            refuse(place, "\(describe(value)) is not an optimiser")
            return nil
        }
        let here = "\(place) (\(className))"
        func number(_ key: String, _ fallback: Double) -> Double {
            if let value = config[key] as? Double, value.isFinite { return Self.repairedFloat32(value) }
            if let value = config[key] as? Int { return Double(value) }
            if let value = config[key], !(value is NSNull) { refuse(here, "\(key) = \(describe(value)) is not supported (a number)") }
            return fallback
        }
        let common: [String: Any] = ["amsgrad": false, "centered": false, "use_ema": false]
        var known: Set<String> = [
            "name", "learning_rate", "ema_momentum", "ema_overwrite_frequency", "clipnorm", "clipvalue", "global_clipnorm",
        ]
        let result: KerasModelSpec.OptimizerKind
        switch className.lowercased() {
        case "adam":
            known.formUnion(["beta_1", "beta_2", "epsilon"])
            result = .adam(
                learningRate: number("learning_rate", 0.001), beta1: number("beta_1", 0.9),
                beta2: number("beta_2", 0.999), epsilon: number("epsilon", 1e-7))
        case "adamw":
            known.formUnion(["beta_1", "beta_2", "epsilon", "weight_decay"])
            result = .adamW(
                learningRate: number("learning_rate", 0.001), weightDecay: number("weight_decay", 0.004),
                beta1: number("beta_1", 0.9), beta2: number("beta_2", 0.999), epsilon: number("epsilon", 1e-7))
        case "sgd":
            known.formUnion(["momentum", "nesterov"])
            result = .sgd(
                learningRate: number("learning_rate", 0.01), momentum: number("momentum", 0),
                nesterov: flag(config, "nesterov", false, place: here))
        case "rmsprop":
            known.formUnion(["rho", "epsilon"])
            if number("momentum", 0) != 0 { refuse(here, "momentum = \(number("momentum", 0)) is not supported (only 0)") }
            known.insert("momentum")
            result = .rmsprop(learningRate: number("learning_rate", 0.001), rho: number("rho", 0.9), epsilon: number("epsilon", 1e-7))
        default:
            refuse(place, "optimiser \(className) is not supported (Adam, AdamW, SGD, RMSprop)")
            return nil
        }
        // Every constant in the range where the optimiser is defined: a file's values reach no precondition.
        switch result {
        case .adam(let lr, let b1, let b2, let eps):
            if !(lr > 0) { refuse(here, "learning_rate = \(lr) must be positive") }
            if !(0..<1).contains(b1) { refuse(here, "beta_1 = \(b1) must be in [0, 1)") }
            if !(0..<1).contains(b2) { refuse(here, "beta_2 = \(b2) must be in [0, 1)") }
            if !(eps >= 0) { refuse(here, "epsilon = \(eps) must be ≥ 0") }
        case .adamW(let lr, let wd, let b1, let b2, let eps):
            if !(lr > 0) { refuse(here, "learning_rate = \(lr) must be positive") }
            if !(wd >= 0) { refuse(here, "weight_decay = \(wd) must be ≥ 0") }
            if !(0..<1).contains(b1) { refuse(here, "beta_1 = \(b1) must be in [0, 1)") }
            if !(0..<1).contains(b2) { refuse(here, "beta_2 = \(b2) must be in [0, 1)") }
            if !(eps >= 0) { refuse(here, "epsilon = \(eps) must be ≥ 0") }
        case .sgd(let lr, let momentum, _):
            if !(lr > 0) { refuse(here, "learning_rate = \(lr) must be positive") }
            if !(0..<1).contains(momentum) { refuse(here, "momentum = \(momentum) must be in [0, 1)") }
        case .rmsprop(let lr, let rho, let eps):
            if !(lr > 0) { refuse(here, "learning_rate = \(lr) must be positive") }
            if !(0..<1).contains(rho) { refuse(here, "rho = \(rho) must be in [0, 1)") }
            if !(eps >= 0) { refuse(here, "epsilon = \(eps) must be ≥ 0") }
        }
        if let rate = config["learning_rate"], rate is [String: Any] {
            refuse(here, "learning_rate is a schedule (\(describe(rate))); RNNKit reads a constant rate from a Keras file")
        }
        checkOptions(config, place: here, known: known, expected: common)
        // Keras allows one of the three.
        var clipping = GradientClipping.none
        for (key, make) in [
            ("clipnorm", GradientClipping.norm), ("clipvalue", GradientClipping.value), ("global_clipnorm", GradientClipping.globalNorm),
        ] {
            guard let value = config[key], !(value is NSNull) else { continue }
            let limit = number(key, 0)
            guard limit > 0, limit.isFinite, clipping == .none else {
                refuse(
                    here,
                    clipping == .none
                        ? "\(key) = \(describe(value)) must be a positive number"
                        : "sets more than one of clipnorm, clipvalue and global_clipnorm")
                continue
            }
            clipping = make(limit)
        }
        return KerasModelSpec.OptimizerSpec(kind: result, clipping: clipping)
    }

    /// Foundation's JSON reader can land a few ulps from a 17-digit number; Keras writes its
    /// optimiser constants as float32 values (0.0010000000474974513), so a number that close to a
    /// float32 value is that value.
    static func repairedFloat32(_ value: Double) -> Double {
        let nearest = Double(Float(value))
        return abs(nearest - value) <= 8 * value.ulp ? nearest : value
    }

    private mutating func lossFunction(_ value: Any, place: String) -> (any Loss)? {
        let (name, config) = Self.serialized(value) ?? (nil, [:])
        let losses: [String: any Loss] = [
            "categorical_crossentropy": CategoricalCrossentropy(), "CategoricalCrossentropy": CategoricalCrossentropy(),
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy(),
            "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy(),
            "binary_crossentropy": BinaryCrossentropy(), "BinaryCrossentropy": BinaryCrossentropy(),
            "mean_squared_error": MeanSquaredError(), "mse": MeanSquaredError(), "MeanSquaredError": MeanSquaredError(),
        ]
        guard let name, let loss = losses[name] else {
            refuse(
                place,
                "loss \(describe(value)) is not supported (categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mean_squared_error)"
            )
            return nil
        }
        checkOptions(
            config, place: "\(place) (\(name))", known: ["name", "axis", "dtype"],
            expected: [
                "from_logits": false, "label_smoothing": 0.0, "ignore_class": NSNull(),
                "reduction": "sum_over_batch_size",
            ])
        return loss
    }
}
