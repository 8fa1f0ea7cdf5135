import Foundation
import XCTest

@testable import RNNKit

/// `StreamingSession` with `.bfloat16` weights: on weights bfloat16 holds exactly it gives
/// `.full`'s outputs, it rounds to nearest even, on ordinary weights it stays near `predict`, it
/// refuses weights bfloat16 cannot hold, and it is refused where the AVX-512 kernels do not run.
final class StreamingBFloat16WeightsTests: SixteenBitWeightsTestCase {
    /// `value` rounded to bfloat16 (to nearest, ties to even), written independently of the C side.
    private func bfloat16(_ value: Float) -> Float {
        let bits = value.bitPattern, lower = bits & 0xFFFF, upper = bits & 0xFFFF_0000
        let roundsUp = lower > 0x8000 || (lower == 0x8000 && (bits >> 16) & 1 == 1)
        return Float(bitPattern: roundsUp ? upper &+ 0x1_0000 : upper)
    }

    /// Every recurrent kernel of `model` rounded to bfloat16.
    private func roundRecurrentKernels(of model: Sequential<Float>) throws {
        var weights = model.weights
        for name in weights.keys where name.hasSuffix("recurrent_kernel") {
            let tensor = weights[name]!
            weights[name] = Tensor(shape: tensor.shape, scalars: tensor.scalars.map(bfloat16))
        }
        try model.setWeights(weights)
    }

    /// Where the kernels in use are not the AVX-512 ones, a test of `.bfloat16`'s arithmetic
    /// checks what this machine does instead: it refuses `.bfloat16`, naming what it needs.
    private func assertRefusedByTheseKernels() throws {
        XCTAssertThrowsError(try StreamingSession(model: try makeModel(), weights: .bfloat16)) { error in
            XCTAssertTrue("\(error)".contains("AVX-512"), "\(error)")
        }
    }

    /// On weights bfloat16 holds exactly, `.bfloat16` computes what `.full` computes (the same
    /// sums in the same order, the weights widened exactly): this fails if the kernel reads a
    /// wrong weight, gate, half or panel. Refused on the paths without the AVX-512 kernels.
    func testBFloat16WeightsGiveFullOutputsOnWeightsBFloat16Holds() throws {
        let model = try makeModel()
        try roundRecurrentKernels(of: model)
        try onEveryInstructionSet { isa in
            for batch in [1, 3, 7] {
                guard isa == "avx512" else {
                    XCTAssertThrowsError(try StreamingSession(model: model, batchSize: batch, weights: .bfloat16)) { error in
                        XCTAssertTrue("\(error)".contains("AVX-512"), "\(error)")
                    }
                    continue
                }
                let full = try StreamingSession(model: model, batchSize: batch, longestPass: 8)
                let bf16 = try StreamingSession(model: model, batchSize: batch, longestPass: 8, weights: .bfloat16)
                XCTAssertEqual(bf16.halfWeightLayerNames, ["lstm", "gru"])
                let x: [Float] = randomValues(batch * steps * features, seed: 9)
                for split in splits {
                    let difference = maxDifference(try streamed(bf16, x, pieces: split), try streamed(full, x, pieces: split))
                    XCTAssertLessThanOrEqual(difference, 1e-6, "batch \(batch), \(split)")
                }
            }
        }
    }

    /// `.bfloat16` rounds to nearest, ties to even (ties both ways, a carry into the exponent,
    /// float's subnormals, a value past binary16's range): its outputs on a model's weights
    /// equal `.full`'s on a copy rounded by `bfloat16(_:)`.
    func testBFloat16WeightsRoundToNearestEven() throws {
        guard SmallGEMM.instructionSet == "avx512" else { return try assertRefusedByTheseKernels() }
        XCTAssertEqual(bfloat16(1 + 0x1p-8), 1)
        XCTAssertEqual(bfloat16(1 + 3 * 0x1p-8), 1 + 4 * 0x1p-8)
        XCTAssertEqual(bfloat16(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7)
        let model = try makeModel(), rounded = try makeModel()
        var weights = model.weights
        let name = weights.keys.first { $0.hasPrefix("lstm/") && $0.hasSuffix("recurrent_kernel") }!
        var values = weights[name]!.scalars
        let edges: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8), 2 - 0x1p-9, 0x1p-130, 3 * 0x1p-149, 0.1, -0.3, 1e-5, 70000]
        for (i, value) in edges.enumerated() { values[i * 97] = value } // across every gate's columns
        weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
        try model.setWeights(weights)
        try rounded.setWeights(weights)
        try roundRecurrentKernels(of: rounded)
        let x: [Float] = randomValues(steps * features, seed: 2, scale: 0.1)
        let bf16 = try StreamingSession(model: model, weights: .bfloat16), full = try StreamingSession(model: rounded)
        for split in splits {
            XCTAssertLessThanOrEqual(
                maxDifference(try streamed(bf16, x, pieces: split), try streamed(full, x, pieces: split)), 1e-6, "\(split)")
        }
    }

    /// On ordinary (Glorot) weights and inputs in [−1, 1], `.bfloat16` stays within 5e-4 of
    /// `predict` for LSTM(128) and GRU(128) over 28 steps, one step at a time and in pieces.
    func testBFloat16WeightsStayNearPredict() throws {
        guard SmallGEMM.instructionSet == "avx512" else { return try assertRefusedByTheseKernels() }
        for layer in [LSTM(units: 128, returnSequences: true), GRU(units: 128, returnSequences: true)] as [RecurrentLayer<Float>] {
            let model = try Sequential<Float>(inputShape: .sequence(steps: 28, features: 28), layers: [layer], seed: 1)
            let session = try StreamingSession(model: model, weights: .bfloat16)
            let x: [Float] = randomValues(28 * 28, seed: 6)
            var whole = [Float](repeating: 0, count: model.outputShape.scalarCount)
            model.predict(x: x, batchSize: 1, into: &whole)
            for split in [[28], Array(repeating: 1, count: 28), [5, 23], [13, 7, 8]] {
                session.reset()
                var output: [Float] = [], start = 0
                for n in split {
                    output += try session.predict(Tensor(shape: [1, n, 28], scalars: Array(x[(start * 28)..<((start + n) * 28)]))).scalars
                    start += n
                }
                let difference = maxDifference(output, whole)
                XCTAssertLessThan(difference, 5e-4, "\(layer.name) \(split)")
                XCTAssertGreaterThan(difference, 0, "\(layer.name): bfloat16 weights are not float weights")
            }
        }
    }

    /// NaN, infinities and values that round to infinity are refused by layer, at creation and at
    /// a checked reload (which then changes nothing); tiny weights and ±65504's overflow for
    /// binary16 are not refused; a `Double` model runs `.bfloat16` in full.
    func testWeightsBFloat16CannotHoldAreRefused() throws {
        guard SmallGEMM.instructionSet == "avx512" else { return try assertRefusedByTheseKernels() }
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
            ("not a number", { $0[5] = .nan }, "nan at [0, 5]"),
            ("infinite", { $0[3 * 216 + 100] = -.infinity }, "-inf at [3, 100]"),
            ("rounds to infinity", { $0[216 + 7] = .greatestFiniteMagnitude }, "at [1, 7]"),
        ]
        for (label, change, detail) in refusals {
            let model = try modelWithGRUKernel(change)
            XCTAssertThrowsError(try StreamingSession(model: model, weights: .bfloat16), label) { error in
                guard case ModelError.invalidConfiguration(let message) = error else { return XCTFail("\(label): \(error)") }
                XCTAssertTrue(message.hasPrefix("gru's recurrent kernel"), "\(label): \(message)")
                XCTAssertTrue(message.contains(detail) && message.contains("bfloat16"), "\(label): \(message)")
            }
        }
        XCTAssertNoThrow(try StreamingSession(model: try modelWithGRUKernel { $0[0] = 70000 }, weights: .bfloat16))
        XCTAssertNoThrow(
            try StreamingSession(
                model: try modelWithGRUKernel { values in for i in values.indices { values[i] *= 1e-9 } }, weights: .bfloat16))

        let model = try makeModel()
        let session = try StreamingSession(model: model, weights: .bfloat16)
        let x: [Float] = randomValues(steps * features, seed: 4)
        let before = try streamed(session, x, pieces: [12])
        var weights = model.weights
        let name = weights.keys.first { $0.hasPrefix("lstm/") && $0.hasSuffix("recurrent_kernel") }!
        var values = weights[name]!.scalars
        values[1] = .nan
        weights[name] = Tensor(shape: weights[name]!.shape, scalars: values)
        try model.setWeights(weights)
        XCTAssertThrowsError(try session.reloadWeights()) { error in
            XCTAssertTrue("\(error)".contains("lstm's recurrent kernel holds nan at [0, 1]"), "\(error)")
        }
        XCTAssertEqual(try streamed(session, x, pieces: [12]), before, "a refused reload changes nothing")

        let double = try Sequential<Double>(
            inputShape: .sequence(steps: steps, features: features), layers: [LSTM(units: 90)], seed: 3)
        XCTAssertEqual(try StreamingSession(model: double, weights: .bfloat16).halfWeightLayerNames, [])
    }
}
