import Foundation
import XCTest

@testable import RNNKit

/// `StreamingSession`: pieces of every split, and one step at a time, equal the whole sequence's
/// `predict`; Keras's stateful GRU fed in pieces; states, resets and refusals.
final class StreamingSessionTests: XCTestCase {
    /// Whole-sequence outputs of `model` for batch-major `x [B, T, F]`, batch-major as `predict` writes them.
    private func wholePredict<S>(_ model: Sequential<S>, _ x: [S], batch: Int) throws -> [S] {
        try model.predict(Tensor(shape: [batch, model.inputShape.steps, model.inputShape.features], scalars: x)).scalars
    }

    /// Steps `range` of batch-major `x [B, T, F]`, as a `[B, n, F]` tensor.
    private func piece<S>(_ x: [S], batch: Int, steps: Int, features: Int, _ range: Range<Int>) -> Tensor<S> {
        var values: [S] = []
        for b in 0..<batch { values += x[(b * steps + range.lowerBound) * features..<(b * steps + range.upperBound) * features] }
        return Tensor(shape: [batch, range.count, features], scalars: values)
    }

    /// Feeds `x` to a fresh session in pieces of the given lengths; returns the outputs
    /// batch-major as the whole sequence's (`[B, T, O]`, or the last call's `[B, O]`).
    private func streamed<S>(_ session: StreamingSession<S>, _ x: [S], steps: Int, features: Int, pieces: [Int]) throws -> [S] {
        session.reset()
        let batch = session.batchSize, width = session.outputFeatures
        var result = [S](repeating: 0, count: batch * width * (session.outputsSequence ? steps : 1))
        var start = 0
        for n in pieces {
            let output = try session.predict(piece(x, batch: batch, steps: steps, features: features, start..<(start + n)))
            if session.outputsSequence {
                for b in 0..<batch {
                    for t in 0..<n {
                        for o in 0..<width { result[(b * steps + start + t) * width + o] = output.scalars[(b * n + t) * width + o] }
                    }
                }
            } else {
                result = output.scalars
            }
            start += n
        }
        return result
    }

    /// Every split of `steps` into pieces (its 2^(steps−1) compositions).
    private func everySplit(_ steps: Int) -> [[Int]] {
        (0..<(1 << (steps - 1))).map { cuts in
            var pieces: [Int] = [], length = 1
            for i in 0..<(steps - 1) {
                if cuts & (1 << i) != 0 {
                    pieces.append(length)
                    length = 1
                } else {
                    length += 1
                }
            }
            return pieces + [length]
        }
    }

    private func maxDifference<S: BLASScalar>(_ a: [S], _ b: [S]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
    }

    private func everyCell() -> [(String, () -> RecurrentLayer<Float>)] {
        [
            ("SimpleRNN", { SimpleRNN(units: 7, returnSequences: true) }),
            ("SimpleRNN relu", { SimpleRNN(units: 5, returnSequences: true, activation: .relu) }),
            ("LSTM", { LSTM(units: 6, returnSequences: true) }),
            ("LSTM 80", { LSTM(units: 80, returnSequences: true) }),
            ("GRU", { GRU(units: 6, returnSequences: true) }),
            ("GRU 72", { GRU(units: 72, returnSequences: true) }),
            ("GRU reset-before", { GRU(units: 5, resetAfter: false, returnSequences: true) }),
            ("LSTM no bias", { LSTM(units: 4, returnSequences: true, useBias: false) }),
        ]
    }

    /// For every cell, stacked under a second layer and a per-step Dense: every split of a
    /// 9-step sequence, and one step at a time, equal `predict` on the whole (1e-6 in Float).
    func testEverySplitEqualsTheWholeSequenceForEveryCell() throws {
        let steps = 9, features = 3, batch = 2
        for (label, makeCell) in everyCell() {
            let model = try Sequential<Float>(
                inputShape: .sequence(steps: steps, features: features),
                layers: [makeCell(), GRU(units: 4, returnSequences: true), TimeDistributed(Dense(units: 3, activation: .softmax))],
                seed: 11)
            let x: [Float] = randomValues(batch * steps * features, seed: 5)
            let whole = try wholePredict(model, x, batch: batch)
            let session = try StreamingSession(model: model, batchSize: batch, longestPass: 4)
            var worst = 0.0
            for split in everySplit(steps) {
                worst = max(worst, maxDifference(try streamed(session, x, steps: steps, features: features, pieces: split), whole))
            }
            XCTAssertLessThan(worst, 1e-6, "\(label): the largest difference over \(1 << (steps - 1)) splits")
            let oneByOne = try streamed(session, x, steps: steps, features: features, pieces: Array(repeating: 1, count: steps))
            XCTAssertLessThan(maxDifference(oneByOne, whole), 1e-6, label)
        }
    }

    /// The Streaming guide's example, kept working: a GRU trained on 64-step pieces of a recorded
    /// signal to predict the next reading, then run on a live stream one reading at a time,
    /// predicts far better than repeating the last reading.
    func testTheStreamingGuidesSensorExample() throws {
        func sensor(_ t: Int) -> Float { Float(sin(Double(t) * 0.21) + 0.5 * sin(Double(t) * 0.047)) }
        let recording = (0..<2048).map(sensor)

        // — as in the Streaming guide —
        // Pieces of 64 readings, each step's target the reading after it.
        let starts = Array(stride(from: 0, to: recording.count - 65, by: 16))
        let pieces = starts.map { start in (0..<64).map { [recording[start + $0]] } }
        let nextReadings = starts.map { start in (1...64).map { [recording[start + $0]] } }
        let data = try RaggedDataset(sequences: pieces, stepTargets: nextReadings)

        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 64, features: 1),
            layers: [
                GRU(units: 16, returnSequences: true),
                Dense(units: 1),
            ])
        try model.compile(optimizer: Adam(learningRate: 0.01), loss: MeanSquaredError())
        _ = try model.fit(data, options: FitOptions(epochs: 30, batchSize: 16))

        // Live: one reading at a time, the GRU's state carried from call to call.
        let session = try StreamingSession(model: model)
        var prediction: [Float] = [0]
        var predictions: [Float] = []
        for t in 5000..<5300 { // readings the model never saw
            try [sensor(t)].withUnsafeBufferPointer { reading in
                try prediction.withUnsafeMutableBufferPointer { try session.predict(reading, steps: 1, into: $0) }
            }
            predictions.append(prediction[0]) // the expected reading at t + 1
        }
        // — end —

        // After a warm-up of 50 readings, against repeating the last reading.
        let steps = 50..<299
        let streamed = steps.map { pow(Double(predictions[$0] - sensor(5000 + $0 + 1)), 2) }.reduce(0, +) / Double(steps.count)
        let naive = steps.map { pow(Double(sensor(5000 + $0) - sensor(5000 + $0 + 1)), 2) }.reduce(0, +) / Double(steps.count)
        XCTAssertLessThan(streamed, naive / 4, "streamed MSE \(streamed), repeating the last reading \(naive)")
    }

    /// A large LSTM and GRU run packed (their weights packed once); after the model's weights
    /// change, `reloadWeights()` makes the stream compute with the new ones.
    func testPackedLayersFollowTheWeightsAfterAReload() throws {
        let steps = 6, features = 5
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [LSTM(units: 80, returnSequences: true), GRU(units: 72), Dense(units: 3)], seed: 2)
        let session = try StreamingSession(model: model)
        if SmallGEMM.instructionSet != "portable" { XCTAssertEqual(session.packedLayerNames, ["lstm", "gru"]) }
        let x: [Float] = randomValues(steps * features, seed: 4)
        var weights = model.weights
        for (name, tensor) in weights {
            weights[name] = Tensor(shape: tensor.shape, scalars: randomValues(tensor.scalars.count, seed: 7, scale: 0.3))
        }
        try model.setWeights(weights)
        try session.reloadWeights()
        for split in [[6], [1, 1, 1, 1, 1, 1], [2, 4]] {
            XCTAssertLessThan(
                maxDifference(
                    try streamed(session, x, steps: steps, features: features, pieces: split), try wholePredict(model, x, batch: 1)),
                1e-6, "\(split)")
        }
    }

    /// A many-to-one classifier (the notebook's Model A): after the last piece the session gives
    /// `predict`'s class probabilities, whatever the split.
    func testAManyToOneModelGivesPredictAfterTheLastPiece() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)], seed: 3)
        let x: [Float] = randomValues(28 * 28, seed: 9)
        let whole = try wholePredict(model, x, batch: 1)
        let session = try StreamingSession(model: model)
        XCTAssertFalse(session.outputsSequence)
        for split in [[28], [1, 27], [5, 7, 16], Array(repeating: 1, count: 28), [13, 13, 1, 1]] {
            XCTAssertLessThan(maxDifference(try streamed(session, x, steps: 28, features: 28, pieces: split), whole), 1e-6, "\(split)")
        }
    }

    /// Keras's stateful GRU (`keras_stateful_gru_streaming`): the sequence fed in three pieces
    /// (steps 0–3, 4, 5–9) gives Keras's outputs of each piece and of the whole; after a reset
    /// the first piece again gives its first outputs.
    func testKerasStatefulGRUFedInPiecesInDouble() throws {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: "keras_stateful_gru_streaming", withExtension: "json", subdirectory: "Fixtures"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let weights = try XCTUnwrap(root["weights"] as? [String: Any])
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 10, features: 3), layers: [GRU(units: 5, returnSequences: true), Dense(units: 2)])
        let shapes = [
            "gru/kernel": [3, 15], "gru/recurrent_kernel": [5, 15], "gru/bias": [2, 15], "dense/kernel": [5, 2], "dense/bias": [2],
        ]
        var tensors: [String: Tensor<Double>] = [:]
        for (name, shape) in shapes { tensors[name] = Tensor(shape: shape, scalars: KerasFixture.flatten(weights[name]!)) }
        try model.setWeights(tensors)
        let x = KerasFixture.flatten(root["input"]!)
        let session = try StreamingSession(model: model, batchSize: 4)
        let pieces = try XCTUnwrap(root["piece_steps"] as? [[Int]])
        let expected = try XCTUnwrap(root["piece_outputs"] as? [Any])
        var worst = 0.0
        for (range, keras) in zip(pieces, expected) {
            let output = try session.predict(piece(x, batch: 4, steps: 10, features: 3, range[0]..<range[1]))
            XCTAssertEqual(output.shape, [4, range[1] - range[0], 2])
            worst = max(worst, maxDifference(output.scalars, KerasFixture.flatten(keras)))
        }
        XCTAssertLessThan(worst, 1e-13, "the pieces against Keras's")
        XCTAssertLessThan(maxDifference(try wholePredict(model, x, batch: 4), KerasFixture.flatten(root["whole_output"]!)), 1e-13)
        session.reset()
        let again = try session.predict(piece(x, batch: 4, steps: 10, features: 3, 0..<4))
        XCTAssertLessThan(maxDifference(again.scalars, KerasFixture.flatten(root["after_reset_output"]!)), 1e-13)
    }

    /// Masked steps (a Masking layer's value, and ids 0 under `maskZero`, at both ends and inside)
    /// keep the state in a stream as in a whole sequence, wherever the pieces are cut.
    func testMaskedStepsKeepTheStateAcrossPieces() throws {
        let steps = 8
        let masked = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: 2),
            layers: [Masking(maskValue: -1), LSTM(units: 5, returnSequences: true), Dense(units: 2)], seed: 2)
        var x: [Float] = randomValues(steps * 2, seed: 1)
        for t in [3, 4, 7] { x[t * 2] = -1; x[t * 2 + 1] = -1 }
        let session = try StreamingSession(model: masked)
        let whole = try wholePredict(masked, x, batch: 1)
        // Pieces that start at an unmasked step: a masked first step of a call outputs zeros (Keras's rule).
        for split in [[8], [3, 5], [1, 2, 5], [2, 1, 5], [1, 1, 1, 5]] {
            XCTAssertLessThan(maxDifference(try streamed(session, x, steps: steps, features: 2, pieces: split), whole), 1e-6, "\(split)")
        }
        let tokens = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: 1),
            layers: [Embedding(inputDim: 9, outputDim: 3, maskZero: true), GRU(units: 4)], seed: 4)
        let ids: [Float] = [3, 1, 0, 0, 8, 2, 0, 5]
        let tokenSession = try StreamingSession(model: tokens)
        let last = try wholePredict(tokens, ids, batch: 1)
        for split in [[8], [2, 6], [5, 3], [1, 1, 2, 4]] {
            XCTAssertLessThan(
                maxDifference(try streamed(tokenSession, ids, steps: steps, features: 1, pieces: split), last), 1e-6, "\(split)")
        }
        tokenSession.reset()
        XCTAssertLessThan(maxDifference(try tokenSession.predict(ids: [[3, 1, 0, 0, 8, 2, 0, 5]]).scalars, last), 1e-6)
    }

    /// Three streams masked at different steps, in front of a layer large enough to run packed
    /// were it not masked, and a vector output: every split equals `predict` at batch 3.
    func testStreamsMaskedDifferentlyInOneBatch() throws {
        let steps = 7, features = 2, batch = 3
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: features),
            layers: [Masking(maskValue: 0), LSTM(units: 80, returnSequences: true), GRU(units: 72), Dense(units: 4)], seed: 6)
        var x: [Float] = randomValues(batch * steps * features, seed: 8)
        for (b, t) in [(0, 2), (1, 0), (1, 1), (2, 6), (0, 5)] { for f in 0..<features { x[(b * steps + t) * features + f] = 0 } }
        let session = try StreamingSession(model: model, batchSize: batch)
        // The GRU after a sequence-returning masked LSTM is reached by the mask too: neither packs.
        XCTAssertEqual(session.packedLayerNames, [])
        let whole = try wholePredict(model, x, batch: batch)
        for split in [[7], [1, 6], [2, 2, 3], Array(repeating: 1, count: 7), [3, 4]] {
            XCTAssertLessThan(
                maxDifference(try streamed(session, x, steps: steps, features: features, pieces: split), whole), 1e-6, "\(split)")
        }
    }

    /// Making a session leaves the model's training as it was: its dropout masks' streams (which
    /// seed the workers' replicas) are not advanced by the session's copies.
    func testMakingASessionLeavesTrainingUnchanged() throws {
        func trained(makingASession: Bool) throws -> [String: Tensor<Float>] {
            let model = try Sequential<Float>(
                inputShape: .sequence(steps: 5, features: 3),
                layers: [
                    LSTM(units: 6, dropout: 0.3, recurrentDropout: 0.2, seed: 4), Dropout(rate: 0.4, seed: 2),
                    Dense(units: 2, activation: .softmax),
                ],
                seed: 1)
            try model.compile(optimizer: Adam(), loss: SparseCategoricalCrossentropy())
            if makingASession { _ = try StreamingSession(model: model, longestPass: 4) }
            model.workers = 2
            let batch = randomBatch(steps: 5, batch: 8, features: 3, classes: 2, seed: 3, as: Float.self)
            _ = try model.trainStep(x: batch.x, labels: batch.labels, batchSize: 8)
            return model.weights
        }
        XCTAssertEqual(try trained(makingASession: true), try trained(makingASession: false))
    }

    /// States read, set and reset per stream; the other streams keep theirs.
    func testStatesAreReadSetAndResetPerStream() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 2), layers: [LSTM(units: 3, returnSequences: true), Dense(units: 1)], seed: 8)
        let session = try StreamingSession(model: model, batchSize: 2)
        XCTAssertEqual(session.recurrentLayerNames, ["lstm"])
        let x = Tensor<Float>(shape: [2, 3, 2], scalars: randomValues(12, seed: 3))
        _ = try session.predict(x)
        let (h, c) = try session.state(of: "lstm")
        XCTAssertEqual(h.shape, [2, 3])
        XCTAssertNotNil(c)
        XCTAssertTrue(h.scalars.contains { $0 != 0 })
        try session.reset(rows: [1])
        let (h1, c1) = try session.state(of: "lstm")
        XCTAssertEqual(Array(h1.scalars[0..<3]), Array(h.scalars[0..<3]))
        XCTAssertEqual(Array(h1.scalars[3..<6]), [0, 0, 0])
        XCTAssertEqual(Array(c1!.scalars[3..<6]), [0, 0, 0])
        // Setting a state back continues the stream as if it had never been reset.
        try session.setState(of: "lstm", h: h, c: c)
        let next = try session.predict(Tensor(shape: [2, 2], scalars: [0.1, 0.2, 0.3, 0.4]))
        try session.setState(of: "lstm", h: h, c: c)
        XCTAssertEqual(try session.predict(Tensor(shape: [2, 1, 2], scalars: [0.1, 0.2, 0.3, 0.4])).scalars, next.scalars)
        XCTAssertThrowsError(try session.reset(rows: [2])) { error in
            XCTAssertEqual("\(error)", "stream 2 is outside the session's batch 0..<2")
        }
        XCTAssertThrowsError(try session.state(of: "gru")) { error in
            XCTAssertEqual("\(error)", "no recurrent layer gru in the session; it has [\"lstm\"]")
        }
        XCTAssertThrowsError(try session.setState(of: "lstm", h: Tensor(shape: [1, 3]))) { error in
            XCTAssertEqual("\(error)", "lstm's state is [2, 3], not [1, 3]")
        }
        // A tensor whose values were changed apart from its shape is refused, not copied past the state.
        var long = Tensor<Float>(shape: [2, 3])
        long.scalars += [Float](repeating: 1, count: 1000)
        XCTAssertThrowsError(try session.setState(of: "lstm", h: long)) { error in
            XCTAssertEqual("\(error)", "lstm's state takes 6 values; the tensor's shape and values differ")
        }
    }

    /// A wrong batch or feature count, a bad id and the layers a stream cannot run are refused by name.
    func testWhatAStreamCannotTakeIsRefusedByName() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 5, features: 3), layers: [GRU(units: 4), Dense(units: 2)])
        let session = try StreamingSession(model: model, batchSize: 2)
        XCTAssertThrowsError(try session.predict(Tensor(shape: [1, 3]))) { error in
            XCTAssertEqual("\(error)", "the session carries a batch of 2 streams; the input has 1")
        }
        XCTAssertThrowsError(try session.predict(Tensor(shape: [2, 4, 2]))) { error in
            XCTAssertEqual("\(error)", "the model reads 3 features a step; the input has 2")
        }
        var output = [Float](repeating: 0, count: 4)
        XCTAssertThrowsError(
            try [Float](repeating: 0, count: 5).withUnsafeBufferPointer { x in
                try output.withUnsafeMutableBufferPointer { try session.predict(x, steps: 1, into: $0) }
            }
        ) { error in XCTAssertEqual("\(error)", "the session takes 2 streams × 1 step × 3 features = 6 values, not 5") }
        XCTAssertThrowsError(try StreamingSession(model: model, batchSize: 0))
        XCTAssertThrowsError(try StreamingSession(model: model, batchSize: Int.max / 2)) { error in
            XCTAssertEqual("\(error)", "a streaming session needs a batch size of 1 to 65536 streams, not \(Int.max / 2)")
        }
        XCTAssertThrowsError(try StreamingSession(model: model, longestPass: 3))
        XCTAssertThrowsError(
            try [Float](repeating: 0, count: 6).withUnsafeBufferPointer { x in
                try output.withUnsafeMutableBufferPointer {
                    try session.predict(x, steps: 1, into: UnsafeMutableBufferPointer(rebasing: $0[0..<3]))
                }
            }
        ) { error in XCTAssertEqual("\(error)", "the session writes 4 outputs for 1 step, into room for 3") }
        XCTAssertThrowsError(
            try [Float]().withUnsafeBufferPointer { x in
                try output.withUnsafeMutableBufferPointer { try session.predict(x, steps: 0, into: $0) }
            }
        ) { error in XCTAssertEqual("\(error)", "a streaming session feeds 1 step or more, not 0") }

        let tokens = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 1), layers: [Embedding(inputDim: 5, outputDim: 2), LSTM(units: 3)])
        let tokenSession = try StreamingSession(model: tokens)
        XCTAssertThrowsError(try tokenSession.predict(ids: [[1, 7]])) { error in
            XCTAssertEqual(error as? ModelError, .idOutOfRange(layer: "embedding", id: 7, sample: 0, step: 1, inputDim: 5))
        }
        XCTAssertEqual(try tokenSession.state(of: "lstm").h.scalars, [0, 0, 0], "a refused call changes no state")
        XCTAssertThrowsError(try session.predict(ids: [[1], [2]])) { error in
            XCTAssertEqual("\(error)", "predict(ids:) needs a model that starts with an Embedding")
        }

        let bidirectional = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 2), layers: [Bidirectional(LSTM(units: 3)), Dense(units: 1)])
        XCTAssertThrowsError(try StreamingSession(model: bidirectional)) { error in
            XCTAssertEqual(
                "\(error)", "bidirectional is Bidirectional: its backward half needs the whole sequence, which a stream does not have")
        }
        let backwards = try Sequential<Float>(
            inputShape: .sequence(steps: 4, features: 2), layers: [GRU(units: 3, goBackwards: true)])
        XCTAssertThrowsError(try StreamingSession(model: backwards)) { error in
            XCTAssertTrue("\(error)".hasPrefix("gru reads its sequence backwards (goBackwards)"), "\(error)")
        }
    }
}
