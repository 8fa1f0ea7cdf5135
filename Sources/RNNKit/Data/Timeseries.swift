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

/// Lays one long sequence out for a stateful model trained by truncated back-propagation through
/// time: the sequence is cut into `streams` parts of equal length read side by side, each part
/// into consecutive windows of `steps` steps, and the windows are ordered so that sample
/// `k · streams + b` is window `k` of part `b`. Trained with `fit` at `batchSize: streams` and
/// `shuffle: false` (or evaluated in batches of `streams`) by a model of `batchSize: streams`,
/// batch `k` holds window `k` of every part, and each row continues its row of batch `k − 1`:
/// the state runs through each part whole while gradients span one window.
///
/// Each part has `data.count / streams` steps (the last `data.count % streams` steps of the
/// sequence belong to none), of which the whole windows are kept: the last
/// `(data.count / streams) % steps` steps of every part are left out.
///
/// - Parameters:
///   - data: one row of features per step, every row as wide.
///   - stepTargets: one target vector per step (for a model returning sequences), as many as
///     `data`'s rows: to predict the next step, `data[1...]` beside `data[..<(n − 1)]`.
///   - streams: the parts read side by side: the model's batch size, at least 1.
///   - steps: the steps of every window: the model's steps, at least 1.
/// - Returns: `windows · streams` samples of `steps` steps, each with its per-step targets.
/// - Throws: `ModelError.invalidConfiguration` for a count below 1, targets that are not one per
///   row, rows of different widths, or a sequence too short for one window in every part.
public func statefulWindows(data: [[Float]], stepTargets: [[Float]], streams: Int, steps: Int) throws -> RaggedDataset {
    let order = try statefulWindowOrder(count: data.count, targets: stepTargets.count, streams: streams, steps: steps)
    return try RaggedDataset(
        sequences: order.map { Array(data[$0]) }, stepTargets: order.map { Array(stepTargets[$0]) }, steps: steps)
}

/// ``statefulWindows(data:stepTargets:streams:steps:)`` for a sequence of token ids with one class
/// id per step (a language model's next token): `tokens[..<(n − 1)]` beside `tokens[1...]`.
///
/// - Throws: as the other form, and as ``RaggedDataset/init(tokens:stepLabels:classCount:steps:)``
///   for ids or labels outside their ranges.
public func statefulWindows(tokens: [Int], stepLabels: [Int], classCount: Int, streams: Int, steps: Int) throws -> RaggedDataset {
    let order = try statefulWindowOrder(count: tokens.count, targets: stepLabels.count, streams: streams, steps: steps)
    return try RaggedDataset(
        tokens: order.map { Array(tokens[$0]) }, stepLabels: order.map { Array(stepLabels[$0]) }, classCount: classCount,
        steps: steps)
}

/// The rows of every window, sample `k · streams + b` being window `k` of part `b`.
private func statefulWindowOrder(count: Int, targets: Int, streams: Int, steps: Int) throws -> [Range<Int>] {
    guard streams >= 1, steps >= 1 else {
        throw ModelError.invalidConfiguration("streams and steps must be at least 1, got \(streams) and \(steps)")
    }
    guard targets == count else {
        throw ModelError.invalidConfiguration("\(targets) step targets for \(count) steps: give one target per step")
    }
    let part = count / streams, windows = part / steps
    guard windows >= 1 else {
        throw ModelError.invalidConfiguration(
            "\(count) steps make no window of \(steps) steps in each of \(streams) parts (that needs streams × steps steps at least)")
    }
    return (0..<windows).flatMap { k in (0..<streams).map { b in (b * part + k * steps)..<(b * part + (k + 1) * steps) } }
}
