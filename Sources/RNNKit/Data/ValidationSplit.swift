/// Keras's `validation_split`: the **last** fraction of the samples, taken before any shuffling,
/// validates; the rest trains.
public struct ValidationSplit: Equatable, Sendable {
    /// The samples that train: `0..<trainCount`.
    public let training: Range<Int>
    /// The samples that validate: `trainCount..<count` (empty for a split of 0).
    public let validation: Range<Int>

    /// Splits `count` samples as Keras does: `trainCount = ⌊count · (1 − fraction)⌋`.
    /// - Throws: `ModelError.invalidConfiguration` when the fraction is outside [0, 1) or leaves
    ///   either part empty.
    public init(count: Int, fraction: Double) throws {
        guard fraction >= 0, fraction < 1, fraction.isFinite else {
            throw ModelError.invalidConfiguration("validation split must be in [0, 1), got \(fraction)")
        }
        let trainCount = Int((Double(count) * (1 - fraction)).rounded(.down))
        guard trainCount > 0 else {
            throw ModelError.invalidConfiguration("validation split \(fraction) of \(count) samples leaves none to train on")
        }
        guard fraction == 0 || trainCount < count else {
            throw ModelError.invalidConfiguration("validation split \(fraction) of \(count) samples leaves none to validate on")
        }
        training = 0..<trainCount
        validation = trainCount..<count
    }
}
