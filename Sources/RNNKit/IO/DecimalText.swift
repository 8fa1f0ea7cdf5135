/// The decimal numbers the text readers (CSV, `.ts`) take, written the same way in both.
enum DecimalText {
    /// Whether `bytes[range]` is `[+-] digits [. digits] [e [+-] digits]`, with digits on at least
    /// one side of the point: the plain decimals a data file holds, never `nan`, `inf`, hex or
    /// anything else `Double(_:)` would also read.
    static func isDecimal(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        var index = range.lowerBound
        let upper = range.upperBound
        guard index < upper else { return false }
        func digits() -> Int {
            let start = index
            while index < upper, (0x30...0x39).contains(bytes[index]) { index += 1 }
            return index - start
        }
        if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
        var mantissa = digits()
        if index < upper, bytes[index] == UInt8(ascii: ".") {
            index += 1
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if index < upper, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < upper, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return false }
        }
        return index == upper
    }
}
