import Foundation

/// Per-epoch figures from `fit`, with Keras's keys when encoded as JSON:
/// `{"loss": [...], "categorical_accuracy": [...], "val_loss": [...], "val_categorical_accuracy": [...]}`
/// (the `val_` keys only when there was validation data).
public struct History: Equatable, Sendable, Codable {
    /// The mean training loss of each epoch (`loss`).
    public var loss: [Double] = []
    /// The training accuracy of each epoch (`categorical_accuracy`; NaN for a loss without one).
    public var categoricalAccuracy: [Double] = []
    /// The validation loss of each epoch (`val_loss`); empty without validation data.
    public var valLoss: [Double] = []
    /// The validation accuracy of each epoch (`val_categorical_accuracy`); empty without validation data.
    public var valCategoricalAccuracy: [Double] = []
    /// Seconds of training per epoch (batches only, validation excluded). Not part of Keras's
    /// history, so not encoded.
    public var epochSeconds: [Double] = []

    /// An empty history, before any epoch.
    public init() {}

    /// The number of completed epochs.
    public var epochs: Int { loss.count }

    /// Records one finished epoch.
    public mutating func append(training: Metrics, validation: Metrics?, seconds: Double) {
        loss.append(training.loss)
        categoricalAccuracy.append(training.accuracy)
        if let validation {
            valLoss.append(validation.loss)
            valCategoricalAccuracy.append(validation.accuracy)
        }
        epochSeconds.append(seconds)
    }

    private enum CodingKeys: String, CodingKey {
        case loss
        case categoricalAccuracy = "categorical_accuracy"
        case valLoss = "val_loss"
        case valCategoricalAccuracy = "val_categorical_accuracy"
    }

    /// Reads Keras's keys; a `null` is read as NaN, a missing key as no epochs.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func values(_ key: CodingKeys) throws -> [Double] {
            try (container.decodeIfPresent([Double?].self, forKey: key) ?? []).map { $0 ?? .nan }
        }
        loss = try values(.loss)
        categoricalAccuracy = try values(.categoricalAccuracy)
        valLoss = try values(.valLoss)
        valCategoricalAccuracy = try values(.valCategoricalAccuracy)
    }

    /// JSON has no infinity or NaN: such values (a validation loss that overflowed) are written as `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        func finite(_ values: [Double]) -> [Double?] { values.map { $0.isFinite ? $0 : nil } }
        try container.encode(finite(loss), forKey: .loss)
        try container.encode(finite(categoricalAccuracy), forKey: .categoricalAccuracy)
        if !valLoss.isEmpty {
            try container.encode(finite(valLoss), forKey: .valLoss)
            try container.encode(finite(valCategoricalAccuracy), forKey: .valCategoricalAccuracy)
        }
    }

    /// The history as pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
