import Foundation
import XCTest

@testable import RNNKit

/// `StreamingSession` with `.half` weights: on weights binary16 holds exactly it gives `.full`'s
/// outputs, its rounding is binary16's, on ordinary weights it stays near `predict`, and it refuses
/// weights binary16 cannot hold, by layer, at creation and at a checked reload.
final class StreamingHalfWeightsTests: SixteenBitWeightsTestCase {
    /// `predict` on the whole sequence, batch-major `[B, T, O]`.
    private func wholePredict(_ model: Sequential<Float>, _ x: [Float], batch: Int) throws -> [Float] {
        try model.predict(Tensor(shape: [batch, model.inputShape.steps, model.inputShape.features], scalars: x)).scalars
    }

    /// Rounds the recurrent kernels' columns `columns(units)` to binary16 (Swift's `Float16`: to
    /// nearest, ties to even) in `model`.
    private func roundRecurrentKernels(of model: Sequential<Float>, columns: (Int, Int) -> Range<Int>) throws {
        var weights = model.weights
        for layer in model.layers.compactMap({ $0 as? RecurrentLayer<Float> }) {
            let name = weights.keys.first { $0.hasPrefix(layer.name + "/") && $0.hasSuffix("recurrent_kernel") }!
            let tensor = weights[name]!, width = tensor.shape[1]
            var values = tensor.scalars
            for i in values.indices where columns(layer.units, layer.cell.gates).contains(i % width) {
                values[i] = Float(Float16(values[i]))
            }
            weights[name] = Tensor(shape: tensor.shape, scalars: values)
        }
        try model.setWeights(weights)
    }

    /// Where the kernels in use are the portable ones, a test of `.half`'s arithmetic checks what
    /// this machine does instead: it refuses `.half`, naming what it needs.
    private func assertRefusedByTheseKernels() throws {
        XCTAssertThrowsError(try StreamingSession(model: try makeModel(), weights: .half)) { error in
            XCTAssertTrue("\(error)".contains("binary16"), "\(error)")
        }
    }

    /// On weights binary16 holds exactly, `.half` computes what `.full` computes (the same sums
    /// in the same order, the weights widened exactly): this fails if the kernels read a wrong
    /// weight, gate or panel. On every kernel path; the portable one refuses `.half`.
    func testHalfWeightsGiveFullOutputsOnWeightsBinary16Holds() throws {
        let model = try makeModel()
        try roundRecurrentKernels(of: model) { units, gates in 0..<(gates * units) }
        try onEveryInstructionSet { isa in
            for batch in [1, 3] {
                guard isa != "portable" else {
                    XCTAssertThrowsError(try StreamingSession(model: model, batchSize: batch, weights: .half)) { error in
                        XCTAssertTrue("\(error)".contains("binary16"), "\(error)")
                    }
                    continue
                }
                let full = try StreamingSession(model: model, batchSize: batch, longestPass: 8)
                let half = try StreamingSession(model: model, batchSize: batch, longestPass: 8, weights: .half)
                XCTAssertEqual(half.halfWeightLayerNames, ["lstm", "gru"])
                XCTAssertEqual(full.halfWeightLayerNames, [])
                let x: [Float] = randomValues(batch * steps * features, seed: 9)
                for split in splits {
                    let difference = maxDifference(try streamed(half, x, pieces: split), try streamed(full, x, pieces: split))
                    XCTAssertLessThanOrEqual(difference, 1e-6, "\(isa), batch \(batch), \(split)")
                }
            }
        }
    }

    /// `.half` rounds the weights it holds in binary16 as `Float16` does (to nearest, ties to
    /// even, through the subnormals and up to ±65504), and only those: its outputs on a model's
    /// weights equal `.full`'s on a copy with those gates' columns of `U` rounded by `Float16`.
    func testHalfWeightsRoundAsFloat16() throws {
        let model = try makeModel(), rounded = try makeModel()
        // Ties and the ends of binary16's range in the half gates' columns of both.
        var weights = model.weights
        let name = weights.keys.first { $0.hasPrefix("lstm/") && $0.hasSuffix("recurrent_kernel") }!
        var values = weights[name]!.scalars
        let edges: [Float] = [
            1 + 0x1p-11, 1 + 3 * 0x1p-11, -(1 + 0x1p-11), 0x1p-14, 0x1p-24, 1.5 * 0x1p-24, 2.5 * 0x1p-24, 0x1p-25, 3e-8, 65504,
            -65504, 0.1, -0.3, 1e-5,
        ]
        for (i, value) in edges.enumerated() { values[i * 7] = value } // columns 0, 7, …: the input and forget gates
        weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
        try model.setWeights(weights)
        try rounded.setWeights(weights)
        let halfGates = PackedStreamLayer<Float>.halfGates
        try roundRecurrentKernels(of: rounded) { units, gates in 0..<(halfGates(gates) * units) }
        guard SmallGEMM.instructionSet != "portable" else { return try assertRefusedByTheseKernels() }
        let x: [Float] = randomValues(steps * features, seed: 2, scale: 0.1)
        let half = try StreamingSession(model: model, weights: .half), full = try StreamingSession(model: rounded)
        for split in splits {
            XCTAssertLessThanOrEqual(
                maxDifference(try streamed(half, x, pieces: split), try streamed(full, x, pieces: split)), 1e-6, "\(split)")
        }
    }

    /// On ordinary (Glorot) weights and inputs in [−1, 1], `.half` stays within 1e-4 of `predict`
    /// for LSTM(128) and GRU(128) over 28 steps, one step at a time and in pieces.
    func testHalfWeightsStayNearPredict() throws {
        guard SmallGEMM.instructionSet != "portable" else { return try assertRefusedByTheseKernels() }
        for layer in [LSTM(units: 128, returnSequences: true), GRU(units: 128, returnSequences: true)] as [RecurrentLayer<Float>] {
            let model = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [layer], seed: 1)
            let session = try StreamingSession(model: model, weights: .half)
            XCTAssertEqual(session.halfWeightLayerNames, [layer.name])
            let x: [Float] = randomValues(28 * 28, seed: 6)
            var whole = [Float](repeating: 0, count: model.outputShape.scalarCount)
            model.predict(x: x, batchSize: 1, into: &whole) // at batch 1, time-major is batch-major
            for split in [[28], Array(repeating: 1, count: 28), [5, 23], [13, 7, 8]] {
                session.reset()
                var output: [Float] = [], start = 0
                for n in split {
                    output += try session.predict(Tensor(shape: [1, n, 28], scalars: Array(x[(start * 28)..<((start + n) * 28)]))).scalars
                    start += n
                }
                let difference = maxDifference(output, whole)
                XCTAssertLessThan(difference, 1e-4, "\(layer.name) \(split)")
                XCTAssertGreaterThan(difference, 0, "\(layer.name): half weights are not float weights")
            }
        }
    }

    /// Weights binary16 cannot hold are refused by layer, at creation and at a checked reload
    /// (which then changes nothing); `.full` takes them; a `Double` model runs `.half` in full.
    func testWeightsBinary16CannotHoldAreRefused() throws {
        guard SmallGEMM.instructionSet != "portable" else { return try assertRefusedByTheseKernels() }
        func modelWithGRUKernel(_ change: (inout [Float]) -> Void) throws -> Sequential<Float> {
            let model = try makeModel()
            var weights = model.weights
            let name = weights.keys.first { $0.hasPrefix("gru/") && $0.hasSuffix("recurrent_kernel") }!
            var values = weights[name]!.scalars
            change(&values)
            weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
            try model.setWeights(weights)
            return model
        }
        let refusals: [(String, (inout [Float]) -> Void, String)] = [
            ("too large", { $0[3 * 216 + 100] = 70000 }, "70000.0 at [3, 100]"),
            ("not a number", { $0[5] = .nan }, "nan at [0, 5]"),
            ("flushed to zero", { values in for i in values.indices { values[i] *= 1e-9 } }, "2^-25"),
        ]
        for (label, change, detail) in refusals {
            let model = try modelWithGRUKernel(change)
            XCTAssertNoThrow(try StreamingSession(model: model), label)
            XCTAssertThrowsError(try StreamingSession(model: model, weights: .half), label) { error in
                guard case ModelError.invalidConfiguration(let message) = error else { return XCTFail("\(label): \(error)") }
                XCTAssertTrue(message.hasPrefix("gru's recurrent kernel"), "\(label): \(message)")
                XCTAssertTrue(message.contains(detail), "\(label): \(message)")
            }
        }
        // A few tiny weights are rounded to zero, not refused.
        XCTAssertNoThrow(try StreamingSession(model: try modelWithGRUKernel { $0[0] = 1e-9 }, weights: .half))

        let model = try makeModel()
        let session = try StreamingSession(model: model, weights: .half)
        let x: [Float] = randomValues(steps * features, seed: 4)
        let before = try streamed(session, x, pieces: [12])
        var weights = model.weights
        let name = weights.keys.first { $0.hasPrefix("lstm/") && $0.hasSuffix("recurrent_kernel") }!
        var values = weights[name]!.scalars
        values[1] = -1e6
        weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
        try model.setWeights(weights)
        XCTAssertThrowsError(try session.reloadWeights()) { error in
            XCTAssertTrue("\(error)".contains("lstm's recurrent kernel holds -1000000.0 at [0, 1]"), "\(error)")
        }
        XCTAssertEqual(try streamed(session, x, pieces: [12]), before, "a refused reload changes nothing")
        values[1] = 0.25
        weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
        try model.setWeights(weights)
        try session.reloadWeights()
        XCTAssertLessThan(maxDifference(try streamed(session, x, pieces: [12]), try wholePredict(model, x, batch: 1)), 1e-4)

        let double = try Sequential<Double>(
            inputShape: .sequence(steps: steps, features: features), layers: [LSTM(units: 90)], seed: 3)
        let doubleSession = try StreamingSession(model: double, weights: .half)
        XCTAssertEqual(doubleSession.halfWeightLayerNames, [])
    }
}
