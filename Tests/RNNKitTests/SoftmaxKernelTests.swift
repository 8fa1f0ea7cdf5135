import XCTest
@_spi(Kernels) @testable import RNNKit

/// Float's softmax (a vector exp in C on the AVX2 and AVX-512 paths, the C library's expf in the
/// portable one), on every instruction set the CPU runs, against the
/// softmax in Double, and the cross-entropy taken from its probabilities, with the logits' form
/// where the label's probability underflows.
final class SoftmaxKernelTests: XCTestCase {
    private func exactSoftmax(_ row: [Float]) -> [Double] {
        let maximum = Double(row.max()!)
        let exponentials = row.map { Foundation.exp(Double($0) - maximum) }
        let sum = exponentials.reduce(0, +)
        return exponentials.map { $0 / sum }
    }

    func testSoftmaxRowsAgainstDouble() {
        onEveryInstructionSet { isa in
            // Widths around the 8- and 16-lane vectors and the 64-column limit of the vector kernel.
            for columns in [1, 2, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100] {
                let rows: [[Float]] = [
                    (0..<columns).map { Float(($0 * 7919) % 1013) / 100 - 5 },
                    // Down to e^−120 of the largest: below the smallest normal float, so 0.
                    (0..<columns).map { -Float(($0 * 37) % 121) },
                    // −∞ logits, whose probability is exactly 0.
                    (0..<columns).map { $0 % 3 == 1 ? -Float.infinity : Float($0 % 5) },
                ]
                var values = rows.flatMap { $0 } + [Float.nan]
                Float.softmaxInPlace(&values, rows: rows.count, columns: columns)
                XCTAssertTrue(values.last!.isNaN, "\(isa), \(columns) columns: wrote past the rows")
                for (r, row) in rows.enumerated() {
                    let exact = exactSoftmax(row)
                    var sum = 0.0
                    for j in 0..<columns {
                        let computed = Double(values[r * columns + j])
                        sum += computed
                        // A few ulp of the value, plus what rounding x − max to Float moves e^(x − max)
                        // by (an ulp of x − max), or 0 where the exact value is below the smallest normal float.
                        let shift = Double(row.max()!) - Double(row[j])
                        let tolerance = (5e-7 + 1.2e-7 * (shift.isFinite ? shift : 0)) * exact[j]
                        XCTAssertEqual(
                            computed, exact[j], accuracy: tolerance + Double(Float.leastNormalMagnitude),
                            "\(isa), \(columns) columns, row \(r), column \(j)")
                    }
                    XCTAssertEqual(sum, 1, accuracy: 1e-6, "\(isa), \(columns) columns, row \(r): the row's sum")
                }
                // A NaN logit makes its whole row NaN (so a diverging model is noticed), not its neighbours'.
                var poisoned = (0..<(2 * columns)).map { Float($0 % 4) }
                poisoned[columns - 1] = .nan
                Float.softmaxInPlace(&poisoned, rows: 2, columns: columns)
                XCTAssertTrue(poisoned[0..<columns].allSatisfy(\.isNaN), "\(isa), \(columns) columns: NaN row")
                XCTAssertTrue(poisoned[columns...].allSatisfy(\.isFinite), "\(isa), \(columns) columns: the next row")
            }
        }
    }

    func testCrossEntropyFromProbabilitiesAndWhereTheyUnderflow() {
        // Row 0: an ordinary row; row 1: the label's probability is e^−200 (0 in Float, so the loss
        // comes from the logits); row 2: in range for Float, but only just (e^−80).
        let logits: [Float] = [0.5, -1, 2, 0, -200, 3, 0, -80, 1]
        let labels: [Int32] = [2, 1, 1]
        var probabilities = logits
        Float.softmaxInPlace(&probabilities, rows: 3, columns: 3)
        var gradient = [Float](repeating: 0, count: 9)
        let result = Float.softmaxCrossEntropy(
            logits: logits, probabilities: probabilities, labels: labels, rows: 3, classes: 3,
            gradientScale: 1, logitGradient: &gradient)
        var expected = 0.0
        for r in 0..<3 {
            let row = logits[(3 * r)..<(3 * r + 3)].map(Double.init)
            let maximum = row.max()!
            expected += Foundation.log(row.map { Foundation.exp($0 - maximum) }.reduce(0, +)) + maximum - row[Int(labels[r])]
        }
        XCTAssertEqual(result.lossSum, expected, accuracy: 1e-5 * expected)
        XCTAssertGreaterThan(result.lossSum, 280, "the underflowed row's 203 must be in the sum")
        XCTAssertEqual(result.correct, 1)
        // In Double the same row's probability e^−1000 underflows too.
        let wide: [Double] = [0, -1000]
        var wideProbabilities = wide
        Double.softmaxInPlace(&wideProbabilities, rows: 1, columns: 2)
        let wideResult = Double.softmaxCrossEntropy(
            logits: wide, probabilities: wideProbabilities, labels: [1], rows: 1,
            classes: 2, gradientScale: 1, logitGradient: nil)
        XCTAssertEqual(wideResult.lossSum, 1000, accuracy: 1e-9)
    }
}
