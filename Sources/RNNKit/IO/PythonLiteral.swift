import Foundation

/// A value of the small part of Python's literal syntax that a `.npy` header is written in:
/// strings, integers, `True`, `False`, `None`, tuples, lists and dicts with string keys.
indirect enum PythonLiteral: Equatable {
    case string(String)
    /// An integer; nil when it does not fit in an `Int`.
    case integer(Int?)
    case boolean(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    /// The keys and values in the order written, repeats kept (Python would keep the last).
    case dict([(key: String, value: PythonLiteral)])

    static func == (lhs: PythonLiteral, rhs: PythonLiteral) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.boolean(let a), .boolean(let b)): a == b
        case (.none, .none): true
        case (.tuple(let a), .tuple(let b)), (.list(let a), .list(let b)): a == b
        case (.dict(let a), .dict(let b)): a.map(\.key) == b.map(\.key) && a.map(\.value) == b.map(\.value)
        default: false
        }
    }

    /// What the value is, for a message: `a string`, `a tuple`, ….
    var kind: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .boolean: "a boolean"
        case .none: "None"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict: "a dict"
        }
    }

    /// A reason the text is not a literal; the parser's only error.
    struct SyntaxError: Error {
        let reason: String
    }

    /// The one literal that `text` (ASCII) holds, with only spaces, tabs and line ends around it.
    /// Strict: no escapes in strings, no expressions, no string concatenation, containers at
    /// most `maximumDepth` deep. Never evaluates anything.
    static func parse(_ text: [UInt8], maximumDepth: Int = 8) throws -> PythonLiteral {
        var parser = Parser(bytes: text, maximumDepth: maximumDepth)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == text.count else {
            throw SyntaxError(reason: "has text after its dict, at byte \(parser.position)")
        }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        let maximumDepth: Int
        var position = 0

        init(bytes: [UInt8], maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        func fail(_ what: String) -> SyntaxError { SyntaxError(reason: "\(what), at byte \(position)") }

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        /// The next byte after any space, not consumed; nil at the end.
        mutating func peek() -> UInt8? {
            skipSpace()
            return position < bytes.count ? bytes[position] : nil
        }

        mutating func value(depth: Int) throws -> PythonLiteral {
            guard let byte = peek() else { throw fail("ends where a value should be") }
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try integer()
            case UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "{"):
                guard depth < maximumDepth else { throw fail("nests deeper than \(maximumDepth) levels") }
                return try container(depth: depth + 1)
            default:
                var word = ""
                while position < bytes.count, word.count < 16 {
                    let letter = bytes[position]
                    guard (0x61...0x7A).contains(letter | 0x20) || letter == UInt8(ascii: "_") else { break }
                    word.append(Character(Unicode.Scalar(letter)))
                    position += 1
                }
                switch word {
                case "True": return .boolean(true)
                case "False": return .boolean(false)
                case "None": return .none
                case "": throw fail("has \(Self.describe(byte)) where a value should be")
                default: throw fail("has the name \(word), not a literal")
                }
            }
        }

        static func describe(_ byte: UInt8) -> String {
            (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : String(format: "byte 0x%02X", byte)
        }

        mutating func string() throws -> String {
            let quote = bytes[position]
            position += 1
            let start = position
            while position < bytes.count, bytes[position] != quote {
                guard bytes[position] != UInt8(ascii: "\\") else { throw fail("has a backslash in a string") }
                guard bytes[position] != 0x0A else { throw fail("has a line end in a string") }
                position += 1
            }
            guard position < bytes.count else { throw fail("has a string that never ends") }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            position += 1
            // Python joins 'a' 'b' into one string; a header never needs that.
            if let next = peek(), next == UInt8(ascii: "'") || next == UInt8(ascii: "\"") {
                throw fail("has two strings in a row")
            }
            return text
        }

        mutating func integer() throws -> PythonLiteral {
            var negative = false
            if bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "+") {
                negative = bytes[position] == UInt8(ascii: "-")
                position += 1
            }
            let start = position
            var value: Int? = 0
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                let digit = Int(bytes[position] - UInt8(ascii: "0"))
                if let current = value {
                    let (times, overflow1) = current.multipliedReportingOverflow(by: 10)
                    let (sum, overflow2) = times.addingReportingOverflow(digit)
                    value = overflow1 || overflow2 ? nil : sum
                }
                position += 1
            }
            guard position > start else { throw fail("has a sign without digits") }
            // Python 3 refuses 007; Python 2's NumPy wrote 3L.
            if bytes[start] == UInt8(ascii: "0"), position - start > 1 { throw fail("has an integer with a leading zero") }
            if position < bytes.count, bytes[position] == UInt8(ascii: "L") { position += 1 }
            if position < bytes.count,
                [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "x")].contains(bytes[position])
            {
                throw fail("has a number that is not an integer")
            }
            return .integer(negative ? value.map { -$0 } : value)
        }

        /// A tuple, list or dict; the opening bracket is next.
        mutating func container(depth: Int) throws -> PythonLiteral {
            let open = bytes[position]
            position += 1
            let close: UInt8 =
                switch open {
                case UInt8(ascii: "("): UInt8(ascii: ")")
                case UInt8(ascii: "["): UInt8(ascii: "]")
                default: UInt8(ascii: "}")
                }
            let name = open == UInt8(ascii: "(") ? "tuple" : open == UInt8(ascii: "[") ? "list" : "dict"
            var items: [PythonLiteral] = []
            var pairs: [(key: String, value: PythonLiteral)] = []
            var trailingComma = false
            while true {
                guard let next = peek() else { throw fail("ends inside a \(name)") }
                if next == close {
                    position += 1
                    break
                }
                if open == UInt8(ascii: "{") {
                    guard next == UInt8(ascii: "'") || next == UInt8(ascii: "\"") else { throw fail("has a dict key that is not a string") }
                    let key = try string()
                    guard peek() == UInt8(ascii: ":") else { throw fail("has a dict key without a colon after it") }
                    position += 1
                    pairs.append((key, try value(depth: depth)))
                } else {
                    items.append(try value(depth: depth))
                }
                guard let after = peek() else { throw fail("ends inside a \(name)") }
                if after == UInt8(ascii: ",") {
                    position += 1
                    trailingComma = true
                } else if after == close {
                    trailingComma = false
                } else {
                    throw fail("has \(Self.describe(after)) where a comma or closing bracket should be")
                }
                guard items.count + pairs.count <= 1_024 else { throw fail("has a \(name) of over 1024 items") }
            }
            switch open {
            case UInt8(ascii: "("):
                // (3) is 3 in Python, (3,) a tuple of one.
                return items.count == 1 && !trailingComma ? items[0] : .tuple(items)
            case UInt8(ascii: "["): return .list(items)
            default: return .dict(pairs)
            }
        }
    }
}
