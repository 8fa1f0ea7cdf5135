import Foundation

/// JSON read with its types kept apart, for configs that come from files: a boolean is a Swift
/// `Bool`, a whole number an `Int`, any other number a `Double`, so that `as? Int` never takes
/// `true` for 1 and `as? Bool` never takes 1 for true (Foundation's `JSONSerialization` bridges
/// all three through `NSNumber`, which casts to each of them).
enum StrictJSON {
    /// The value `data` holds, as `[String: Any]`, `[Any]`, `String`, `Bool`, `Int`, `Double` or
    /// `NSNull`. Throws for text that is not JSON, numbers out of Double's range, or nesting deeper
    /// than Foundation's decoder allows.
    static func value(from data: Data) throws -> Any {
        try JSONDecoder().decode(Value.self, from: data).native
    }

    private enum Value: Decodable {
        case null, bool(Bool), int(Int), double(Double), string(String), array([Value]), object([String: Value])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let flag = try? container.decode(Bool.self) {
                self = .bool(flag)
            } else if let number = try? container.decode(Int.self) {
                self = .int(number)
            } else if let number = try? container.decode(Double.self) {
                self = .double(number)
            } else if let text = try? container.decode(String.self) {
                self = .string(text)
            } else if let list = try? container.decode([Value].self) {
                self = .array(list)
            } else {
                self = .object(try container.decode([String: Value].self))
            }
        }

        var native: Any {
            switch self {
            case .null: NSNull()
            case .bool(let flag): flag
            case .int(let number): number
            case .double(let number): number
            case .string(let text): text
            case .array(let list): list.map(\.native)
            case .object(let fields): fields.mapValues(\.native)
            }
        }
    }
}
