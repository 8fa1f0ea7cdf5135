import XCTest
@_spi(Kernels) @testable import RNNKit

/// The BLAS engine against the naive reference, in Float, on shapes chosen to catch layout and
/// edge mistakes: B = 1, T = 1, H = 1, and sizes that are not multiples of 4 or 8.
final class BackendAgreementTests: XCTestCase {
    let tolerance = 1e-5

    static let shapes: [RNNDimensions] = [
        RNNDimensions(batch: 1, steps: 1, inputs: 1, units: 1),
        RNNDimensions(batch: 1, steps: 7, inputs: 3, units: 5),
        RNNDimensions(batch: 5, steps: 1, inputs: 6, units: 3),
        RNNDimensions(batch: 3, steps: 9, inputs: 5, units: 1),
        RNNDimensions(batch: 13, steps: 11, inputs: 7, units: 9),
        RNNDimensions(batch: 32, steps: 28, inputs: 28, units: 10),
        RNNDimensions(batch: 17, steps: 6, inputs: 33, units: 37),
        // Around the small-matrix kernels' hand-over to OpenBLAS: n = 64 is the widest they take,
        // 65 goes to OpenBLAS; [40·28, 28]·[28, 17] is just above their largest product.
        RNNDimensions(batch: 2, steps: 3, inputs: 4, units: 64),
        RNNDimensions(batch: 2, steps: 3, inputs: 4, units: 65),
        RNNDimensions(batch: 40, steps: 28, inputs: 28, units: 17),
        // Widths around the 16-lane registers (a row in one register, its ragged end a mask), and
        // the notebook's Model B widths (8 blocked, 4 flattened) at 16 and 24 rows.
        RNNDimensions(batch: 16, steps: 6, inputs: 5, units: 15),
        RNNDimensions(batch: 16, steps: 5, inputs: 28, units: 16),
        RNNDimensions(batch: 9, steps: 4, inputs: 6, units: 17),
        RNNDimensions(batch: 16, steps: 4, inputs: 7, units: 31),
        RNNDimensions(batch: 16, steps: 5, inputs: 6, units: 32),
        RNNDimensions(batch: 7, steps: 3, inputs: 5, units: 33),
        RNNDimensions(batch: 16, steps: 10, inputs: 16, units: 8),
        RNNDimensions(batch: 24, steps: 7, inputs: 8, units: 4),
        // Gated layers over 64 units take the packed (and for LSTM fused) steps on AVX-512: a
        // ragged last 16-unit panel, every row tail of the 6-row (forward) and 8-row (backward)
        // blocks, and whole panels.
        RNNDimensions(batch: 13, steps: 4, inputs: 5, units: 97),
        RNNDimensions(batch: 7, steps: 3, inputs: 9, units: 128),
        RNNDimensions(batch: 1, steps: 2, inputs: 3, units: 80),
    ]

    /// The engine's ways of multiplying: small products in RNNKit's kernels on every instruction set
    /// this CPU runs (AVX-512, AVX2 with FMA, portable C: `SmallGEMM.availableInstructionSets`), and
    /// everything in OpenBLAS (`isa` nil: on the set in use).
    static let engines: [(name: String, backend: BLASBackend, isa: String?)] =
        SmallGEMM.availableInstructionSets.map { ("auto, \($0) kernels", BLASBackend(kernels: .auto), $0) }
        + [("OpenBLAS only", BLASBackend(kernels: .blas), nil)]

    /// Runs `body` with the kernels on `isa` (nil: as they are), then puts back the set before.
    func on<T>(_ isa: String?, _ body: () throws -> T) rethrows -> T {
        let before = SmallGEMM.instructionSet
        defer { SmallGEMM.force(before) }
        if let isa { XCTAssertTrue(SmallGEMM.force(isa), "force(\(isa))") }
        return try body()
    }

    /// Every cell kind, with the activations that take different code paths.
    static let cells: [RecurrentCell] = [
        .simple(activation: .tanh), .simple(activation: .relu),
        .lstm(activation: .tanh, recurrentActivation: .sigmoid),
        .lstm(activation: .tanh, recurrentActivation: .hardSigmoid),
        .gru(activation: .tanh, recurrentActivation: .sigmoid, resetAfter: true),
        .gru(activation: .tanh, recurrentActivation: .sigmoid, resetAfter: false),
        .gru(activation: .relu, recurrentActivation: .hardSigmoid, resetAfter: true),
    ]

    func testRecurrentForwardAndBackwardEveryCell() {
        var worst: [String: Double] = [:]
        for cell in Self.cells {
            for (k, d) in Self.shapes.enumerated() {
                // The last state or the sequence, from zeros or from a given state (with d c_T from
                // outside for LSTM), and with recurrent dropout (from zeros it is in the model-level tests).
                for (sequence, fromState, dropping) in [
                    (false, false, false), (true, false, false), (true, true, false), (true, true, true),
                ] {
                    let seed = UInt64(k * 10)
                    let GH = cell.gates * d.units
                    let x: [Float] = randomValues(d.steps * d.batch * d.inputs, seed: seed)
                    let w: [Float] = randomValues(d.inputs * GH, seed: seed + 1, scale: 0.5)
                    let u: [Float] = randomValues(d.units * GH, seed: seed + 2, scale: 0.5)
                    let b: [Float] = randomValues(cell.biasShape(units: d.units).reduce(1, *), seed: seed + 3, scale: 0.5)
                    let dh: [Float] = randomValues((sequence ? d.steps : 1) * d.batch * d.units, seed: seed + 4)
                    let state: [Float]? = fromState ? randomValues(3 * d.batch * d.units, seed: seed + 5) : nil
                    // A recurrent dropout mask of rate 0.4: 0, or 1 / 0.6.
                    let dropMask: [Float]? =
                        dropping
                        ? randomValues(d.batch * d.units, seed: seed + 6).map { $0 < -0.2 ? 0 : 1 / 0.6 } : nil
                    let reference = run(NaiveBackend(), cell, d, sequence, x, w, u, b, dh, state: state, dropMask: dropMask)
                    for engine in Self.engines {
                        let results = on(engine.isa) {
                            run(engine.backend, cell, d, sequence, x, w, u, b, dh, state: state, dropMask: dropMask)
                        }
                        for (name, (computed, expected)) in zip(
                            ["tape", "dW", "dU", "db", "dX", "d initial state", "h ⊙ m"], zip(results, reference))
                        {
                            let error = relativeError(computed, expected)
                            let key = "\(cell), \(engine.name)"
                            worst[key] = max(worst[key] ?? 0, error)
                            XCTAssertLessThan(
                                error, tolerance,
                                "\(name) for \(cell), \(d), sequences \(sequence), initial state \(fromState), recurrent dropout \(dropping), \(engine.name)"
                            )
                        }
                    }
                }
            }
        }
        for (cell, error) in worst.sorted(by: { $0.key < $1.key }) { print("BLAS vs naive \(cell): largest relative error \(error)") }
    }

    /// With `state` (3 × [B, H]: h_0, c_0, d loss / d c_T), starts from that state and returns d loss /
    /// d (h_0, c_0) as a sixth array (an empty one without); with `dropMask` ([B, H]), runs with that
    /// recurrent dropout mask and returns the states it dropped as a seventh.
    private func run(
        _ backend: any Backend, _ cell: RecurrentCell, _ d: RNNDimensions, _ sequence: Bool,
        _ x: [Float], _ w: [Float], _ u: [Float], _ b: [Float], _ dh: [Float], state: [Float]? = nil,
        dropMask: [Float]? = nil
    ) -> [[Float]] {
        let stateCount = d.batch * d.units, isLSTM = cell.gates == 4
        let given = state.map { buffer($0) }, stateGradient = Buffer<Float>(count: 2 * stateCount)
        let initial = given.map { RecurrentState(h: UnsafePointer($0.pointer), c: isLSTM ? UnsafePointer($0.pointer + stateCount) : nil) }
        let (x, w, u, b, dh) = (buffer(x), buffer(w), buffer(u), buffer(b), buffer(dh))
        let tapeMemory = Buffer<Float>(count: RecurrentTape<Float>.count(cell, d))
        var tape = RecurrentTape(cell, d, memory: tapeMemory.pointer)
        let mask = dropMask.map { buffer($0) }, droppedStates = Buffer<Float>(count: d.steps * d.batch * d.units)
        if let mask { tape.recurrentDropout = RecurrentDropout(mask: UnsafePointer(mask.pointer), droppedStates: droppedStates.pointer) }
        let dW = Buffer<Float>(count: w.count), dU = Buffer<Float>(count: u.count)
        let db = Buffer<Float>(count: b.count), dX = Buffer<Float>(count: d.steps * d.batch * d.inputs)
        let workspace = Buffer<Float>(count: backend.recurrentWorkspaceCount(cell, d))
        // Garbage in the workspace must not matter.
        workspace.pointer.update(repeating: .nan, count: workspace.count)
        let weights = RecurrentWeights(kernel: w.pointer, recurrentKernel: u.pointer, bias: b.pointer)
        backend.recurrentForward(
            cell, d, x: x.pointer, weights: weights, mask: nil, initialState: initial, tape: tape, workspace: workspace.pointer)
        backend.recurrentBackward(
            cell, d, x: x.pointer, weights: weights, mask: nil, initialState: initial, tape: tape, stateGradient: dh.pointer,
            sequenceGradient: sequence, finalCellGradient: isLSTM ? given.map { UnsafePointer($0.pointer + 2 * stateCount) } : nil,
            gradients: RecurrentGradients(kernel: dW.pointer, recurrentKernel: dU.pointer, bias: db.pointer),
            inputGradient: dX.pointer,
            initialStateGradient: given == nil
                ? nil : RecurrentStateGradient(h: stateGradient.pointer, c: isLSTM ? stateGradient.pointer + stateCount : nil),
            workspace: workspace.pointer)
        return [tapeMemory.array, dW.array, dU.array, db.array, dX.array, given == nil ? [] : stateGradient.array]
            + (mask == nil ? [] : [droppedStates.array])
    }

    func testDenseForwardAndBackward() {
        for (rows, inputs, units) in [
            (1, 1, 1), (7, 5, 3), (32, 10, 10), (19, 33, 11), (6, 70, 65), (16, 10, 15), (16, 16, 16),
            (17, 8, 17), (16, 31, 31), (9, 12, 33),
        ] {
            for activation in Activation.allCases {
                let x: [Float] = randomValues(rows * inputs, seed: 1)
                let v: [Float] = randomValues(inputs * units, seed: 2)
                let c: [Float] = randomValues(units, seed: 3)
                let dz: [Float] = randomValues(rows * units, seed: 4)
                let backends: [any Backend] = Self.engines.map(\.backend) + [NaiveBackend()]
                let results = backends.enumerated().map { index, backend -> [[Float]] in
                    on(index < Self.engines.count ? Self.engines[index].isa : nil) {
                        let pre = Buffer<Float>(count: rows * units), out = Buffer<Float>(count: rows * units)
                        let dV = Buffer<Float>(count: inputs * units), dc = Buffer<Float>(count: units)
                        let dx = Buffer<Float>(count: rows * inputs)
                        let (xb, vb, cb, dzb) = (buffer(x), buffer(v), buffer(c), buffer(dz))
                        backend.denseForward(
                            rows: rows, inputs: inputs, units: units, activation: activation, x: xb.pointer,
                            kernel: vb.pointer, bias: cb.pointer, preActivation: pre.pointer, output: out.pointer)
                        backend.denseBackward(
                            rows: rows, inputs: inputs, units: units, x: xb.pointer, kernel: vb.pointer,
                            preActivationGradient: dzb.pointer, kernelGradient: dV.pointer,
                            biasGradient: dc.pointer, inputGradient: dx.pointer)
                        return [pre.array, out.array, dV.array, dc.array, dx.array]
                    }
                }
                for (index, engine) in Self.engines.enumerated() {
                    for (computed, reference) in zip(results[index], results[Self.engines.count]) {
                        XCTAssertLessThan(
                            relativeError(computed, reference), tolerance, "Dense \(rows)×\(inputs)→\(units) \(activation), \(engine.name)")
                    }
                }
            }
        }
    }

    /// Whole models, loss and every gradient, through `Sequential` on each backend.
    func testModelsAgreeOnLossAndGradients() throws {
        let configurations: [(FeatureShape, () -> [any Layer<Float>], Int)] = [
            (.sequence(steps: 28, features: 28), { [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)] }, 32),
            (
                .sequence(steps: 28, features: 28),
                {
                    [
                        SimpleRNN(units: 16, returnSequences: true), SimpleRNN(units: 8, returnSequences: true),
                        SimpleRNN(units: 4), Dense(units: 10, activation: .softmax),
                    ]
                }, 16
            ),
            (.sequence(steps: 1, features: 3), { [SimpleRNN(units: 1, activation: .relu), Dense(units: 2, activation: .softmax)] }, 1),
            (
                .sequence(steps: 5, features: 7),
                {
                    [
                        SimpleRNN(units: 9, returnSequences: true), Dense(units: 3, activation: .tanh),
                        SimpleRNN(units: 5), Dense(units: 3, activation: .softmax),
                    ]
                }, 11
            ),
            // A stack behind a Dense layer, returning sequences into a relu layer; and the smallest stack.
            (
                .sequence(steps: 7, features: 5),
                {
                    [
                        Dense(units: 6, activation: .tanh), SimpleRNN(units: 7, returnSequences: true),
                        SimpleRNN(units: 5, returnSequences: true), SimpleRNN(units: 3, returnSequences: true),
                        SimpleRNN(units: 4, activation: .relu), Dense(units: 3, activation: .softmax),
                    ]
                }, 9
            ),
            (
                .sequence(steps: 1, features: 2),
                {
                    [
                        SimpleRNN(units: 1, returnSequences: true), SimpleRNN(units: 1),
                        Dense(units: 2, activation: .softmax),
                    ]
                }, 1
            ),
            // Bidirectional in each merge mode, stacked.
            (
                .sequence(steps: 6, features: 5),
                {
                    [
                        Bidirectional(LSTM(units: 6, returnSequences: true)),
                        Bidirectional(GRU(units: 5, returnSequences: true), mergeMode: .mul),
                        Bidirectional(SimpleRNN(units: 4, returnSequences: true), mergeMode: .average),
                        Bidirectional(GRU(units: 3, resetAfter: false), mergeMode: .sum),
                        Dense(units: 3, activation: .softmax),
                    ]
                }, 7
            ),
            // Dropout (masks drawn from the same seeds by both models), on the input and the state.
            (
                .sequence(steps: 5, features: 6),
                {
                    [
                        GRU(units: 6, returnSequences: true, dropout: 0.3, recurrentDropout: 0.4, seed: 1),
                        Dropout(rate: 0.2, seed: 2),
                        LSTM(units: 4, dropout: 0.5, recurrentDropout: 0.3, seed: 3), Dense(units: 3, activation: .softmax),
                    ]
                }, 8
            ),
            (
                .sequence(steps: 6, features: 4),
                {
                    [
                        SimpleRNN(units: 5, returnSequences: true, recurrentDropout: 0.5, seed: 4),
                        GRU(units: 4, resetAfter: false, returnSequences: true, recurrentDropout: 0.3, seed: 5),
                        Bidirectional(LSTM(units: 3, recurrentDropout: 0.2, seed: 6)),
                        Dense(units: 3, activation: .softmax),
                    ]
                }, 7
            ),
            // go_backwards on every cell kind, stacked.
            (
                .sequence(steps: 6, features: 5),
                {
                    [
                        LSTM(units: 7, returnSequences: true, goBackwards: true),
                        GRU(units: 5, returnSequences: true, goBackwards: true),
                        SimpleRNN(units: 4, goBackwards: true), Dense(units: 3, activation: .softmax),
                    ]
                }, 9
            ),
        ]
        try onEveryInstructionSet { isa in
            var worst = 0.0
            for (shape, layers, batch) in configurations {
                guard case .sequence(let steps, let features) = shape else { return XCTFail() }
                worst = max(
                    worst,
                    try compareEngineWithReference(shape, layers) { classes in
                        randomBatch(steps: steps, batch: batch, features: features, classes: classes, seed: 5, as: Float.self)
                    })
            }
            print("BLAS vs naive models, \(isa) kernels: largest relative gradient error \(worst)")
        }
    }

    /// The same model on each backend, from the same seed: the loss and every gradient for one batch.
    /// - Returns: the largest relative gradient error.
    func compareEngineWithReference(
        _ shape: FeatureShape, _ layers: () -> [any Layer<Float>],
        batch: (_ classes: Int) -> (x: [Float], labels: [Int32])
    ) throws -> Double {
        let engine = try makeModel(shape, layers(), seed: 4, backend: BLASBackend())
        let reference = try makeModel(shape, layers(), seed: 4, backend: NaiveBackend())
        let (x, labels) = batch(engine.outputShape.features)
        let (engineLoss, engineGradients) = engine.lossAndGradients(x: x, labels: labels)
        let (referenceLoss, referenceGradients) = reference.lossAndGradients(x: x, labels: labels)
        XCTAssertEqual(engineLoss, referenceLoss, accuracy: tolerance * abs(referenceLoss))
        var worst = 0.0
        for (name, gradient) in referenceGradients {
            let error = relativeError(engineGradients[name]!, gradient)
            worst = max(worst, error)
            XCTAssertLessThan(error, tolerance, "\(name) in \(engine.layers.map(\.typeName))")
        }
        return worst
    }

    /// Masked batches (steps masked at the start, in the middle and at the end), every cell kind,
    /// Bidirectional and go_backwards: the engine against the reference, loss and every gradient.
    func testMaskedModelsAgree() throws {
        let (steps, batch, features) = (9, 6, 5)
        let configurations: [() -> [any Layer<Float>]] = [
            { [Masking(), SimpleRNN(units: 7, returnSequences: true), LSTM(units: 5), Dense(units: 3, activation: .softmax)] },
            {
                [
                    Masking(), Bidirectional(GRU(units: 4, returnSequences: true, recurrentDropout: 0.3)),
                    GRU(units: 3, resetAfter: false, goBackwards: true, recurrentDropout: 0.4),
                    Dense(units: 3, activation: .softmax),
                ]
            },
            {
                [
                    Masking(), LSTM(units: 6, returnSequences: true, goBackwards: true),
                    Bidirectional(SimpleRNN(units: 4), mergeMode: .sum),
                    Dense(units: 3, activation: .softmax),
                ]
            },
        ]
        var (x, labels) = randomBatch(steps: steps, batch: batch, features: features, classes: 3, seed: 8, as: Float.self)
        // Sample b is masked at steps b % 3, 4 (every sample: a whole step masked) and (for odd b)
        // the last; sample 5 at every step but one. Then every sample at the first and last two
        // steps, which the engine skips whole.
        for b in 0..<batch {
            var masked = [b % 3, 4]
            if b % 2 == 1 { masked.append(steps - 1) }
            if b == 5 { masked = Array(0..<(steps - 1)) }
            masked += [0, steps - 2, steps - 1]
            for t in masked { for i in 0..<features { x[(t * batch + b) * features + i] = 0 } }
        }
        try onEveryInstructionSet { isa in
            var worst = 0.0
            for layers in configurations {
                worst = max(worst, try compareEngineWithReference(.sequence(steps: steps, features: features), layers) { _ in (x, labels) })
            }
            print("BLAS vs naive, masked models, \(isa) kernels: largest relative gradient error \(worst)")
        }
    }

    /// The Float `tanh` the engine uses, on every instruction set, against the C library's.
    func testTanhAccuracy() {
        onEveryInstructionSet { isa in
            var inputs: [Float] = []
            var x: Float = -12
            while x <= 12 {
                inputs.append(x)
                x = x.nextUp.nextUp.nextUp.nextUp.nextUp.nextUp.nextUp.nextUp + 1e-4
            }
            var values = inputs
            Float.tanhInPlace(&values, count: values.count)
            var worst: Float = 0
            for (x, y) in zip(inputs, values) {
                let exact = Float(Double.tanh(Double(x)))
                worst = max(worst, abs(y - exact) / max(abs(exact), Float.leastNormalMagnitude))
            }
            XCTAssertLessThan(worst, 4 * Float.ulpOfOne, "\(isa): tanh's relative error")
            var special: [Float] = [.nan, .infinity, -.infinity, 20, -20]
            Float.tanhInPlace(&special, count: special.count)
            XCTAssertTrue(special[0].isNaN, "\(isa): NaN stays NaN")
            // Saturated: ±1 to within the approximation's error (its reciprocal estimate leaves ±(1 − 2⁻²²)).
            for (value, limit) in zip(special[1...], [1, -1, 1, -1] as [Float]) {
                XCTAssertEqual(value, limit, accuracy: 2 * Float.ulpOfOne, "\(isa): tanh saturates")
            }
        }
    }

    /// One tanh: the activation the Swift engine applies gives the same bits as the C kernels'
    /// fused tanh (a recurrent step's product with its activation, and the first step of the
    /// whole-sequence recurrence), for widths their AVX2 and AVX-512 bodies take.
    func testOneTanhInEveryKernel() {
        onEveryInstructionSet { isa in
            for units in [3, 8, 10, 16, 17, 32, 48, 64] {
                let batch = 5, count = batch * units
                let inputs: [Float] = (0..<count).map { i -> Float in
                    let wrapped = Float(i % 37), position = Float(i)
                    return wrapped * 0.173 - 3.1 + position * 1e-3
                }
                var expected = inputs
                Float.tanhInPlace(&expected, count: count)
                // tanh(C + 0·B): the product's epilogue.
                let zeros = [Float](repeating: 0, count: batch * units), weights = [Float](repeating: 0.5, count: units * units)
                var fused = inputs
                if Float.smallGEMMTanh(m: batch, n: units, k: units, a: zeros, lda: units, b: weights, ldb: units, c: &fused, ldc: units) {
                    XCTAssertEqual(fused.map(\.bitPattern), expected.map(\.bitPattern), "\(isa), \(units) units: fused product's tanh")
                }
                // The whole recurrence's first step (h_0 = 0: tanh of the projection alone).
                var sequence = inputs
                if Float.tanhRecurrence(steps: 1, batch: batch, units: units, gates: &sequence, recurrentKernel: weights, initialState: nil)
                {
                    XCTAssertEqual(sequence.map(\.bitPattern), expected.map(\.bitPattern), "\(isa), \(units) units: recurrence's tanh")
                }
                // σ(x) = ½ + ½·tanh(x/2) on the same tanh, as the fused gated steps compute it.
                var sigmoid = inputs
                Float.sigmoidInPlace(&sigmoid, count: count)
                var halves = inputs.map { 0.5 * $0 }
                Float.tanhInPlace(&halves, count: count)
                let half: Float = 0.5
                let composed = halves.map { half.addingProduct(half, $0) }
                XCTAssertEqual(sigmoid.map(\.bitPattern), composed.map(\.bitPattern), "\(isa), \(units) units: σ on the one tanh")
            }
        }
    }
}
