import XCTest
@testable import RNNKit

/// The small-matrix kernels against a plain triple loop in Double: every transposition, α and β
/// (β = 0 must not read C, which starts as NaN), ragged sizes around the 4-row and 8-column
/// blocks, leading dimensions wider than the matrices, and both instruction sets for Float.
final class SmallGEMMTests: XCTestCase {
    static let sizes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (1, 8, 1), (3, 7, 5), (4, 8, 8), (5, 9, 3), (16, 10, 10), (17, 17, 17), (16, 40, 10), (9, 64, 2), (28, 10, 448),
        // The flattened kernel's widths (dense C only), with and without ragged last rows.
        (16, 4, 9), (7, 6, 5), (13, 10, 28), (8, 12, 3), (6, 14, 14), (40, 10, 7), (33, 6, 4), (36, 14, 3),
        // Widths next to them that must not take it (n = 2: four rows per vector).
        (32, 2, 8), (36, 16, 5), (40, 9, 3),
        // Aᵀ·B with a long k and m filling more lanes than n, computed as its transpose: two
        // column blocks (32 + 8), an odd n (the last row of Cᵀ alone), one vector; the flattened
        // kernel's eight-row loop with four-row and ragged rows after it.
        (40, 6, 70), (17, 5, 65), (8, 1, 64), (33, 3, 100), (28, 10, 64), (21, 10, 9), (12, 4, 5),
        // The last m % 4 rows together (n ≤ 16), every count of rows and vectors, long and short k.
        (10, 10, 100), (10, 8, 50), (11, 16, 33), (7, 3, 70), (9, 12, 6),
    ]
    static let scalings: [(alpha: Double, beta: Double)] = [(1, 0), (1, 1), (0.5, -2), (2, 0)]

    func reference(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Double, _ a: [Double], _ lda: Int,
                   _ b: [Double], _ ldb: Int, _ beta: Double, _ c: [Double], _ ldc: Int) -> [Double] {
        var result = c
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]) }
                result[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
        return result
    }

    func check<S: BLASScalar>(_ type: S.Type, tolerance: Double, label: String) {
        var cases = 0
        for (m, n, k) in Self.sizes {
            for ta in [false, true] {
                for tb in [false, true] where !tb || SmallGEMM.suits(n: n, k: k, m: m, transposeB: true) {
                    for ((alpha, beta), padding) in Self.scalings.flatMap({ scaling in [0, 3].map { (scaling, $0) } }) {
                        // Leading dimensions as needed (a dense C takes the flattened kernel where
                        // n allows) and 3 wider, so strides are exercised.
                        let lda = (ta ? m : k) + padding, ldb = (tb ? k : n) + padding, ldc = n + padding
                        let a = (0..<((ta ? k : m) * lda)).map { Double(($0 * 7919) % 23) / 11 - 1 }
                        let b = (0..<((tb ? n : k) * ldb)).map { Double(($0 * 104_729) % 19) / 9 - 1 }
                        let c = (0..<(m * ldc)).map { beta == 0 ? Double.nan : Double(($0 * 31) % 13) / 6 - 1 }
                        let expected = reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                        var computed = c.map { S($0) }
                        let sa = a.map { S($0) }, sb = b.map { S($0) }
                        computed.withUnsafeMutableBufferPointer { out in
                            S.smallGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: S(alpha), a: sa, lda: lda,
                                        b: sb, ldb: ldb, beta: S(beta), c: out.baseAddress!, ldc: ldc)
                        }
                        for i in 0..<m {
                            for j in 0..<n {
                                let scale = max(1, Double(k))
                                XCTAssertEqual(Double(computed[i * ldc + j]), expected[i * ldc + j], accuracy: tolerance * scale,
                                               "\(label) m\(m) n\(n) k\(k) ta\(ta) tb\(tb) α\(alpha) β\(beta) at (\(i), \(j))")
                            }
                            // Past each row's n columns nothing is written.
                            for j in n..<ldc where i < m {
                                XCTAssertTrue(Double(computed[i * ldc + j]).isNaN == c[i * ldc + j].isNaN
                                              && (c[i * ldc + j].isNaN || Double(computed[i * ldc + j]) == Double(S(c[i * ldc + j]))),
                                              "\(label) wrote outside the matrix at (\(i), \(j))")
                            }
                        }
                        cases += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(cases, 100)
    }

    func testFloatOnThisCoresKernels() {
        check(Float.self, tolerance: 2e-6, label: "Float \(SmallGEMM.instructionSet)")
    }

    func testFloatPortableKernels() {
        SmallGEMM.forcePortable(true)
        defer { SmallGEMM.forcePortable(false) }
        XCTAssertEqual(SmallGEMM.instructionSet, "portable")
        check(Float.self, tolerance: 2e-6, label: "Float portable")
    }

    func testDouble() {
        check(Double.self, tolerance: 1e-14, label: "Double")
    }

    /// The fused recurrent step: tanh(C + A·B), against tanh of the reference product.
    func testFusedTanhStep() throws {
        guard SmallGEMM.instructionSet == "avx2-fma" else {
            // Without AVX2 the fused kernel declines and the engine runs the product and tanh apart.
            var c: [Float] = [0]
            XCTAssertFalse(Float.smallGEMMTanh(m: 1, n: 1, k: 1, a: [1], lda: 1, b: [1], ldb: 1, c: &c, ldc: 1))
            return
        }
        for (m, n, k) in [(1, 1, 1), (16, 10, 10), (5, 13, 7), (32, 16, 16), (3, 4, 4)] {
            let a = (0..<(m * k)).map { Float(($0 * 37) % 17) / 8 - 1 }
            let b = (0..<(k * n)).map { Float(($0 * 53) % 13) / 6 - 1 }
            let c = (0..<(m * n)).map { Float(($0 * 29) % 11) / 5 - 1 }
            let product = reference(false, false, m, n, k, 1, a.map(Double.init), k, b.map(Double.init), n, 1, c.map(Double.init), n)
            var fused = c
            XCTAssertTrue(Float.smallGEMMTanh(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &fused, ldc: n))
            for i in 0..<(m * n) { XCTAssertEqual(Double(fused[i]), tanh(product[i]), accuracy: 2e-6, "m\(m) n\(n) k\(k) at \(i)") }
        }
        // NaN stays NaN through the fused activation.
        var poisoned: [Float] = [.nan]
        XCTAssertTrue(Float.smallGEMMTanh(m: 1, n: 1, k: 1, a: [1], lda: 1, b: [1], ldb: 1, c: &poisoned, ldc: 1))
        XCTAssertTrue(poisoned[0].isNaN)
    }

    /// The kernels' tanh (the recurrence's first step from a zero state is tanh alone) over its
    /// whole range: within 4 ulp of tanh in Double from the subnormals to the clamp and past it,
    /// the sign of zero kept, never beyond ±1, NaN kept NaN, in full vectors and the ragged last one.
    func testKernelTanhAcrossItsRange() throws {
        var values: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                               1e-40, -1e-40, .leastNormalMagnitude, 1e-30, -1e-20, 3.9e-4, 4e-4, -4.1e-4,
                               7.905311, 7.9053113, -7.9053115, 8, 20, -1e30, .greatestFiniteMagnitude]
        values += (0...20_000).map { Float($0 - 10_000) * 1e-3 }                 // [-10, 10]
        values += (0..<760).map { Float(pow(10, Double($0) / 20 - 38)) * ($0 % 2 == 0 ? 1 : -1) } // 1e-38 … 1e0
        values += [1.5]                                                          // a ragged last vector
        var gates = values
        let unit: [Float] = [0]
        let done = gates.withUnsafeMutableBufferPointer {
            Float.tanhRecurrence(steps: 1, batch: values.count, units: 1, gates: $0.baseAddress!, recurrentKernel: unit, initialState: nil)
        }
        guard SmallGEMM.instructionSet == "avx2-fma" else { return XCTAssertFalse(done, "no kernel without AVX2") }
        XCTAssertTrue(done)
        XCTAssertTrue(gates[0].isNaN, "NaN must stay NaN")
        // The clamp holds ±∞ to the rational function's value at ±7.9053, within 4 ulp of ±1.
        XCTAssertEqual(gates[1], 1, accuracy: 4 * Float.ulpOfOne)
        XCTAssertEqual(gates[2], -1, accuracy: 4 * Float.ulpOfOne)
        XCTAssertEqual(gates[3].bitPattern, Float(0).bitPattern, "tanh(+0)")
        XCTAssertEqual(gates[4].bitPattern, Float(-0.0).bitPattern, "tanh(−0)")
        var worst: Float = 0, worstAt: Float = 0
        for (x, y) in zip(values, gates) where !x.isNaN {
            let exact = Float(Double.tanh(Double(x)))
            let error = abs(y - exact) / max(abs(exact), .leastNormalMagnitude)
            if error > worst { (worst, worstAt) = (error, x) }
            XCTAssertEqual(y.sign, exact.sign, "sign of tanh(\(x))")
            XCTAssertLessThanOrEqual(abs(y), 1, "tanh(\(x))")
        }
        XCTAssertLessThan(worst, 4 * Float.ulpOfOne, "worst at \(worstAt)")
    }
}
