import Foundation
import RNNKit
import SwiftProtobuf

/// Writes a `Sequential` model as an ONNX file, which onnxruntime (and other ONNX runtimes) run
/// for inference.
///
/// The graph has one input, `input`, batch-major float32 as the model reads it: `[batch, steps,
/// features]` for a sequence (one feature holding the id for a model that starts with an
/// `Embedding`), `[batch, features]` for a vector; and one output, `output`, as `predict` writes
/// it: `[batch, units]`, or `[batch, steps, units]` for a sequence. The batch dimension is named
/// (`batch`), so any batch size runs; so is the time dimension (`steps`) unless
/// ``ONNXExportOptions/dynamicSteps`` is false.
///
/// Layers become ONNX operators of opset ``opset``: `Embedding` → `Gather`; `SimpleRNN`, `LSTM`,
/// `GRU` → `RNN`, `LSTM`, `GRU` (Keras's LSTM gates i f c o reordered to ONNX's i o f c, GRU's
/// `resetAfter` as `linear_before_reset = 1` with its two biases, `goBackwards` as `direction =
/// reverse`); `Bidirectional` → one operator with `direction = bidirectional` and its merge
/// (`Concat`, `Add`, `Mul`, or their mean); `Dense` and `TimeDistributed(Dense)` → `MatMul`,
/// `Add` and the activation; `Dropout` → nothing (inference). A `Float` or `Double` model is
/// written in float32.
///
/// Masks become the recurrent operators' `sequence_lens`, which reads the first `length` steps
/// of each sample: exact for padding that trails (every masked step after every kept one). An
/// `Embedding` with `maskZero` computes each sample's length in the graph, as the position of its
/// last nonzero id; a `Masking` layer only when ``ONNXExportOptions/masking`` says its padding
/// trails; ``ONNXExportOptions/lengthsInput`` adds a `lengths` input, `predict(x:lengths:…)`'s
/// per-sample lengths.
public enum ONNXExport {
    /// The ONNX operator set the files use: 17, read by every onnxruntime since 1.13 (2022) and by
    /// the other common runtimes and converters, and recent enough for every operator and
    /// attribute the export needs (`Shape`'s `start`/`end` came in 15, the recurrent operators'
    /// current forms in 14).
    public static let opset = 17
    /// The ONNX IR version that goes with opset 17.
    public static let irVersion = 8

    /// The model as the bytes of an ONNX file.
    ///
    /// - Parameters:
    ///   - model: a built model of the layers listed in ``ONNXExport``.
    ///   - options: masks, lengths, initial states and the time dimension.
    /// - Returns: a serialised `onnx.ModelProto`.
    /// - Throws: ``ONNXExportError`` naming the layer that ONNX cannot express, or the mask it cannot.
    public static func serialize<Scalar>(_ model: Sequential<Scalar>, options: ONNXExportOptions = ONNXExportOptions()) throws -> Data {
        var exporter = GraphExporter(model: model, options: options)
        let graph = try exporter.export()
        var opsetID = Onnx_OperatorSetIdProto()
        opsetID.domain = ""
        opsetID.version = Int64(opset)
        var proto = Onnx_ModelProto()
        proto.irVersion = Int64(irVersion)
        proto.opsetImport = [opsetID]
        proto.producerName = "RNNKit"
        proto.producerVersion = RNNKitRelease.version
        proto.docString = "RNNKit Sequential model \(model.name), exported for inference"
        proto.graph = graph
        return try proto.serializedData()
    }

    /// Writes the model as an ONNX file at `url` (replacing a file there).
    ///
    /// - Parameters:
    ///   - model: a built model of the layers listed in ``ONNXExport``.
    ///   - url: the file to write, `model.onnx` say.
    ///   - options: masks, lengths, initial states and the time dimension.
    /// - Throws: ``ONNXExportError`` for what ONNX cannot express; the file system's error when
    ///   the file cannot be written.
    public static func write<Scalar>(_ model: Sequential<Scalar>, to url: URL, options: ONNXExportOptions = ONNXExportOptions()) throws {
        try serialize(model, options: options).write(to: url, options: .atomic)
    }
}

/// How ``ONNXExport`` writes masks, lengths, initial states and the time dimension.
public struct ONNXExportOptions: Sendable, Equatable {
    /// What to do with a `Masking` layer, whose mask comes from the values of the data.
    public enum Masking: Sendable, Equatable {
        /// Refuse it (``ONNXExportError/maskNotExpressible(layer:reason:)``): ONNX's recurrent
        /// operators cannot skip masked steps at the start or in the middle of a sequence, and
        /// nothing in the model says where its data's masked steps lie.
        case refuse
        /// The caller's data masks only trailing steps (every masked step after every kept one):
        /// each sample's length is computed in the graph as the position of its last step with a
        /// feature unequal to the mask value. A mask at the start or in the middle of a sequence
        /// then gives other outputs than RNNKit's, silently.
        case trailingPadding
    }

    /// What to do with a `Masking` layer (``Masking-swift.enum/refuse`` by default).
    public var masking: Masking
    /// Add the graph input `lengths` (int32 `[batch]`, each in `1…steps`): sample b's steps from
    /// `lengths[b]` on are padding, as in `predict(x:lengths:batchSize:into:)`. Combined with a
    /// mask computed in the graph, the shorter length wins.
    public var lengthsInput: Bool
    /// Add, for each recurrent layer, graph inputs of its initial state (Keras's `initial_state`,
    /// RNNKit's `setInitialState`): `NAME/initial_h` float32 `[batch, units]` and, for an LSTM,
    /// `NAME/initial_c`, where NAME is the layer's name (`lstm`, `bidirectional/backward_gru`).
    /// Without them every sequence starts from zeros.
    public var initialStateInputs: Bool
    /// Name the time dimension of the input (and of a sequence output) `steps`, so sequences of any
    /// length run; when false it is the model's fixed `steps`.
    public var dynamicSteps: Bool

    /// The options; every argument has the default that suits a model without masks.
    ///
    /// - Parameters:
    ///   - masking: what to do with a `Masking` layer (refuse it by default).
    ///   - lengthsInput: add the graph input `lengths` (false by default).
    ///   - initialStateInputs: add initial-state inputs for each recurrent layer (false by default).
    ///   - dynamicSteps: a named, dynamic time dimension (true by default).
    public init(masking: Masking = .refuse, lengthsInput: Bool = false, initialStateInputs: Bool = false, dynamicSteps: Bool = true) {
        self.masking = masking
        self.lengthsInput = lengthsInput
        self.initialStateInputs = initialStateInputs
        self.dynamicSteps = dynamicSteps
    }
}

/// What ``ONNXExport`` cannot write, naming the layer.
public enum ONNXExportError: Error, CustomStringConvertible, Equatable {
    /// The layer `layer` is of a type (`type`) that the export does not know: a custom layer, say.
    case unsupportedLayer(layer: String, type: String)
    /// The layer's activation has no ONNX form in the place it is used.
    case unsupportedActivation(layer: String, activation: String)
    /// The mask that reaches `layer` cannot be written as ONNX's `sequence_lens`; `reason` says why.
    case maskNotExpressible(layer: String, reason: String)

    /// The message a person reads, naming the layer.
    public var description: String {
        switch self {
        case .unsupportedLayer(let layer, let type):
            "ONNX export: layer \(layer) (\(type)) has no ONNX form in RNNKit's export"
        case .unsupportedActivation(let layer, let activation):
            "ONNX export: layer \(layer)'s activation \(activation) has no ONNX form there"
        case .maskNotExpressible(let layer, let reason):
            "ONNX export: the mask of \(layer) cannot be written as ONNX sequence lengths: \(reason)"
        }
    }
}
