import Foundation
import RNNKit

/// Writes a `Sequential` as Keras 3's `config.json` describes one, so `keras.saving.load_model`
/// rebuilds it: an `InputLayer`, then each layer's class and options, then the compile settings.
enum KerasConfigWriter {
    static func config<Scalar: BLASScalar>(of model: Sequential<Scalar>) throws -> [String: Any] {
        let dtype = Scalar.self == Double.self ? "float64" : "float32"
        let policy: [String: Any] = [
            "module": "keras", "class_name": "DTypePolicy", "config": ["name": dtype], "registered_name": NSNull(),
        ]
        // Keras's Embedding takes ids (None, steps), without RNNKit's one feature per step.
        let startsWithEmbedding = model.layers.first is Embedding<Scalar>
        let batch: Any = model.batchSize ?? NSNull()
        // A stateful model takes pieces of any length, as Keras's stateful files say with None steps.
        let open = model.isStateful
        let extents = model.inputShape.kerasExtents(openSteps: open)
        let batchShape: [Any] = [batch] + (startsWithEmbedding ? [extents[0]] : extents)
        var layers: [[String: Any]] = [
            [
                "module": "keras.layers", "class_name": "InputLayer", "registered_name": NSNull(),
                "config": [
                    "batch_shape": batchShape, "dtype": dtype, "sparse": false, "ragged": false,
                    "name": "input_layer", "optional": false,
                ] as [String: Any],
            ]
        ]
        var shape = model.inputShape
        for layer in model.layers {
            layers.append(try entry(for: layer, inputShape: shape, batch: batch, openSteps: open, policy: policy))
            shape = layer.outputShape
        }
        var root: [String: Any] = [
            "module": "keras", "class_name": "Sequential", "registered_name": NSNull(),
            "config": [
                "name": model.name, "trainable": true, "dtype": policy, "layers": layers,
                "build_input_shape": batchShape,
            ] as [String: Any],
            "build_config": ["input_shape": batchShape],
        ]
        if let compile = try compileConfig(of: model) { root["compile_config"] = compile }
        return root
    }

    private static func serialized(_ module: String, _ className: String, _ config: [String: Any]) -> [String: Any] {
        ["module": module, "class_name": className, "config": config, "registered_name": NSNull()]
    }

    private static func initializer(_ initializer: Initializer) -> [String: Any] {
        switch initializer {
        case .glorotUniform: serialized("keras.initializers", "GlorotUniform", ["seed": NSNull()])
        case .orthogonal(let gain): serialized("keras.initializers", "Orthogonal", ["seed": NSNull(), "gain": gain])
        case .zeros: serialized("keras.initializers", "Zeros", [:])
        case .uniform(let lower, let upper):
            serialized("keras.initializers", "RandomUniform", ["seed": NSNull(), "minval": lower, "maxval": upper])
        }
    }

    /// Keras's `L1`, `L2` or `L1L2` for a regulariser (its factors are already float32 values), or null.
    private static func regularizer(_ regularizer: Regularizer?) -> Any {
        guard let regularizer else { return NSNull() }
        return switch (regularizer.l1 != 0, regularizer.l2 != 0) {
        case (true, false): serialized("keras.regularizers", "L1", ["l1": regularizer.l1])
        case (false, true): serialized("keras.regularizers", "L2", ["l2": regularizer.l2])
        default: serialized("keras.regularizers", "L1L2", ["l1": regularizer.l1, "l2": regularizer.l2])
        }
    }

    /// The layer's entry, its `build_config` of `batch` (None, or a stateful model's size) and
    /// `inputShape` (its steps None when `openSteps`).
    private static func entry<Scalar: BLASScalar>(
        for layer: any Layer<Scalar>, inputShape: FeatureShape, batch: Any, openSteps: Bool, policy: [String: Any]
    ) throws -> [String: Any] {
        let extents = inputShape.kerasExtents(openSteps: openSteps)
        var build: [String: Any] = ["input_shape": [batch] + extents]
        var result: [String: Any]
        switch layer {
        case let embedding as Embedding<Scalar>:
            build = ["input_shape": [batch, extents[0]]]
            result = serialized(
                "keras.layers", "Embedding",
                [
                    "name": embedding.name, "trainable": true, "dtype": policy, "input_dim": embedding.inputDim,
                    "output_dim": embedding.outputDim, "mask_zero": embedding.maskZero,
                    "embeddings_initializer": initializer(embedding.embeddingsInitializer),
                    "embeddings_regularizer": NSNull(), "activity_regularizer": NSNull(), "embeddings_constraint": NSNull(),
                ])
        case let recurrent as RecurrentLayer<Scalar>:
            result = serialized("keras.layers", recurrent.typeName, recurrentConfig(recurrent, name: recurrent.name, policy: policy))
        case let bidirectional as Bidirectional<Scalar>:
            // Keras names the two copies forward_<layer> and backward_<layer>.
            let stem = bidirectional.forwardLayer.nameStem
            var forward = serialized(
                "keras.layers", bidirectional.forwardLayer.typeName,
                recurrentConfig(bidirectional.forwardLayer, name: "forward_\(stem)", policy: policy))
            var backward = serialized(
                "keras.layers", bidirectional.backwardLayer.typeName,
                recurrentConfig(bidirectional.backwardLayer, name: "backward_\(stem)", policy: policy))
            forward["build_config"] = build
            backward["build_config"] = build
            result = serialized(
                "keras.layers", "Bidirectional",
                [
                    "name": bidirectional.name, "trainable": true, "dtype": policy, "merge_mode": bidirectional.mergeMode.rawValue,
                    "layer": forward, "backward_layer": backward,
                ])
        case let dense as Dense<Scalar>:
            result = serialized("keras.layers", "Dense", denseConfig(dense, policy: policy))
        case let masking as Masking<Scalar>:
            result = serialized(
                "keras.layers", "Masking",
                [
                    "name": masking.name, "trainable": true, "dtype": policy,
                    "mask_value": masking.maskValue,
                ])
        case let dropout as Dropout<Scalar>:
            result = serialized(
                "keras.layers", "Dropout",
                [
                    "name": dropout.name, "trainable": true, "dtype": policy,
                    "rate": dropout.rate, "noise_shape": NSNull(), "seed": Int(clamping: dropout.seed),
                ])
        case let wrapper as TimeDistributed<Scalar>:
            var inner = serialized("keras.layers", "Dense", denseConfig(wrapper.layer, policy: policy))
            inner["build_config"] = ["input_shape": [batch, inputShape.features]]
            result = serialized(
                "keras.layers", "TimeDistributed",
                ["name": wrapper.name, "trainable": true, "dtype": policy, "layer": inner])
        default:
            throw ModelError.invalidConfiguration(
                "layer \(layer.name) (\(layer.typeName)) cannot be written to a Keras file; Keras files hold Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, Dense, TimeDistributed(Dense) and Dropout"
            )
        }
        result["build_config"] = build
        return result
    }

    private static func recurrentConfig<Scalar: BLASScalar>(
        _ recurrent: RecurrentLayer<Scalar>, name: String,
        policy: [String: Any]
    ) -> [String: Any] {
        var config: [String: Any] = [
            "name": name, "trainable": true, "dtype": policy, "units": recurrent.units,
            "return_sequences": recurrent.returnSequences, "return_state": false, "go_backwards": recurrent.goBackwards,
            "stateful": recurrent.stateful, "unroll": false, "zero_output_for_mask": recurrent.zeroOutputForMask,
            "use_bias": recurrent.useBias,
            "kernel_initializer": initializer(recurrent.kernelInitializer),
            "recurrent_initializer": initializer(recurrent.recurrentInitializer),
            "bias_initializer": initializer(recurrent.biasInitializer),
            "kernel_regularizer": regularizer(recurrent.kernelRegularizer),
            "recurrent_regularizer": regularizer(recurrent.recurrentRegularizer),
            "bias_regularizer": regularizer(recurrent.biasRegularizer),
            "activity_regularizer": NSNull(), "kernel_constraint": NSNull(), "recurrent_constraint": NSNull(),
            "bias_constraint": NSNull(), "dropout": recurrent.dropout, "recurrent_dropout": recurrent.recurrentDropout,
            "seed": Int(clamping: recurrent.seed),
        ]
        switch recurrent.cell {
        case .simple(let f):
            config["activation"] = f.rawValue
        case .lstm(let f, let sigma):
            config["activation"] = f.rawValue
            config["recurrent_activation"] = sigma.rawValue
            config["unit_forget_bias"] = recurrent.unitForgetBias
        case .gru(let f, let sigma, let resetAfter):
            config["activation"] = f.rawValue
            config["recurrent_activation"] = sigma.rawValue
            config["reset_after"] = resetAfter
        }
        return config
    }

    private static func denseConfig<Scalar: BLASScalar>(_ dense: Dense<Scalar>, policy: [String: Any]) -> [String: Any] {
        [
            "name": dense.name, "trainable": true, "dtype": policy, "units": dense.units, "activation": dense.activation.rawValue,
            "use_bias": dense.useBias, "kernel_initializer": initializer(dense.kernelInitializer),
            "bias_initializer": initializer(dense.biasInitializer), "kernel_regularizer": regularizer(dense.kernelRegularizer),
            "bias_regularizer": regularizer(dense.biasRegularizer),
            "kernel_constraint": NSNull(), "bias_constraint": NSNull(),
        ]
    }

    private static func compileConfig<Scalar: BLASScalar>(of model: Sequential<Scalar>) throws -> [String: Any]? {
        guard let optimizer = model.optimizer, let loss = model.loss else { return nil }
        func limit(_ value: Double?) -> Any { value.map { $0 as Any } ?? NSNull() }
        var clip: (norm: Double?, value: Double?, global: Double?) = (nil, nil, nil)
        switch optimizer.clipping {
        case .none: break
        case .norm(let c): clip.norm = c
        case .value(let c): clip.value = c
        case .globalNorm(let c): clip.global = c
        }
        let common: [String: Any] = [
            "name": optimizer.name, "learning_rate": optimizer.learningRate, "weight_decay": NSNull(), "clipnorm": limit(clip.norm),
            "global_clipnorm": limit(clip.global), "clipvalue": limit(clip.value), "use_ema": false, "ema_momentum": 0.99,
            "ema_overwrite_frequency": NSNull(), "loss_scale_factor": NSNull(), "gradient_accumulation_steps": NSNull(),
        ]
        let optimizerEntry: [String: Any]
        switch optimizer {
        case let adam as Adam<Scalar>:
            optimizerEntry = serialized(
                "keras.optimizers", "Adam",
                common.merging(
                    ["beta_1": adam.beta1, "beta_2": adam.beta2, "epsilon": adam.epsilon, "amsgrad": false]) { $1 })
        case let adamW as AdamW<Scalar>:
            optimizerEntry = serialized(
                "keras.optimizers", "AdamW",
                common.merging(
                    [
                        "weight_decay": adamW.weightDecay, "beta_1": adamW.beta1, "beta_2": adamW.beta2, "epsilon": adamW.epsilon,
                        "amsgrad": false,
                    ]) { $1 })
        case let sgd as SGD<Scalar>:
            optimizerEntry = serialized(
                "keras.optimizers", "SGD", common.merging(["momentum": sgd.momentum, "nesterov": sgd.nesterov]) { $1 })
        case let rmsprop as RMSprop<Scalar>:
            optimizerEntry = serialized(
                "keras.optimizers", "RMSprop",
                common.merging(
                    ["rho": rmsprop.rho, "momentum": 0.0, "epsilon": rmsprop.epsilon, "centered": false]) { $1 })
        default:
            throw ModelError.invalidConfiguration(
                "optimiser \(optimizer.name) cannot be written to a Keras file (Adam, AdamW, SGD, RMSprop can)")
        }
        let metric: Any =
            switch loss.name {
            case "categorical_crossentropy": ["categorical_accuracy"]
            case "sparse_categorical_crossentropy": ["sparse_categorical_accuracy"]
            case "binary_crossentropy": ["binary_accuracy"]
            default: NSNull()
            }
        return [
            "optimizer": optimizerEntry, "loss": loss.name, "loss_weights": NSNull(), "metrics": metric,
            "weighted_metrics": NSNull(), "run_eagerly": false, "steps_per_execution": 1, "jit_compile": false,
        ]
    }
}

extension FeatureShape {
    /// The shape without the batch axis, as Keras lists it: `[steps, features]` or `[features]`.
    /// The extents after the batch, the steps None when `openSteps`.
    func kerasExtents(openSteps: Bool = false) -> [Any] {
        switch self {
        case .sequence(let steps, let features): [openSteps ? NSNull() : steps, features]
        case .vector(let features): [features]
        }
    }
}
