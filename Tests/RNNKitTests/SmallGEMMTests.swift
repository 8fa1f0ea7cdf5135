import XCTest
@_spi(Kernels) @testable import RNNKit

/// The small-matrix kernels against a plain triple loop in Double: every transposition, α and β
/// (β = 0 must not read C, which starts as NaN), ragged sizes around the 4-row and 8-column
/// blocks, leading dimensions wider than the matrices, and every instruction set the CPU runs for
/// Float (AVX-512, AVX2 with FMA, portable C), each also held to giving the same bits twice.
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
        // Around the 16-lane registers (a whole row of up to 16 in one, the ragged end a mask) and
        // the AVX-512 blocks: 8 rows for n ≤ 16, 6 for 32, 4 for 48 and 64, and every rest.
        (16, 15, 10), (16, 16, 16), (16, 17, 9), (8, 31, 5), (9, 33, 7), (13, 15, 3), (15, 17, 20), (7, 31, 40),
        (11, 33, 2), (5, 48, 4), (3, 64, 65), (6, 47, 3), (20, 64, 3), (1, 16, 200),
        // The flattened widths over more rows (the AVX2 body on both vector paths), with ragged rests.
        (16, 4, 4), (40, 6, 5), (44, 10, 7), (35, 12, 3), (48, 14, 2), (36, 4, 3), (41, 6, 9),
        // The transpose of Aᵀ·B over 16 lanes: 5 and 4 rows of Cᵀ, one to four registers.
        (16, 10, 64), (64, 5, 70), (50, 9, 66), (33, 11, 64),
    ]
    static let scalings: [(alpha: Double, beta: Double)] = [(1, 0), (1, 1), (0.5, -2), (2, 0)]

    func reference(
        _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Double, _ a: [Double], _ lda: Int,
        _ b: [Double], _ ldb: Int, _ beta: Double, _ c: [Double], _ ldc: Int
    ) -> [Double] {
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
                            S.smallGEMM(
                                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: S(alpha), a: sa, lda: lda,
                                b: sb, ldb: ldb, beta: S(beta), c: out.baseAddress!, ldc: ldc)
                        }
                        for i in 0..<m {
                            for j in 0..<n {
                                let scale = max(1, Double(k))
                                XCTAssertEqual(
                                    Double(computed[i * ldc + j]), expected[i * ldc + j], accuracy: tolerance * scale,
                                    "\(label) m\(m) n\(n) k\(k) ta\(ta) tb\(tb) α\(alpha) β\(beta) at (\(i), \(j))")
                            }
                            // Past each row's n columns nothing is written.
                            for j in n..<ldc where i < m {
                                XCTAssertTrue(
                                    Double(computed[i * ldc + j]).isNaN == c[i * ldc + j].isNaN
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

    func testFloatOnEveryInstructionSet() {
        onEveryInstructionSet { isa in check(Float.self, tolerance: 2e-6, label: "Float \(isa)") }
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

    /// The fused recurrent step: tanh(C + A·B), against tanh of the reference product, on every
    /// instruction set (the portable one declines, and the engine runs the product and tanh apart).
    func testFusedTanhStep() throws {
        onEveryInstructionSet { isa in
            guard isa != "portable" else {
                var c: [Float] = [0]
                XCTAssertFalse(Float.smallGEMMTanh(m: 1, n: 1, k: 1, a: [1], lda: 1, b: [1], ldb: 1, c: &c, ldc: 1))
                return
            }
            for (m, n, k) in [
                (1, 1, 1), (16, 10, 10), (5, 13, 7), (32, 16, 16), (3, 4, 4), (8, 10, 10), (12, 10, 10), (24, 4, 4),
                (16, 15, 15), (16, 17, 17), (16, 31, 31), (9, 33, 33), (16, 6, 6), (17, 14, 14), (16, 8, 8), (4, 64, 64),
            ] {
                let a = (0..<(m * k)).map { Float(($0 * 37) % 17) / 8 - 1 }
                let b = (0..<(k * n)).map { Float(($0 * 53) % 13) / 6 - 1 }
                let c = (0..<(m * n)).map { Float(($0 * 29) % 11) / 5 - 1 }
                let product = reference(false, false, m, n, k, 1, a.map(Double.init), k, b.map(Double.init), n, 1, c.map(Double.init), n)
                var fused = c
                XCTAssertTrue(Float.smallGEMMTanh(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &fused, ldc: n))
                for i in 0..<(m * n) {
                    XCTAssertEqual(Double(fused[i]), tanh(product[i]), accuracy: 2e-6, "\(isa) m\(m) n\(n) k\(k) at \(i)")
                }
            }
            // NaN stays NaN through the fused activation.
            var poisoned: [Float] = [.nan]
            XCTAssertTrue(Float.smallGEMMTanh(m: 1, n: 1, k: 1, a: [1], lda: 1, b: [1], ldb: 1, c: &poisoned, ldc: 1))
            XCTAssertTrue(poisoned[0].isNaN, "\(isa)")
        }
    }

    /// The kernels' tanh (the recurrence's first step from a zero state is tanh alone) over its
    /// whole range: within 4 ulp of tanh in Double from the subnormals to the clamp and past it,
    /// the sign of zero kept, never beyond ±1, NaN kept NaN, in full vectors and the ragged last one.
    /// With 1 unit and with 16 (the AVX-512 recurrence takes multiples of 16, so 16 runs its tanh, 1
    /// the AVX2 one on both vector paths).
    func testKernelTanhAcrossItsRange() throws {
        onEveryInstructionSet { isa in
            for units in [1, 16] { kernelTanhAcrossItsRange(isa, units: units) }
        }
    }

    private func kernelTanhAcrossItsRange(_ isa: String, units: Int) {
        var values: [Float] = [
            .nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
            1e-40, -1e-40, .leastNormalMagnitude, 1e-30, -1e-20, 3.9e-4, 4e-4, -4.1e-4,
            7.905311, 7.9053113, -7.9053115, 8, 20, -1e30, .greatestFiniteMagnitude,
        ]
        values += (0...20_000).map { Float($0 - 10_000) * 1e-3 } // [-10, 10]
        values += (0..<760).map { Float(pow(10, Double($0) / 20 - 38)) * ($0 % 2 == 0 ? 1 : -1) } // 1e-38 … 1e0
        values += [1.5] // a ragged last vector
        while values.count % units != 0 { values.append(0.25) } // whole rows
        var gates = values
        let kernel = [Float](repeating: 0, count: units * units)
        let done = gates.withUnsafeMutableBufferPointer {
            Float.tanhRecurrence(
                steps: 1, batch: values.count / units, units: units, gates: $0.baseAddress!, recurrentKernel: kernel,
                initialState: nil)
        }
        guard isa != "portable" else { return XCTAssertFalse(done, "no recurrence kernel in portable C") }
        XCTAssertTrue(done)
        XCTAssertTrue(gates[0].isNaN, "\(isa): NaN must stay NaN")
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
        XCTAssertLessThan(worst, 4 * Float.ulpOfOne, "\(isa), \(units) units: worst at \(worstAt)")
    }

    /// What the CPU runs is reported one way everywhere: `availableInstructionSets` best first,
    /// ending with portable C, the best running unless forced; forcing a set the CPU lacks or an
    /// unknown name returns false and changes nothing. Where AVX-512 is absent this test says so and
    /// checks that the absence is consistent, rather than passing unnoticed.
    func testForcingInstructionSets() {
        let available = SmallGEMM.availableInstructionSets
        let before = SmallGEMM.instructionSet
        defer { SmallGEMM.force(before) }
        XCTAssertEqual(available.last, "portable")
        XCTAssertTrue(available.contains(before), "\(before) runs but is not listed in \(available)")
        XCTAssertEqual(available, ["avx512", "avx2-fma", "portable"].filter(available.contains), "order, best first")
        if available.contains("avx512") { XCTAssertTrue(available.contains("avx2-fma"), "AVX-512 without AVX2") }
        XCTAssertTrue(SmallGEMM.force(nil))
        XCTAssertEqual(SmallGEMM.instructionSet, available.first, "force(nil) runs the best")
        XCTAssertTrue(SmallGEMM.force(""))
        XCTAssertEqual(SmallGEMM.instructionSet, available.first, "force(\"\") runs the best")
        for name in ["avx512", "avx2-fma", "portable"] {
            for start in available {
                SmallGEMM.force(start)
                let runs = available.contains(name)
                XCTAssertEqual(SmallGEMM.force(name), runs, "force(\(name)) from \(start)")
                XCTAssertEqual(SmallGEMM.instructionSet, runs ? name : start, "force(\(name)) from \(start)")
            }
        }
        if !available.contains("avx512") {
            print("SmallGEMMTests: this CPU has no AVX-512 path (available: \(available)); checked that force(\"avx512\") refuses it")
        }
        for unknown in ["AVX512", "avx2", "sse", "avx512 ", "auto"] {
            for start in available {
                SmallGEMM.force(start)
                XCTAssertFalse(SmallGEMM.force(unknown), "force(\(unknown))")
                XCTAssertEqual(SmallGEMM.instructionSet, start, "force(\(unknown)) changed the set")
            }
        }
        SmallGEMM.forcePortable(true)
        XCTAssertEqual(SmallGEMM.instructionSet, "portable")
        SmallGEMM.forcePortable(false)
        XCTAssertEqual(SmallGEMM.instructionSet, available.first)
    }

    /// `RNNKIT_SMALL_KERNELS` in a child process (this test binary, running only
    /// `testInstructionSetFromTheEnvironment`): every name this CPU runs is the one in use there; an
    /// unknown or unsupported name leaves the best, and `environmentRequest` reports it.
    func testEnvironmentChoosesTheInstructionSetInAChildProcess() throws {
        let available = SmallGEMM.availableInstructionSets
        let cases =
            available.map { ($0, $0, true) }
            + ["avx512", "avx2-fma"].filter { !available.contains($0) }.map { ($0, available[0], false) }
            + [("nonsense", available[0], false), ("", available[0], true)]
        for (name, expected, honoured) in cases {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            child.arguments = ["RNNKitTests.SmallGEMMTests/testInstructionSetFromTheEnvironment"]
            var environment = ProcessInfo.processInfo.environment
            environment["RNNKIT_SMALL_KERNELS"] = name
            environment["RNNKIT_TEST_EXPECTED_KERNELS"] = "\(expected) \(honoured)"
            child.environment = environment
            let output = Pipe()
            child.standardOutput = output
            child.standardError = output
            try child.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationStatus, 0, "RNNKIT_SMALL_KERNELS=\(name): the child failed:\n\(text)")
            XCTAssertTrue(text.contains("Executed 1 test"), "RNNKIT_SMALL_KERNELS=\(name): the child ran no test:\n\(text)")
        }
    }

    /// The child's half of the test above; in the parent's own run it checks that the environment
    /// report matches the environment.
    func testInstructionSetFromTheEnvironment() {
        let environment = ProcessInfo.processInfo.environment
        guard let expected = environment["RNNKIT_TEST_EXPECTED_KERNELS"]?.split(separator: " ", omittingEmptySubsequences: false) else {
            let requested = environment["RNNKIT_SMALL_KERNELS"] ?? ""
            XCTAssertEqual(SmallGEMM.environmentRequest?.name, requested.isEmpty ? nil : requested)
            return
        }
        XCTAssertEqual(SmallGEMM.instructionSet, String(expected[0]), "the set in use at first use")
        let requested = environment["RNNKIT_SMALL_KERNELS"] ?? ""
        if requested.isEmpty {
            XCTAssertNil(SmallGEMM.environmentRequest)
        } else {
            XCTAssertEqual(SmallGEMM.environmentRequest?.name, requested)
            XCTAssertEqual(SmallGEMM.environmentRequest?.honoured, expected[1] == "true")
        }
    }

    /// Each instruction set gives the same bits for the same inputs, call after call, with other
    /// sets run in between: products of every form, the fused tanh step, the whole recurrence
    /// forward and backward, and the softmax.
    func testEveryInstructionSetIsBitReproducible() {
        func run() -> [UInt32] {
            var bits: [UInt32] = []
            for (m, n, k, ta) in [
                (16, 10, 10, false), (32, 10, 28, false), (28, 10, 448, true), (16, 16, 16, false), (16, 8, 8, false),
                (16, 4, 4, false), (9, 33, 7, false), (40, 64, 5, false), (10, 15, 100, true),
            ] {
                let a: [Float] = randomValues(m * k, seed: UInt64(m + k)), b: [Float] = randomValues(k * n, seed: UInt64(n))
                var c: [Float] = randomValues(m * n, seed: 3)
                c.withUnsafeMutableBufferPointer {
                    Float.smallGEMM(
                        transposeA: ta, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: ta ? m : k, b: b, ldb: n,
                        beta: 1, c: $0.baseAddress!, ldc: n)
                }
                bits += c.map(\.bitPattern)
                var fused: [Float] = randomValues(m * n, seed: 4)
                if !ta, Float.smallGEMMTanh(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &fused, ldc: n) {
                    bits += fused.map(\.bitPattern)
                }
            }
            for (batch, units) in [(16, 10), (32, 10), (16, 16), (16, 8), (16, 4), (5, 17)] {
                let steps = 28
                var gates: [Float] = randomValues(steps * batch * units, seed: 7)
                let u: [Float] = randomValues(units * units, seed: 8, scale: 0.5)
                let upstream: [Float] = randomValues(steps * batch * units, seed: 9)
                var dz = [Float](repeating: 0, count: steps * batch * units), carried = [Float](repeating: 0, count: batch * units)
                let forward = gates.withUnsafeMutableBufferPointer {
                    Float.tanhRecurrence(
                        steps: steps, batch: batch, units: units, gates: $0.baseAddress!, recurrentKernel: u, initialState: nil)
                }
                let backward = dz.withUnsafeMutableBufferPointer { dz in
                    carried.withUnsafeMutableBufferPointer { carried in
                        Float.tanhRecurrenceBackward(
                            steps: steps, batch: batch, units: units, states: gates, upstream: upstream, sequence: true,
                            recurrentKernel: u, gateGradient: dz.baseAddress!, carried: carried.baseAddress!, toStart: true)
                    }
                }
                if forward { bits += gates.map(\.bitPattern) }
                if backward { bits += dz.map(\.bitPattern) + carried.map(\.bitPattern) }
            }
            var logits: [Float] = randomValues(32 * 10, seed: 10, scale: 4)
            Float.softmaxInPlace(&logits, rows: 32, columns: 10)
            return bits + logits.map(\.bitPattern)
        }
        var first: [String: [UInt32]] = [:]
        onEveryInstructionSet { isa in first[isa] = run() }
        onEveryInstructionSet { isa in
            XCTAssertEqual(run(), first[isa], "\(isa): the same inputs gave different bits")
            XCTAssertEqual(run(), first[isa], "\(isa): the same inputs gave different bits, called again at once")
        }
        XCTAssertEqual(first.count, SmallGEMM.availableInstructionSets.count)
    }
}
