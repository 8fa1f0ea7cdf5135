/// A Keras model uses layers, options or settings RNNKit does not implement. Every such item is
/// listed, with where it is in `config.json`, so one attempt shows everything to change.
public struct UnsupportedKerasModel: Error, CustomStringConvertible, Equatable {
    /// The config the items are in, as errors name it (`model.keras: config.json`).
    public let file: String
    /// One line per item: where it is and what is not supported.
    public let items: [String]
    /// The file, the count of items and the items as an indented list (a long one cut short, with a count of the rest).
    public var description: String {
        "\(file): RNNKit cannot rebuild this model (nothing is guessed), because of \(items.count == 1 ? "one item" : "\(items.count) items"):\n"
            + KerasMessages.list(items)
    }
}

/// Messages that stay a screenful whatever a file holds.
enum KerasMessages {
    /// `items` as an indented list: the first `limit`, each cut to 300 characters, then a count of the rest.
    static func list(_ items: [String], limit: Int = 12) -> String {
        var lines = items.prefix(limit).map { "  - " + clipped($0) }
        if items.count > limit { lines.append("  … and \(items.count - limit) more") }
        return lines.joined(separator: "\n")
    }

    /// `text` cut to `limit` characters, with an ellipsis when it was longer.
    static func clipped(_ text: String, _ limit: Int = 300) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
