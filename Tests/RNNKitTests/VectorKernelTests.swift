import XCTest
@_spi(Kernels) @testable import RNNKit

/// The C kernels behind Float's per-step vector passes (the optimiser's update, the finiteness
/// check, the bias gradient's row sums, the image gather) give exactly what the plain loops they
/// replace give, on every instruction set the CPU runs (the AVX-512 path runs their AVX2 bodies;
/// the softmax has its own test), for lengths that end inside a vector.
final class VectorKernelTests: XCTestCase {
    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float((($0 + seed) * 7919) % 1013) / 500 - 1 }
    }

    func testAdamStepMatchesThePlainLoop() {
        onEveryInstructionSet { isa in
            for count in [1, 7, 8, 9, 31, 500] {
                let gradients = values(count, seed: 1)
                var weights = values(count, seed: 2), m = values(count, seed: 3).map { $0 / 10 }
                var v = values(count, seed: 4).map { $0 * $0 }
                var (expectedW, expectedM, expectedV) = (weights, m, v)
                let (b1, b2, epsilon, step): (Float, Float, Float, Float) = (0.1, 0.001, 1e-7, 3e-4)
                for i in 0..<count {
                    let g = gradients[i]
                    expectedM[i] += (g - expectedM[i]) * b1
                    expectedV[i] += (g * g - expectedV[i]) * b2
                    expectedW[i] -= step * expectedM[i] / (expectedV[i].squareRoot() + epsilon)
                }
                Float.adamStep(
                    weights: &weights, gradients: gradients, m: &m, v: &v, count: count,
                    oneMinusBeta1: b1, oneMinusBeta2: b2, epsilon: epsilon, stepSize: step)
                XCTAssertEqual(weights, expectedW, "\(isa), \(count) weights")
                XCTAssertEqual(m, expectedM, "\(isa), \(count) first moments")
                XCTAssertEqual(v, expectedV, "\(isa), \(count) second moments")
            }
        }
    }

    func testAllFiniteFindsEveryNaNAndInfinity() {
        onEveryInstructionSet { isa in
            for count in [1, 8, 33, 500] {
                let finite = values(count, seed: 5)
                XCTAssertTrue(Float.allFinite(finite, count: count), "\(isa), \(count) finite values")
                for position in Set([0, count / 2, count - 1]) {
                    for bad in [Float.nan, .infinity, -.infinity] {
                        var spoiled = finite
                        spoiled[position] = bad
                        XCTAssertFalse(Float.allFinite(spoiled, count: count), "\(isa), \(bad) at \(position) of \(count)")
                    }
                }
            }
        }
    }

    func testSumRowsMatchesThePlainLoopInItsOrder() {
        onEveryInstructionSet { isa in
            for columns in [1, 4, 8, 10, 13, 15, 16, 17, 31, 33, 64, 65] {
                for rows in [0, 1, 3, 4, 7, 448] {
                    let matrix = values(rows * columns, seed: columns + rows)
                    var expected = [Float](repeating: 0, count: columns)
                    var r = 0
                    while r + 4 <= rows {
                        for j in 0..<columns {
                            let row = r * columns + j
                            expected[j] += (matrix[row] + matrix[row + columns]) + (matrix[row + 2 * columns] + matrix[row + 3 * columns])
                        }
                        r += 4
                    }
                    for i in r..<rows { for j in 0..<columns { expected[j] += matrix[i * columns + j] } }
                    var result = [Float](repeating: .nan, count: columns + 1)
                    Float.sumRows(matrix, rows: rows, columns: columns, into: &result)
                    XCTAssertEqual(Array(result[0..<columns]), expected, "\(isa), \(rows)×\(columns)")
                    XCTAssertTrue(result[columns].isNaN, "\(isa), \(rows)×\(columns) wrote past the result")
                }
            }
        }
    }

    func testImageGatherForEveryRowWidth() {
        onEveryInstructionSet { isa in
            // Three images, and 70: the kernel reads images in groups of 32, so the last group is ragged.
            for (columns, indices) in [1, 3, 7, 8, 9, 16, 28, 31].map({ ($0, [4, 0, 2]) }) + [(28, (0..<70).map { ($0 * 7) % 5 })] {
                let rows = 3, count = 5, size = rows * columns
                let pixels = (0..<(count * size)).map { UInt8(($0 * 37) % 256) }
                var x = [Float](repeating: .nan, count: rows * indices.count * columns + 1)
                indices.withUnsafeBufferPointer { indices in
                    pixels.withUnsafeBufferPointer { pixels in
                        Float.gatherImages(pixels.baseAddress!, indices: indices, rows: rows, columns: columns, scale: 1 / 255, into: &x)
                    }
                }
                for (b, image) in indices.enumerated() {
                    for t in 0..<rows {
                        for j in 0..<columns {
                            XCTAssertEqual(
                                x[(t * indices.count + b) * columns + j], Float(pixels[image * size + t * columns + j]) * (1 / 255),
                                "\(isa), \(columns) columns, \(indices.count) images: image \(image) row \(t) pixel \(j)")
                        }
                    }
                }
                XCTAssertTrue(x.last!.isNaN, "\(isa), \(columns) columns: wrote past the batch")
            }
        }
    }
}
