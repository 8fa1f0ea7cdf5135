import Foundation
import RNNKit

/// Keras's per-epoch progress line:
/// `1688/1688 [==============================] - 1s 620us/step - loss: 0.8123 - categorical_accuracy: 0.7406 - val_loss: … - val_categorical_accuracy: …`
///
/// On a terminal it is redrawn in place (at most every 50 ms, so drawing never slows training);
/// otherwise only the finished line of each epoch is written.
public struct ProgressBar {
    public let interactive: Bool
    private var lastDraw = 0.0
    private let write: (String) -> Void

    public init(interactive: Bool = isatty(STDOUT_FILENO) == 1, write: @escaping (String) -> Void = writeToStandardOutput) {
        self.interactive = interactive
        self.write = write
    }

    /// The bar for `step` of `steps`, 30 characters wide, drawn as Keras 2 draws it.
    public static func bar(step: Int, steps: Int) -> String {
        let width = 30
        let filled = steps == 0 ? width : width * min(step, steps) / steps
        var bar = "["
        if filled > 0 { bar += String(repeating: "=", count: filled - 1) + (step < steps ? ">" : "=") }
        return bar + String(repeating: ".", count: width - filled) + "]"
    }

    /// Keras's per-step time: `12ms/step`, `620us/step`.
    public static func perStep(_ seconds: Double) -> String {
        seconds >= 1 ? String(format: "%.0fs/step", seconds)
            : seconds >= 1e-3 ? String(format: "%.0fms/step", seconds * 1e3) : String(format: "%.0fus/step", seconds * 1e6)
    }

    /// The whole line for a point in an epoch.
    public static func line(step: Int, steps: Int, elapsed: Double, training: Metrics, validation: Metrics?) -> String {
        let width = String(steps).count
        let counter = String(repeating: " ", count: width - String(step).count) + "\(step)/\(steps)"
        var text = "\(counter) \(bar(step: step, steps: steps)) - "
        text += step == steps ? "\(Int(elapsed.rounded()))s \(perStep(elapsed / Double(max(step, 1))))"
            : "ETA: \(Int((elapsed / Double(max(step, 1)) * Double(steps - step)).rounded()))s"
        text += String(format: " - loss: %.4f - categorical_accuracy: %.4f", training.loss, training.accuracy)
        if let validation {
            text += String(format: " - val_loss: %.4f - val_categorical_accuracy: %.4f", validation.loss, validation.accuracy)
        }
        return text
    }

    /// Feeds one of `fit`'s events.
    public mutating func handle(_ event: FitEvent, epochs: Int) {
        switch event {
        case .batchEnded(let epoch, let step, let steps, let running, let elapsed):
            if step == 1 { write("Epoch \(epoch)/\(epochs)\n") }
            guard interactive, step < steps, elapsed - lastDraw >= 0.05 || step == 1 else { return }
            lastDraw = elapsed
            write("\r" + Self.line(step: step, steps: steps, elapsed: elapsed, training: running, validation: nil) + "\u{1B}[K")
        case .epochEnded(_, let steps, let training, let validation, let seconds):
            lastDraw = 0
            write((interactive ? "\r" : "") + Self.line(step: steps, steps: steps, elapsed: seconds, training: training, validation: validation)
                  + (interactive ? "\u{1B}[K" : "") + "\n")
        }
    }
}

/// Writes straight to file descriptor 1, unbuffered, so progress redraws show at once.
public func writeToStandardOutput(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
