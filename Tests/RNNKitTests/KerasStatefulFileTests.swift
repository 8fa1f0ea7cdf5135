import Foundation
import XCTest

@testable import RNNKit
@testable import RNNKitKeras

/// Keras files with stateful layers: Keras's own (`keras_stateful_gru_streaming.keras`, a GRU
/// with `stateful=True` on an input of batch 4 and None steps) predicts its pieces as Keras did,
/// and RNNKit's stateful models are written and read back with their batch and their flag.
final class KerasStatefulFileTests: XCTestCase {
    private struct Fixture {
        let x: [Double] // [4, 10, 3] batch-major
        let pieces: [Range<Int>]
        let pieceOutputs: [[Double]]
        let whole: [Double]
        let afterReset: [Double]
        let weights: [String: Any]

        init() throws {
            let url = try KerasFileTests.fixtureURL("keras_stateful_gru_streaming", "json")
            let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            x = KerasFixture.flatten(root["input"]!)
            pieces = try XCTUnwrap(root["piece_steps"] as? [[Int]]).map { $0[0]..<$0[1] }
            pieceOutputs = try XCTUnwrap(root["piece_outputs"] as? [Any]).map(KerasFixture.flatten)
            whole = KerasFixture.flatten(root["whole_output"]!)
            afterReset = KerasFixture.flatten(root["after_reset_output"]!)
            weights = try XCTUnwrap(root["weights"] as? [String: Any])
        }

        /// Steps `range` of every sequence, `[4, n, 3]`.
        func piece<S: BLASScalar>(_ range: Range<Int>, as _: S.Type) -> Tensor<S> {
            var values: [S] = []
            for b in 0..<4 { values += x[(b * 10 + range.lowerBound) * 3..<(b * 10 + range.upperBound) * 3].map { S($0) } }
            return Tensor(shape: [4, range.count, 3], scalars: values)
        }
    }

    /// Largest difference relative to the largest Keras value.
    private func error<S: BLASScalar>(_ a: Tensor<S>, _ keras: [Double]) -> Double {
        relativeError(a.scalars.map(Double.init), keras)
    }

    /// The `.keras` file loads stateful at batch 4, and its pieces (steps 0–3, 4, 5–9) give
    /// Keras's outputs, then after `resetStates` the first piece's again: built for 1-step pieces
    /// (the file's None steps) and for 10 steps. The file holds the fixture's weights rounded to
    /// float32, so its own weights agree to float32's rounding; in Double with the fixture's
    /// exact weights, to 1e-13.
    func testKerasStatefulFilePredictsItsPiecesAsKerasDid() throws {
        let fixture = try Fixture()
        try check(Double.self, fixture: fixture, exactWeights: true, tolerance: 1e-13)
        try check(Double.self, fixture: fixture, exactWeights: false, tolerance: 1e-6)
        try check(Float.self, fixture: fixture, exactWeights: false, tolerance: 1e-5)
    }

    private func check<S: BLASScalar>(_: S.Type, fixture: Fixture, exactWeights: Bool, tolerance: Double) throws {
        let url = try KerasFileTests.fixtureURL("keras_stateful_gru_streaming", "keras")
        for steps in [nil, 10] {
            let loaded = try Keras.loadModel(from: url, as: S.self, steps: steps)
            let model = loaded.model
            if exactWeights {
                var tensors: [String: Tensor<S>] = [:]
                for parameter in model.parameters {
                    tensors[parameter.name] = Tensor(
                        shape: parameter.shape, scalars: KerasFixture.flatten(fixture.weights[parameter.name]!).map { S($0) })
                }
                try model.setWeights(tensors)
            }
            XCTAssertEqual(model.batchSize, 4)
            XCTAssertTrue(model.isStateful)
            XCTAssertEqual(model.inputShape, .sequence(steps: steps ?? 1, features: 3))
            XCTAssertEqual(loaded.notes.contains { $0.contains("no fixed number of steps (None)") }, steps == nil, "\(loaded.notes)")
            var worst = 0.0
            for (range, keras) in zip(fixture.pieces, fixture.pieceOutputs) {
                let output = try model.predict(fixture.piece(range, as: S.self))
                XCTAssertEqual(output.shape, [4, range.count, 2])
                worst = max(worst, error(output, keras))
                XCTAssertLessThan(error(output, keras), tolerance, "\(S.self), built for \(steps ?? 1) steps, piece \(range)")
            }
            model.resetStates()
            let again = try model.predict(fixture.piece(fixture.pieces[0], as: S.self))
            worst = max(worst, error(again, fixture.afterReset))
            XCTAssertLessThan(error(again, fixture.afterReset), tolerance, "\(S.self) after resetStates")
            if steps == 10 {
                model.resetStates()
                let whole = error(try model.predict(fixture.piece(0..<10, as: S.self)), fixture.whole)
                worst = max(worst, whole)
                XCTAssertLessThan(whole, tolerance)
            }
            print(
                "keras_stateful_gru_streaming.keras in \(S.self), \(exactWeights ? "the fixture's weights" : "the file's weights"), built for \(steps ?? 1) steps: largest relative error \(worst)"
            )
        }
    }

    /// A stateful model written by RNNKit reads back stateful, with its batch, its weights and so
    /// its outputs (built for its steps again with `steps:`); the config says so as Keras writes it.
    func testStatefulModelsRoundTrip() throws {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 6, features: 2),
            layers: [LSTM(units: 4, returnSequences: true, stateful: true), GRU(units: 3), Dense(units: 2)], batchSize: 5, seed: 3)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Keras.config(of: model)) as? [String: Any])
        let layers = try XCTUnwrap((config["config"] as? [String: Any])?["layers"] as? [[String: Any]])
        // None steps, as Keras writes a stateful model: its predict takes pieces of any length.
        let batchShape = try XCTUnwrap((layers[0]["config"] as? [String: Any])?["batch_shape"] as? [Any])
        XCTAssertEqual(batchShape.count, 3)
        XCTAssertEqual(batchShape[0] as? Int, 5)
        XCTAssertTrue(batchShape[1] is NSNull, "\(batchShape)")
        XCTAssertEqual(batchShape[2] as? Int, 2)
        XCTAssertEqual((layers[1]["config"] as? [String: Any])?["stateful"] as? Bool, true)
        XCTAssertEqual((layers[2]["config"] as? [String: Any])?["stateful"] as? Bool, false)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-stateful-\(UUID()).keras")
        defer { try? FileManager.default.removeItem(at: url) }
        try Keras.saveModel(model, to: url)
        let loaded = try Keras.loadModel(from: url, as: Float.self, steps: 6).model
        XCTAssertEqual(loaded.batchSize, 5)
        XCTAssertEqual(loaded.inputShape, model.inputShape)
        XCTAssertEqual(
            loaded.layers.compactMap { ($0 as? RecurrentLayer<Float>)?.stateful }, [true, false])
        let x = Tensor<Float>(shape: [5, 6, 2], scalars: randomValues(60, seed: 8))
        for _ in 0..<2 { // the second call continues the first in both
            XCTAssertEqual(try loaded.predict(x).scalars, try model.predict(x).scalars)
        }
    }

    /// What a Keras file with stateful layers or None steps must say, and what is refused.
    func testOpenStepsAndStatefulConfigsAreCheckedByName() throws {
        func config(batch: String, steps: String, stateful: Bool, goBackwards: Bool = false, bidirectional: Bool = false) -> Data {
            let gru = """
                {"class_name": "GRU", "config": {"name": "gru", "units": 3, "stateful": \(stateful), "go_backwards": \(goBackwards)}}
                """
            let layer = bidirectional ? "{\"class_name\": \"Bidirectional\", \"config\": {\"name\": \"b\", \"layer\": \(gru)}}" : gru
            return Data(
                """
                {"class_name": "Sequential", "config": {"name": "s", "layers": [
                  {"class_name": "InputLayer", "config": {"batch_shape": [\(batch), \(steps), 2], "name": "in"}}, \(layer)]}}
                """.utf8)
        }
        func refusal(_ data: Data, steps: Int? = nil) -> String {
            do {
                _ = try Keras.buildModel(config: data, file: "c", as: Float.self, steps: steps)
                return "built"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(
            refusal(config(batch: "null", steps: "null", stateful: false)).contains("no fixed number of steps (None)"),
            refusal(config(batch: "null", steps: "null", stateful: false)))
        let open = try Keras.buildModel(config: config(batch: "null", steps: "null", stateful: false), as: Float.self, steps: 7)
        XCTAssertEqual(open.model.inputShape, .sequence(steps: 7, features: 2))
        XCTAssertNil(open.model.batchSize)
        XCTAssertTrue(refusal(config(batch: "null", steps: "5", stateful: true)).contains("no fixed batch size"))
        XCTAssertTrue(refusal(config(batch: "0", steps: "5", stateful: true)).contains("batch size 0 is not None or in 1...65536"))
        XCTAssertTrue(refusal(config(batch: "2", steps: "5", stateful: true, goBackwards: true)).contains("go_backwards"))
        XCTAssertTrue(refusal(config(batch: "2", steps: "5", stateful: true, bidirectional: true)).contains("inside Bidirectional"))
        XCTAssertTrue(refusal(config(batch: "2", steps: "null", stateful: false), steps: 0).contains("steps 0 is not in"))
        // A batch fixed in a file without stateful layers is not imposed, as before.
        XCTAssertNil(try Keras.buildModel(config: config(batch: "2", steps: "5", stateful: false), as: Float.self).model.batchSize)
        let stateful = try Keras.buildModel(config: config(batch: "2", steps: "null", stateful: true), as: Float.self)
        XCTAssertEqual(stateful.model.batchSize, 2)
        XCTAssertEqual(stateful.model.inputShape, .sequence(steps: 1, features: 2))
    }
}
