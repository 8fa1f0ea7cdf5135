extension Sequential {
    /// Keras's model summary: a table of layer name and type, output shape and parameter count,
    /// then the totals with their size in memory.
    ///
    ///     Model: "sequential"
    ///     ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ///     ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ///     ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    ///     │ simple_rnn (SimpleRNN)          │ (None, 10)             │           390 │
    ///     ...
    public func summary() -> String {
        let widths = [33, 24, 15]
        func cell(_ text: String, _ width: Int, right: Bool = false) -> String {
            let padding = String(repeating: " ", count: max(width - 2 - text.count, 0))
            return " " + (right ? padding + text : text + padding) + " "
        }
        func rule(_ left: String, _ fill: String, _ middle: String, _ right: String) -> String {
            left + widths.map { String(repeating: fill, count: $0) }.joined(separator: middle) + right
        }
        // A model with a fixed batch shows it where Keras does, in place of None.
        func shapeText(_ shape: FeatureShape) -> String {
            guard let batchSize else { return shape.description }
            return "(\(batchSize)" + shape.description.dropFirst("(None".count)
        }
        var lines = ["Model: \"\(name)\""]
        lines.append(rule("┏", "━", "┳", "┓"))
        lines.append(
            "┃" + cell("Layer (type)", widths[0]) + "┃" + cell("Output Shape", widths[1]) + "┃"
                + cell("Param #", widths[2], right: true) + "┃")
        lines.append(rule("┡", "━", "╇", "┩"))
        for (i, layer) in layers.enumerated() {
            if i > 0 { lines.append(rule("├", "─", "┼", "┤")) }
            let count = layer.parameterCount
            lines.append(
                "│" + cell("\(layer.name) (\(layer.typeName))", widths[0]) + "│"
                    + cell(shapeText(layer.outputShape), widths[1]) + "│"
                    + cell(Self.grouped(count), widths[2], right: true) + "│")
        }
        lines.append(rule("└", "─", "┴", "┘"))
        let total = parameterCount
        let bytes = total * MemoryLayout<Scalar>.size
        lines.append(" Total params: \(Self.grouped(total)) (\(Self.byteSize(bytes)))")
        lines.append(" Trainable params: \(Self.grouped(total)) (\(Self.byteSize(bytes)))")
        lines.append(" Non-trainable params: 0 (0.00 B)")
        return lines.joined(separator: "\n")
    }

    /// 52000 → "52,000".
    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var result = ""
        for (i, digit) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return result
    }

    /// Keras's size notation: 2000 → "1.95 KB" (powers of 1024, two decimals).
    static func byteSize(_ bytes: Int) -> String {
        var value = Double(bytes)
        var unit = "B"
        for next in ["KB", "MB", "GB"] where value >= 1024 {
            value /= 1024
            unit = next
        }
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) \(unit)"
    }
}
