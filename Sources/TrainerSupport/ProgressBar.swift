import Foundation
import RNNKit

/// Keras's per-epoch progress line:
/// `1688/1688 [==============================] - 1s 620us/step - loss: 0.8123 - categorical_accuracy: 0.7406 - val_loss: … - val_categorical_accuracy: …`
///
/// On a terminal it is redrawn in place (at most every 50 ms, so drawing never slows training);
/// otherwise only the finished line of each epoch is written.
package struct ProgressBar {
    package let interactive: Bool
    /// The terminal's width in columns when interactive: lines are fitted to it, since a line
    /// that wraps cannot be redrawn in place.
    package let columns: Int?
    private var lastDraw = 0.0
    private let write: (String) -> Void

    package init(
        interactive: Bool = isatty(STDOUT_FILENO) == 1, columns: Int? = ProgressBar.terminalColumns(),
        write: @escaping (String) -> Void = writeToStandardOutput
    ) {
        self.interactive = interactive
        self.columns = interactive ? columns : nil
        self.write = write
    }

    /// The width of the terminal on standard output (`$COLUMNS` if it cannot be asked), or nil.
    package static func terminalColumns() -> Int? {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init)
    }

    /// The bar for `step` of `steps`, `width` characters inside the brackets (Keras 2's 30 by default).
    package static func bar(step: Int, steps: Int, width: Int = 30) -> String {
        let filled = steps == 0 ? width : width * min(step, steps) / steps
        var bar = "["
        if filled > 0 { bar += String(repeating: "=", count: filled - 1) + (step < steps ? ">" : "=") }
        return bar + String(repeating: ".", count: width - filled) + "]"
    }

    /// Keras's per-step time: `12ms/step`, `620us/step`.
    package static func perStep(_ seconds: Double) -> String {
        seconds >= 1
            ? String(format: "%.0fs/step", seconds)
            : seconds >= 1e-3 ? String(format: "%.0fms/step", seconds * 1e3) : String(format: "%.0fus/step", seconds * 1e6)
    }

    /// The whole line for a point in an epoch, fitted to `columns` when given: the bar narrows
    /// (down to 10), then the names shorten (`acc`, `val_acc`), then the fields go from the end,
    /// so the line never wraps.
    package static func line(
        step: Int, steps: Int, elapsed: Double, training: Metrics, validation: Metrics?,
        columns: Int? = nil
    ) -> String {
        let width = String(steps).count
        let counter = String(repeating: " ", count: width - String(step).count) + "\(step)/\(steps)"
        let time =
            step == steps
            ? "\(Int(elapsed.rounded()))s \(perStep(elapsed / Double(max(step, 1))))"
            : "ETA: \(Int((elapsed / Double(max(step, 1)) * Double(steps - step)).rounded()))s"
        func compose(barWidth: Int, short: Bool, fields: Int) -> String {
            var parts = [
                "\(counter) \(bar(step: step, steps: steps, width: barWidth))", time,
                String(format: "loss: %.4f", training.loss),
                String(format: short ? "acc: %.4f" : "categorical_accuracy: %.4f", training.accuracy),
            ]
            if let validation {
                parts.append(String(format: "val_loss: %.4f", validation.loss))
                parts.append(String(format: short ? "val_acc: %.4f" : "val_categorical_accuracy: %.4f", validation.accuracy))
            }
            return parts.prefix(fields).joined(separator: " - ")
        }
        let all = validation == nil ? 4 : 6
        guard let columns else { return compose(barWidth: 30, short: false, fields: all) }
        // Leave the last column free: a line exactly as wide as the terminal wraps on some.
        let limit = columns - 1
        for barWidth in stride(from: 30, through: 10, by: -5) {
            let text = compose(barWidth: barWidth, short: false, fields: all)
            if text.count <= limit { return text }
        }
        for fields in stride(from: all, through: 1, by: -1) {
            let text = compose(barWidth: 10, short: true, fields: fields)
            if text.count <= limit { return text }
        }
        return String(compose(barWidth: 10, short: true, fields: 1).prefix(max(limit, 1)))
    }

    /// Feeds one of `fit`'s events.
    package mutating func handle(_ event: FitEvent, epochs: Int) {
        switch event {
        case .batchEnded(let epoch, let step, let steps, let running, let elapsed):
            if step == 1 { write("Epoch \(epoch)/\(epochs)\n") }
            guard interactive, step < steps, elapsed - lastDraw >= 0.05 || step == 1 else { return }
            lastDraw = elapsed
            write(
                "\r" + Self.line(step: step, steps: steps, elapsed: elapsed, training: running, validation: nil, columns: columns)
                    + "\u{1B}[K")
        case .epochEnded(_, let steps, let training, let validation, let seconds):
            lastDraw = 0
            write(
                (interactive ? "\r" : "")
                    + Self.line(
                        step: steps, steps: steps, elapsed: seconds, training: training, validation: validation,
                        columns: columns)
                    + (interactive ? "\u{1B}[K" : "") + "\n")
        }
    }
}

/// Writes straight to file descriptor 1, unbuffered, so progress redraws show at once.
package func writeToStandardOutput(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
