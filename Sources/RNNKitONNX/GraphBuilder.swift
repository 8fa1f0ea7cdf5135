import Foundation
import SwiftProtobuf

/// Collects an ONNX graph's nodes, weights (initializers) and inputs, naming every value it makes.
struct GraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private(set) var inputs: [Onnx_ValueInfoProto] = []
    private(set) var outputs: [Onnx_ValueInfoProto] = []
    private var used: Set<String> = []

    /// A value name not used yet, `stem` itself when it is free.
    mutating func fresh(_ stem: String) -> String {
        var name = stem, n = 1
        while used.contains(name) {
            name = "\(stem)_\(n)"
            n += 1
        }
        used.insert(name)
        return name
    }

    /// Adds a node `op` reading `inputs` ("" for an optional input left out) and returns the names of
    /// its `outputs` outputs, named after `name`; the optional outputs at `unused` are left out ("").
    @discardableResult
    mutating func node(
        _ op: String, _ inputs: [String], outputs: Int = 1, unused: Set<Int> = [], name: String, attributes: [Onnx_AttributeProto] = []
    ) -> [String] {
        var node = Onnx_NodeProto()
        node.opType = op
        node.name = fresh("\(name)/\(op)")
        node.input = inputs
        node.output = (0..<outputs).map { unused.contains($0) ? "" : fresh(outputs == 1 ? node.name : "\(node.name):\($0)") }
        node.attribute = attributes
        nodes.append(node)
        return node.output
    }

    /// A one-output node: its output's name.
    mutating func op(_ op: String, _ inputs: [String], name: String, attributes: [Onnx_AttributeProto] = []) -> String {
        node(op, inputs, name: name, attributes: attributes)[0]
    }

    /// A float32 weight of `shape` (row-major `values`), named `name`.
    mutating func floats(_ values: [Float], shape: [Int], name: String) -> String {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(name)
        tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.dims = shape.map(Int64.init)
        tensor.rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
        initializers.append(tensor)
        return tensor.name
    }

    /// A constant tensor of int64 `values` (1-D, or a scalar when `scalar`).
    mutating func int64s(_ values: [Int], name: String, scalar: Bool = false) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(name)
        tensor.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        tensor.dims = scalar ? [] : [Int64(values.count)]
        tensor.int64Data = values.map(Int64.init)
        initializers.append(tensor)
        return tensor.name
    }

    /// A constant int32 scalar.
    mutating func int32Scalar(_ value: Int32, name: String) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(name)
        tensor.dataType = Int32(Onnx_TensorProto.DataType.int32.rawValue)
        tensor.int32Data = [value]
        initializers.append(tensor)
        return tensor.name
    }

    /// A graph input of element type `type` whose dimensions are fixed sizes or named (dynamic) ones.
    mutating func input(_ name: String, type: Onnx_TensorProto.DataType, dims: [Dimension]) -> String {
        let name = fresh(name)
        inputs.append(Self.valueInfo(name, type: type, dims: dims))
        return name
    }

    /// Declares `value` a graph output named `name` (through an Identity node when the names differ).
    mutating func output(_ value: String, as name: String, type: Onnx_TensorProto.DataType, dims: [Dimension]) {
        let name = fresh(name)
        var identity = Onnx_NodeProto()
        identity.opType = "Identity"
        identity.name = fresh("\(name)/Identity")
        identity.input = [value]
        identity.output = [name]
        nodes.append(identity)
        outputs.append(Self.valueInfo(name, type: type, dims: dims))
    }

    /// A dimension of a graph input or output.
    enum Dimension {
        case fixed(Int)
        case named(String)
    }

    private static func valueInfo(_ name: String, type: Onnx_TensorProto.DataType, dims: [Dimension]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { dimension in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch dimension {
            case .fixed(let size): dim.dimValue = Int64(size)
            case .named(let name): dim.dimParam = name
            }
            return dim
        }
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(type.rawValue)
        tensorType.shape = shape
        var typeProto = Onnx_TypeProto()
        typeProto.tensorType = tensorType
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = typeProto
        return info
    }

    /// The graph, named `name`.
    func graph(name: String) -> Onnx_GraphProto {
        var graph = Onnx_GraphProto()
        graph.name = name
        graph.node = nodes
        graph.initializer = initializers
        graph.input = inputs
        graph.output = outputs
        return graph
    }
}

/// Builders of node attributes.
enum Attribute {
    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .int
        attribute.i = Int64(value)
        return attribute
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .ints
        attribute.ints = values.map(Int64.init)
        return attribute
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .float
        attribute.f = value
        return attribute
    }

    static func floats(_ name: String, _ values: [Float]) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .floats
        attribute.floats = values
        return attribute
    }

    static func string(_ name: String, _ value: String) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .string
        attribute.s = Data(value.utf8)
        return attribute
    }

    static func strings(_ name: String, _ values: [String]) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .strings
        attribute.strings = values.map { Data($0.utf8) }
        return attribute
    }
}
