/// A scalar safetensors files store: its dtype tag.
public protocol SafeTensorsScalar {
    /// The safetensors dtype tag (`F32`, `F64`).
    static var safetensorsDType: String { get }
}

extension Float: SafeTensorsScalar {
    public static var safetensorsDType: String { "F32" }
}

extension Double: SafeTensorsScalar {
    public static var safetensorsDType: String { "F64" }
}
