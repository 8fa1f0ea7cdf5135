/// Sliding windows over a time series, as Keras's
/// `keras.utils.timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride,
/// sampling_rate, start_index, end_index)` makes them (without its batching and shuffling, which
/// `fit` does): a regression dataset of windows `sequenceLength` steps long.
///
/// With `start = startIndex ?? 0` and `end = endIndex ?? data.count`, there are
/// `n = end − start − (sequenceLength − 1) · samplingRate` candidate starts (at most
/// `targets.count`), and a window starts at every `p` in `stride(from: 0, to: n, by: sequenceStride)`.
/// Window `p` holds the rows `data[start + p + k · samplingRate]` for `k` in `0..<sequenceLength`,
/// and its target is `targets[start + p]` (Keras reads the targets from the same `start`, so pass
/// targets shifted as Keras's examples do: to predict the step after each window,
/// `targets = data[sequenceLength...]`). Every window has the full length, so no step is masked.
///
/// - Parameters:
///   - data: one row of features per time step, every row as wide.
///   - targets: one target vector per time step (as wide as each other).
///   - sequenceLength: the steps in every window (Keras's `sequence_length`).
///   - sequenceStride: how far each window's start lies after the previous one (default 1).
///   - samplingRate: the distance in rows between a window's consecutive steps (default 1).
///   - startIndex: the first row windows may start at (default 0).
///   - endIndex: the row windows must end before (default: the end of `data`).
/// - Throws: `ModelError.invalidConfiguration` with Keras's checks: a `startIndex` outside
///   `0..<data.count`, an `endIndex` not in `1..<data.count` or not above `startIndex`, a
///   `samplingRate` or `sequenceStride` not in `1..<data.count`; and where Keras would fail later
///   or yield nothing: a `sequenceLength` below 1, no window fitting, or a window whose target
///   lies beyond `targets` or `endIndex`.
public func timeseriesDataset(
    data: [[Float]], targets: [[Float]], sequenceLength: Int, sequenceStride: Int = 1, samplingRate: Int = 1,
    startIndex: Int? = nil, endIndex: Int? = nil
) throws -> RaggedDataset {
    func fail(_ message: String) -> ModelError { .invalidConfiguration(message) }
    if let startIndex, startIndex != 0 {
        guard startIndex >= 0 else { throw fail("startIndex must be 0 or greater, got \(startIndex)") }
        guard startIndex < data.count else {
            throw fail("startIndex must be lower than the length of the data, got \(startIndex) for data of length \(data.count)")
        }
    }
    if let endIndex, endIndex != 0 {
        if let startIndex, startIndex != 0, endIndex <= startIndex {
            throw fail("endIndex must be higher than startIndex, got startIndex \(startIndex) and endIndex \(endIndex)")
        }
        guard endIndex < data.count else {
            throw fail("endIndex must be lower than the length of the data, got \(endIndex) for data of length \(data.count)")
        }
        guard endIndex > 0 else { throw fail("endIndex must be higher than 0, got \(endIndex)") }
    }
    guard samplingRate > 0, samplingRate < data.count else {
        throw fail("samplingRate must be in 1..<\(data.count) (the length of the data), got \(samplingRate)")
    }
    guard sequenceStride > 0, sequenceStride < data.count else {
        throw fail("sequenceStride must be in 1..<\(data.count) (the length of the data), got \(sequenceStride)")
    }
    guard sequenceLength >= 1 else { throw fail("sequenceLength must be at least 1, got \(sequenceLength)") }
    let start = startIndex ?? 0, end = endIndex ?? data.count
    let candidates = min(end - start - (sequenceLength - 1) * samplingRate, targets.count)
    let starts = Array(stride(from: 0, to: candidates, by: sequenceStride))
    guard !starts.isEmpty else {
        throw fail(
            "no window of \(sequenceLength) steps sampled every \(samplingRate) fits in rows \(start)..<\(end) with \(targets.count) targets"
        )
    }
    let last = start + starts.last!
    guard last < min(end, targets.count) else {
        throw fail("the last window's target, row \(last), is beyond the \(min(end, targets.count)) target rows available")
    }
    let windows = starts.map { p in (0..<sequenceLength).map { k in data[start + p + k * samplingRate] } }
    return try RaggedDataset(sequences: windows, targets: starts.map { targets[start + $0] }, steps: sequenceLength)
}
