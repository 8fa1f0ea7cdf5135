import Foundation
import XCTest

@testable import RNNKit
@testable import RNNKitKeras

/// The stateful layers' edge cases, first written as probes by an outside review (each failed
/// before its fix): refused steps leave the states, one process only, lengths and masks,
/// several workers, the buffers of short pieces, hostile configs, open steps written back.
final class StatefulEdgeCaseTests: XCTestCase {
    /// A reducer that pretends to be one process of several: it sums this process's shards only
    /// (what the other processes would add is left out), enough to drive the model's MPI paths.
    final class PretendProcessReducer: GradientReducer {
        typealias Scalar = Double
        let processCount: Int, processIndex: Int
        init(processCount: Int, processIndex: Int) {
            self.processCount = processCount
            self.processIndex = processIndex
        }
        func reduce(gradients: [UnsafeMutablePointer<Double>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures {
            InProcessReducer<Double>.sumShards(gradients: gradients, figures: figures, shards: shards, count: count)
        }
    }

    private func classifier(batch: Int, steps: Int = 3, seed: UInt64 = 1) throws -> Sequential<Double> {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: steps, features: 2),
            layers: [LSTM(units: 4, stateful: true), Dense(units: 2, activation: .softmax)], batchSize: batch, seed: seed)
        try model.compile(optimizer: SGD(learningRate: 0.1))
        return model
    }

    private func values(_ p: [Parameter<Double>]) -> [Double] {
        p.flatMap { Array(UnsafeBufferPointer(start: $0.value.pointer, count: $0.count)) }
    }

    /// A step refused for a loss or gradient that is not finite leaves the weights and the
    /// carried states as they were, so the batch can be retried.
    func testRefusedStepLeavesTheCarriedStateAsItWas() throws {
        let (refused, fresh) = (try classifier(batch: 2), try classifier(batch: 2))
        var x = [Double](repeating: 0.3, count: 3 * 2 * 2)
        x[0] = .nan
        let labels: [Int32] = [0, 1]
        XCTAssertThrowsError(try refused.trainStep(x: x, labels: labels, batchSize: 2)) { error in
            XCTAssertTrue("\(error)".contains("NaN or infinite"), "\(error)")
        }
        XCTAssertEqual(values(refused.parameters), values(fresh.parameters), "the weights are unchanged, as documented")
        let probe = Tensor<Double>(shape: [2, 3, 2], repeating: 0.1)
        let (after, expected) = (try refused.predict(probe).scalars, try fresh.predict(probe).scalars)
        XCTAssertEqual(after, expected, "a refused step moved the carried state (NaN: \(after.contains { $0.isNaN }))")
    }

    /// A raw batch refused for a label outside the classes leaves the states too.
    func testBatchRefusedForItsLabelsLeavesTheCarriedStateAsItWas() throws {
        let (refused, fresh) = (try classifier(batch: 2), try classifier(batch: 2))
        // A label out of range given through the raw-batch path.
        let x = [Double](repeating: 0.7, count: 3 * 2 * 2)
        let labels: [Int32] = [0, 7]
        XCTAssertThrowsError(try refused.trainStep(x: x, labels: labels, batchSize: 2))
        let probe = Tensor<Double>(shape: [2, 3, 2], repeating: 0.1)
        XCTAssertEqual(try refused.predict(probe).scalars, try fresh.predict(probe).scalars, "a refused batch moved the carried state")
    }

    /// A stateful model refuses to run across processes (a rank would carry only its rows, and
    /// one with no samples none): here a model of batch 1 on 2 processes, before any pass.
    func testAStatefulModelRefusesSeveralProcesses() throws {
        let model = try classifier(batch: 1)
        model.reducer = PretendProcessReducer(processCount: 2, processIndex: 1)
        let x = [Double](repeating: 0.3, count: 3 * 2)
        let labels: [Int32] = [1]
        XCTAssertThrowsError(try model.trainStep(x: x, labels: labels, batchSize: 1)) { error in
            XCTAssertTrue("\(error)".contains("one process"), "\(error)")
        }
    }

    /// `fit` across processes is refused before any step (the weights unchanged).
    func testFitWithValidationAcrossProcessesIsRefusedBeforeTraining() throws {
        let model = try classifier(batch: 2)
        model.reducer = PretendProcessReducer(processCount: 2, processIndex: 0)
        let before = values(model.parameters)
        let inputs = Tensor<Double>(shape: [8, 3, 2], scalars: (0..<48).map { Double($0 % 7) / 7 })
        let data = try TensorDataset(inputs: inputs, labels: [0, 1, 1, 0, 0, 1, 1, 0], classCount: 2)
        XCTAssertThrowsError(
            try model.fit(data, options: FitOptions(epochs: 1, batchSize: 2, validationSplit: 0.5, shuffle: false))
        ) { error in XCTAssertTrue("\(error)".contains("one process"), "\(error)") }
        XCTAssertEqual(values(model.parameters), before, "fit trained an epoch before refusing")
    }

    /// A config whose build_input_shape leaves the steps open and whose InputLayer fixes them:
    /// the first shape is kept whole, so `steps:` builds it.
    func testConflictingInputShapesDoNotDropTheRequestedSteps() throws {
        let config = Data(
            """
            {"class_name": "Sequential", "config": {"name": "s", "build_input_shape": [2, null, 2], "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [2, 10, 2], "name": "in"}},
              {"class_name": "GRU", "config": {"name": "gru", "units": 3, "stateful": true}}]}}
            """.utf8)
        let loaded = try Keras.buildModel(config: config, file: "c", as: Float.self, steps: 6)
        XCTAssertTrue(
            [6, 10].contains(loaded.model.inputShape.steps),
            "built for \(loaded.model.inputShape) although steps: 6 was given and the InputLayer says 10; notes \(loaded.notes)")
    }

    /// The reverse: build_input_shape fixes 10 steps, the InputLayer leaves them open; 10 is kept.
    func testFixedBuildInputShapeIsNotReplacedByAnOpenInputLayer() throws {
        let config = Data(
            """
            {"class_name": "Sequential", "config": {"name": "s", "build_input_shape": [2, 10, 2], "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [2, null, 2], "name": "in"}},
              {"class_name": "GRU", "config": {"name": "gru", "units": 3, "stateful": true}}]}}
            """.utf8)
        let loaded = try Keras.buildModel(config: config, file: "c", as: Float.self)
        XCTAssertEqual(loaded.model.inputShape.steps, 10, "notes \(loaded.notes)")
    }

    /// A batch whose sample has 2 real steps of 3 carries the state after step 2 into the next
    /// batch, as the same model fed the 2 real steps as a piece.
    func testLengthsCarryTheLastRealStepsState() throws {
        func model() throws -> Sequential<Double> {
            try Sequential<Double>(
                inputShape: .sequence(steps: 3, features: 2),
                layers: [GRU(units: 3, returnSequences: true, stateful: true)], batchSize: 1, seed: 2)
        }
        let padded = try model(), reference = try model()
        let x: [Double] = [0.1, 0.2, 0.3, -0.4, 9, 9] // time-major [3, 1, 2]; step 2 is padding
        var first = [Double](repeating: 0, count: 9)
        let lengths: [Int32] = [2]
        padded.predict(x: x, lengths: lengths, batchSize: 1, into: &first)
        _ = try reference.predict(Tensor(shape: [1, 2, 2], scalars: Array(x[0..<4]))) // a session piece of the 2 real steps
        let carried = { (m: Sequential<Double>) in
            Array(UnsafeBufferPointer(start: (m.layers[0] as! RecurrentLayer<Double>).carriedState!.h.pointer, count: 3))
        }
        XCTAssertLessThan(zip(carried(padded), carried(reference)).map { abs($0 - $1) }.max()!, 1e-12)
    }

    /// A pass with per-sample lengths sets the recurrent layers' mask; the next pass without
    /// lengths (no Masking layer) must not be masked with the old lengths.
    func testABatchWithLengthsDoesNotMaskTheNextBatch() throws {
        func model() throws -> Sequential<Double> {
            try Sequential<Double>(inputShape: .sequence(steps: 3, features: 2), layers: [GRU(units: 3, returnSequences: true)], seed: 2)
        }
        let (used, fresh) = (try model(), try model())
        let x: [Double] = [0.1, 0.2, 0.3, -0.4, 9, 9]
        var output = [Double](repeating: 0, count: 9)
        let lengths: [Int32] = [2]
        used.predict(x: x, lengths: lengths, batchSize: 1, into: &output)
        let next = Tensor<Double>(shape: [1, 3, 2], scalars: [0.5, 0.5, -0.2, 0.1, 0.0, 0.3])
        XCTAssertEqual(try used.predict(next).scalars, try fresh.predict(next).scalars)
    }

    /// `fit` with 2 or 3 workers shards each batch, each shard starting from its rows of the
    /// carried state: the weights are 1 worker's (to rounding).
    func testFitWithTwoWorkersMatchesOne() throws {
        let samples = 12
        let inputs = Tensor<Double>(shape: [samples, 3, 2], scalars: randomValues(samples * 6, seed: 21, as: Double.self))
        let data = try TensorDataset(inputs: inputs, labels: (0..<samples).map { $0 % 2 }, classCount: 2)
        var trained: [[Double]] = []
        for workers in [1, 2, 3] {
            let model = try classifier(batch: 3)
            model.workers = workers
            try model.fit(data, options: FitOptions(epochs: 2, batchSize: 3, shuffle: false))
            trained.append(values(model.parameters))
        }
        for other in trained.dropFirst() { XCTAssertLessThan(zip(trained[0], other).map { abs($0 - $1) }.max()!, 1e-12) }
    }

    /// A piece of another length than the model's steps builds passes only as long as it needs
    /// (the session's buffers grow with its longest pass): a 2-step piece passes of up to 2
    /// steps, a 5-step one up to 8, a long one up to 32 (run as several), each continuing the
    /// states the batches carry.
    func testAShortPieceBuildsOnlyThePassesItNeeds() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 1, features: 8),
            layers: [LSTM(units: 64, returnSequences: true, stateful: true), TimeDistributed(Dense(units: 8))], batchSize: 4)
        _ = try model.predict(Tensor<Float>(shape: [4, 1, 8], repeating: 0.1))
        XCTAssertNil(model.piecesSession, "a batch of the model's own steps needs no session")
        for (length, longest) in [(2, 2), (1, 2), (5, 8), (3, 8), (100, 32)] {
            let output = try model.predict(Tensor<Float>(shape: [4, length, 8], repeating: 0.1))
            XCTAssertEqual(output.shape, [4, length, 8])
            XCTAssertEqual(model.piecesSession?.longestPass, longest, "after a piece of \(length)")
        }
    }

    /// A config whose stateful layers' states would take more than the reader allows is refused
    /// before anything is built: 256 stateful SimpleRNN(64) at batch 65536 (8 MiB of weights,
    /// 12 GiB of states).
    func testAStatefulConfigCannotAskForUnboundedStateMemory() throws {
        let layers = (0..<256).map { i in
            "{\"class_name\": \"SimpleRNN\", \"config\": {\"name\": \"r\(i)\", \"units\": 64, \"return_sequences\": true, \"stateful\": true}}"
        }
        let json = """
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [65536, null, 1], "name": "in"}}, \(layers.joined(separator: ", "))]}}
            """
        XCTAssertThrowsError(try KerasConfig.parse(Data(json.utf8), file: "c")) { error in
            XCTAssertTrue("\(error)".contains("its stateful layers' states at batch 65536 would take"), "\(error)")
        }
    }

    /// A stateful model is written with None steps, as Keras writes one (its predict takes
    /// pieces of any length), so a file of None steps read and written keeps them open.
    func testOpenStepsSurviveARoundTrip() throws {
        let config = Data(
            """
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
              {"class_name": "InputLayer", "config": {"batch_shape": [2, null, 2], "name": "in"}},
              {"class_name": "GRU", "config": {"name": "gru", "units": 3, "stateful": true}}]}}
            """.utf8)
        let model = try Keras.buildModel(config: config, file: "c", as: Float.self).model
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Keras.config(of: model)) as? [String: Any])
        let layers = try XCTUnwrap((written["config"] as? [String: Any])?["layers"] as? [[String: Any]])
        let shape = try XCTUnwrap((layers[0]["config"] as? [String: Any])?["batch_shape"] as? [Any])
        XCTAssertTrue(shape.count == 3 && shape[1] is NSNull, "written as \(shape)")
    }

    /// A dataset batch refused for its labels (found after the pass) leaves the states too.
    func testDatasetBatchRefusedForItsLabelsLeavesTheCarriedStateAsItWas() throws {
        struct BadLabels: SequenceDataset {
            var count: Int { 2 }
            var sampleShape: FeatureShape { .sequence(steps: 3, features: 2) }
            var classCount: Int { 2 }
            func label(at index: Int) -> Int { 0 }
            func gather<S: BLASScalar>(
                _ indices: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<S>, labels: UnsafeMutablePointer<Int32>
            ) {
                x.update(repeating: S(0.7), count: indices.count * 6)
                for i in 0..<indices.count { labels[i] = indices[i] == 1 ? 7 : 0 }
            }
        }
        let (refused, fresh) = (try classifier(batch: 2), try classifier(batch: 2))
        let indices = [0, 1]
        XCTAssertThrowsError(try indices.withUnsafeBufferPointer { try refused.trainStep(BadLabels(), indices: $0) }) { error in
            XCTAssertTrue("\(error)".lowercased().contains("label"), "\(error)")
        }
        XCTAssertEqual(values(refused.parameters), values(fresh.parameters), "the weights are unchanged, as documented")
        let probe = Tensor<Double>(shape: [2, 3, 2], repeating: 0.1)
        XCTAssertEqual(try refused.predict(probe).scalars, try fresh.predict(probe).scalars, "a refused batch moved the carried state")
    }
}
