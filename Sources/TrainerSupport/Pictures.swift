import Foundation

/// The trainer's pictures as SVG: the notebook's two history panels and the example digit.
package enum Pictures {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ value: Double) -> String { String(format: "%.2f", value) }

    /// Tick values spanning [low, high]: about five, at 1, 2 or 5 times a power of ten.
    static func ticks(_ low: Double, _ high: Double) -> [Double] {
        let span = max(high - low, 1e-9)
        let raw = span / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        // Whole multiples of the step, rounded to its precision so labels read 0.6, not 0.6000000000000001.
        let first = Int((low / step).rounded(.up)), last = Int((high / step + 1e-9).rounded(.down))
        let decimals = max(0, -Int(floor(log10(step))))
        let scale = pow(10, Double(decimals))
        return first > last ? [] : (first...last).map { (Double($0) * step * scale).rounded() / scale }
    }

    /// One panel: a line per series over epochs 1…n, labelled axes, ticks and a legend.
    static func panel(
        title: String, yLabel: String, series: [(name: String, color: String, values: [Double])],
        x: Double, y: Double, width: Double, height: Double, legendAtBottom: Bool = false
    ) -> String {
        let left = x + 60, right = x + width - 15, top = y + 35, bottom = y + height - 50
        let all = series.flatMap(\.values).filter(\.isFinite)
        let epochs = series.map(\.values.count).max() ?? 0
        var low = all.min() ?? 0, high = all.max() ?? 1
        if high - low < 1e-6 { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.08
        low -= pad
        high += pad
        func px(_ epoch: Int) -> Double {
            epochs <= 1 ? (left + right) / 2 : left + (right - left) * Double(epoch - 1) / Double(epochs - 1)
        }
        func py(_ value: Double) -> Double { bottom - (bottom - top) * (value - low) / (high - low) }
        var svg = "<g font-family=\"sans-serif\" font-size=\"12\">\n"
        svg +=
            "<text x=\"\(number((left + right) / 2))\" y=\"\(number(y + 20))\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        svg +=
            "<rect x=\"\(number(left))\" y=\"\(number(top))\" width=\"\(number(right - left))\" height=\"\(number(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        for tick in ticks(low, high) {
            svg +=
                "<line x1=\"\(number(left - 4))\" y1=\"\(number(py(tick)))\" x2=\"\(number(right))\" y2=\"\(number(py(tick)))\" stroke=\"#ddd\"/>\n"
            svg +=
                "<text x=\"\(number(left - 7))\" y=\"\(number(py(tick) + 4))\" text-anchor=\"end\">\(String(format: "%g", (tick * 1000).rounded() / 1000))</text>\n"
        }
        let stride = max(1, (epochs + 9) / 10)
        for epoch in Swift.stride(from: 1, through: max(epochs, 1), by: stride) {
            svg +=
                "<line x1=\"\(number(px(epoch)))\" y1=\"\(number(bottom))\" x2=\"\(number(px(epoch)))\" y2=\"\(number(bottom + 4))\" stroke=\"#333\"/>\n"
            svg += "<text x=\"\(number(px(epoch)))\" y=\"\(number(bottom + 17))\" text-anchor=\"middle\">\(epoch)</text>\n"
        }
        svg += "<text x=\"\(number((left + right) / 2))\" y=\"\(number(bottom + 38))\" text-anchor=\"middle\">epoch</text>\n"
        svg +=
            "<text transform=\"translate(\(number(x + 16)) \(number((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (k, entry) in series.enumerated() where !entry.values.isEmpty {
            let points = entry.values.enumerated().map { "\(number(px($0.offset + 1))),\(number(py($0.element)))" }
            svg += "<polyline fill=\"none\" stroke=\"\(entry.color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
            for point in points {
                let xy = point.split(separator: ",")
                svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(entry.color)\"/>\n"
            }
            let ly = legendAtBottom ? bottom - 12 - Double(series.count - 1 - k) * 18 : top + 12 + Double(k) * 18
            svg +=
                "<line x1=\"\(number(right - 110))\" y1=\"\(number(ly))\" x2=\"\(number(right - 90))\" y2=\"\(number(ly))\" stroke=\"\(entry.color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(number(right - 85))\" y=\"\(number(ly + 4))\">\(escape(entry.name))</text>\n"
        }
        return svg + "</g>\n"
    }

    /// The notebook's figure: loss (left) and accuracy (right) per epoch, training and validation.
    /// `title`, when given, names the model above both panels.
    package static func historySVG(
        loss: [Double], accuracy: [Double], valLoss: [Double], valAccuracy: [Double],
        title: String? = nil
    ) -> String {
        let width = 1000.0, top = title == nil ? 0.0 : 30.0, height = 400.0 + top
        var svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        svg +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        if let title {
            svg +=
                "<text x=\"\(number(width / 2))\" y=\"22\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"17\">\(escape(title))</text>\n"
        }
        svg += panel(
            title: "Loss", yLabel: "categorical cross-entropy",
            series: [("training", "#1f77b4", loss), ("validation", "#ff7f0e", valLoss)],
            x: 0, y: top, width: width / 2, height: height - top)
        svg += panel(
            title: "Accuracy", yLabel: "categorical accuracy",
            series: [("training", "#1f77b4", accuracy), ("validation", "#ff7f0e", valAccuracy)],
            x: width / 2, y: top, width: width / 2, height: height - top, legendAtBottom: true)
        return svg + "</svg>\n"
    }

    /// An image as a heat map (dark = 0, bright = 255, as matplotlib's default colormap runs
    /// from purple to yellow), with `title` above it.
    package static func digitSVG(pixels: [UInt8], rows: Int, columns: Int, title: String) -> String {
        let cell = 12, margin = 20, titleHeight = 36
        let width = columns * cell + 2 * margin, height = rows * cell + margin + titleHeight
        var svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg +=
            "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"18\">\(escape(title))</text>\n"
        for r in 0..<rows {
            for c in 0..<columns {
                svg +=
                    "<rect x=\(q(margin + c * cell)) y=\(q(titleHeight + r * cell)) width=\(q(cell)) height=\(q(cell)) fill=\"\(viridis(Double(pixels[r * columns + c]) / 255))\"/>\n"
            }
        }
        return svg + "</svg>\n"
    }

    private static func q(_ value: Int) -> String { "\"\(value)\"" }

    /// A few stops of matplotlib's viridis, linearly interpolated.
    static func viridis(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(max(t, 0), 1) * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2), f = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        func mix(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// The image in the terminal, two characters a pixel, shaded with Unicode blocks.
    package static func terminalDigit(pixels: [UInt8], rows: Int, columns: Int) -> String {
        let shades: [Character] = [" ", "░", "▒", "▓", "█"]
        var lines: [String] = []
        for r in 0..<rows {
            var line = ""
            for c in 0..<columns {
                let shade = shades[min(Int(pixels[r * columns + c]) * shades.count / 256, shades.count - 1)]
                line.append(shade)
                line.append(shade)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
