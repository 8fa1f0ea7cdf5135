import XCTest
@testable import RNNKit

/// Finite-difference checks of every analytic gradient, in Double so they can be tight.
final class GradientCheckTests: XCTestCase {
    /// Central differences with this step: truncation error ~h², round-off ~1e-16/h.
    let h = 1e-5
    let tolerance = 1e-6

    /// A chain of layers under the loss `L = Σ R ⊙ output` for a fixed random `R`, so every
    /// output element carries gradient. Checks d L / d every weight of every layer and d L / d x.
    /// With `maskedRows` (time-major rows `t·B + b`), those steps of the input are set to 0, which a
    /// `Masking(0)` layer masks; d L / d x is then checked on the other inputs (a masked input's own
    /// gradient is zero, and nudging it would unmask it).
    func checkChain(
        _ layers: [any Layer<Double>], input: FeatureShape, batch: Int, seed: UInt64, maskedRows: Set<Int> = [],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let backend = BLASBackend()
        var generator = RandomGenerator(seed: seed)
        var shape = input
        for layer in layers { shape = try layer.build(inputShape: shape, generator: &generator) }
        for layer in layers {
            layer.reserve(batchCapacity: batch, needsInputGradient: true, backend: BLASBackend())
            // Non-zero biases too, so their gradients are exercised away from the origin.
            for (k, p) in layer.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: seed &+ UInt64(k) &+ 7, scale: 0.5)) }
        }
        var x = randomValues(input.scalarCount * batch, seed: seed &+ 1, as: Double.self)
        for row in maskedRows { for i in 0..<input.features { x[row * input.features + i] = 0 } }
        let roles = layers.map { MaskRole($0) }
        // The layers' forward passes in turn, the mask handed on as a model hands it.
        func forwardAll(_ x: UnsafePointer<Double>) -> UnsafePointer<Double> {
            MaskRole.forward(layers, roles: roles, input: x, batchSize: batch, backend: backend).output
        }
        let projection = randomValues(shape.scalarCount * batch, seed: seed &+ 2, as: Double.self)

        func loss(_ x: [Double]) -> Double {
            x.withUnsafeBufferPointer { x in
                let activations = forwardAll(x.baseAddress!)
                return (0..<projection.count).reduce(0) { $0 + projection[$1] * activations[$1] }
            }
        }

        // Analytic gradients.
        let inputGradient: [Double] = x.withUnsafeBufferPointer { xp in
            _ = forwardAll(xp.baseAddress!)
            var gradient: UnsafePointer<Double>? = projection.withUnsafeBufferPointer { $0.baseAddress! }
            return projection.withUnsafeBufferPointer { r in
                gradient = r.baseAddress!
                for layer in layers.reversed() { gradient = layer.backward(gradient!, batchSize: batch, backend: backend) }
                return Array(UnsafeBufferPointer(start: gradient!, count: x.count))
            }
        }
        let analytic = layers.flatMap { $0.parameters }.map { ($0, $0.gradient.array) }

        for (parameter, gradient) in analytic {
            let error = relativeError(gradient, numericGradient(of: { loss(x) }, for: parameter))
            XCTAssertLessThan(error, tolerance, "d L / d \(parameter.name)", file: file, line: line)
            recordMaximum(error)
        }
        let numeric = numericGradient(of: loss, at: x) { maskedRows.contains($0 / input.features) }
        let error = relativeError(inputGradient, numeric)
        XCTAssertLessThan(error, tolerance, "d L / d x", file: file, line: line)
        for row in maskedRows {
            XCTAssertTrue(
                (0..<input.features).allSatisfy { inputGradient[row * input.features + $0] == 0 }, "a masked input has no gradient",
                file: file, line: line)
        }
        recordMaximum(error)
    }

    /// Central differences of `loss` in each of `parameter`'s values.
    func numericGradient(of loss: () -> Double, for parameter: Parameter<Double>) -> [Double] {
        parameter.centralDifferences(of: loss, step: h)
    }

    /// Central differences of `loss` in each element of `x` but those `skip` names (left 0).
    func numericGradient(of loss: ([Double]) -> Double, at x: [Double], skip: (Int) -> Bool = { _ in false }) -> [Double] {
        var perturbed = x
        return (0..<x.count).map { i in
            guard !skip(i) else { return 0 }
            perturbed[i] = x[i] + h
            let plus = loss(perturbed)
            perturbed[i] = x[i] - h
            let minus = loss(perturbed)
            perturbed[i] = x[i]
            return (plus - minus) / (2 * h)
        }
    }

    private var largestError = 0.0
    private func recordMaximum(_ error: Double) { largestError = max(largestError, error) }
    override func tearDown() {
        print("gradient check \(name): largest relative error \(largestError)")
        super.tearDown()
    }

    func testSimpleRNNTanhLastState() throws {
        try checkChain([SimpleRNN<Double>(units: 5)], input: .sequence(steps: 6, features: 4), batch: 3, seed: 1)
    }

    func testSimpleRNNTanhSequence() throws {
        try checkChain([SimpleRNN<Double>(units: 5, returnSequences: true)], input: .sequence(steps: 6, features: 4), batch: 3, seed: 2)
    }

    func testSimpleRNNReluLastState() throws {
        try checkChain([SimpleRNN<Double>(units: 5, activation: .relu)], input: .sequence(steps: 5, features: 3), batch: 2, seed: 3)
    }

    func testSimpleRNNReluSequence() throws {
        try checkChain(
            [SimpleRNN<Double>(units: 4, returnSequences: true, activation: .relu)],
            input: .sequence(steps: 5, features: 3), batch: 2, seed: 4)
    }

    func testStackedSimpleRNNsTwoDeep() throws {
        try checkChain(
            [SimpleRNN<Double>(units: 6, returnSequences: true), SimpleRNN<Double>(units: 3)],
            input: .sequence(steps: 5, features: 4), batch: 3, seed: 5)
    }

    func testStackedReluOverTanhFullSequences() throws {
        try checkChain(
            [
                SimpleRNN<Double>(units: 4, returnSequences: true),
                SimpleRNN<Double>(units: 3, returnSequences: true, activation: .relu),
            ],
            input: .sequence(steps: 4, features: 3), batch: 2, seed: 6)
    }

    /// Bias-free cells (Keras's `use_bias=False`): the layer hands the engine a bias of zeros.
    func testBiasFreeCells() throws {
        let input = FeatureShape.sequence(steps: 5, features: 3)
        try checkChain(
            [LSTM<Double>(units: 4, returnSequences: true, useBias: false), Dense(units: 2, useBias: false)], input: input, batch: 3,
            seed: 31)
        try checkChain([GRU<Double>(units: 4, useBias: false)], input: input, batch: 3, seed: 32)
        try checkChain([GRU<Double>(units: 4, resetAfter: false, returnSequences: true, useBias: false)], input: input, batch: 3, seed: 33)
        try checkChain([SimpleRNN<Double>(units: 4, useBias: false)], input: input, batch: 2, seed: 34)
    }

    func testLSTMLastStateAndSequence() throws {
        try checkChain([LSTM<Double>(units: 4)], input: .sequence(steps: 5, features: 3), batch: 3, seed: 31)
        try checkChain([LSTM<Double>(units: 3, returnSequences: true)], input: .sequence(steps: 4, features: 5), batch: 2, seed: 32)
        try checkChain(
            [LSTM<Double>(units: 3, activation: .relu, recurrentActivation: .hardSigmoid, returnSequences: true)],
            input: .sequence(steps: 4, features: 3), batch: 2, seed: 33)
    }

    func testGRUResetAfterLastStateAndSequence() throws {
        try checkChain([GRU<Double>(units: 4)], input: .sequence(steps: 5, features: 3), batch: 3, seed: 41)
        try checkChain([GRU<Double>(units: 3, returnSequences: true)], input: .sequence(steps: 4, features: 5), batch: 2, seed: 42)
        try checkChain(
            [GRU<Double>(units: 3, recurrentActivation: .hardSigmoid, returnSequences: true)],
            input: .sequence(steps: 4, features: 3), batch: 2, seed: 43)
    }

    func testGRUResetBeforeLastStateAndSequence() throws {
        try checkChain([GRU<Double>(units: 4, resetAfter: false)], input: .sequence(steps: 5, features: 3), batch: 3, seed: 51)
        try checkChain(
            [GRU<Double>(units: 3, resetAfter: false, returnSequences: true)],
            input: .sequence(steps: 4, features: 5), batch: 2, seed: 52)
    }

    /// Keras's `go_backwards` on every cell, returning the last state and the whole sequence, stacked.
    func testGoBackwardsEveryCell() throws {
        try checkChain(
            [SimpleRNN<Double>(units: 4, activation: .relu, goBackwards: true)], input: .sequence(steps: 5, features: 3), batch: 2, seed: 71
        )
        try checkChain(
            [LSTM<Double>(units: 3, returnSequences: true, goBackwards: true)], input: .sequence(steps: 4, features: 3), batch: 2, seed: 72)
        try checkChain(
            [GRU<Double>(units: 3, goBackwards: true), Dense<Double>(units: 2)], input: .sequence(steps: 4, features: 3), batch: 3, seed: 73
        )
        try checkChain(
            [
                GRU<Double>(units: 3, resetAfter: false, returnSequences: true, goBackwards: true),
                SimpleRNN<Double>(units: 2, goBackwards: true),
            ], input: .sequence(steps: 4, features: 3), batch: 2, seed: 74)
    }

    /// Bidirectional with each merge mode, over each cell, returning sequences and last states, stacked.
    func testBidirectionalEveryMergeMode() throws {
        for (k, mode) in Bidirectional<Double>.MergeMode.allCases.enumerated() {
            let seed = UInt64(80 + 3 * k)
            try checkChain(
                [Bidirectional<Double>(SimpleRNN(units: 3, returnSequences: true), mergeMode: mode)],
                input: .sequence(steps: 4, features: 3), batch: 2, seed: seed)
            try checkChain(
                [Bidirectional<Double>(LSTM(units: 3), mergeMode: mode)], input: .sequence(steps: 4, features: 2), batch: 3, seed: seed + 1)
            try checkChain(
                [
                    Bidirectional<Double>(GRU(units: 2, returnSequences: true), mergeMode: mode),
                    Bidirectional<Double>(GRU(units: 2, resetAfter: false, goBackwards: true), mergeMode: mode),
                ],
                input: .sequence(steps: 3, features: 2), batch: 2, seed: seed + 2)
        }
    }

    /// Dropout while training, each mask held fixed: the layer's, and each recurrent layer's on its
    /// input and on its state (recurrent dropout), every cell kind.
    func testDropoutWithFixedMasks() throws {
        let recurrent = LSTM<Double>(units: 3, returnSequences: true, dropout: 0.4, recurrentDropout: 0.5, seed: 9)
        let dropout = Dropout<Double>(rate: 0.3, seed: 4)
        let bidirectional = Bidirectional<Double>(GRU(units: 2, returnSequences: true, dropout: 0.5, recurrentDropout: 0.4, seed: 2))
        let resetBefore = GRU<Double>(units: 3, resetAfter: false, returnSequences: true, recurrentDropout: 0.5, seed: 6)
        let simple = SimpleRNN<Double>(units: 3, recurrentDropout: 0.4, seed: 8)
        let layers: [any Layer<Double>] = [recurrent, dropout, bidirectional, resetBefore, simple, Dense(units: 2)]
        // The same step draws the same masks, so every evaluation sees one mask.
        for layer in layers { layer.setTraining(true, step: 5) }
        try checkChain(layers, input: .sequence(steps: 4, features: 3), batch: 3, seed: 91)
    }

    /// Masking with masked steps at the start, in the middle and at the end of sequences, over
    /// every cell returning sequences and last states, go_backwards, and Bidirectional (whose
    /// returned sequences are zero at masked steps).
    func testMaskingEveryCell() throws {
        // Rows t·B + b of [T = 6, B = 3]: sample 0 masked at steps 0 and 3, sample 1 at 2–3, sample 2 at 5.
        let masked: Set<Int> = [0 * 3 + 0, 3 * 3 + 0, 2 * 3 + 1, 3 * 3 + 1, 5 * 3 + 2]
        let input = FeatureShape.sequence(steps: 6, features: 3)
        try checkChain(
            [Masking<Double>(), SimpleRNN(units: 3, returnSequences: true), SimpleRNN(units: 2)],
            input: input, batch: 3, seed: 101, maskedRows: masked)
        try checkChain(
            [Masking<Double>(), LSTM(units: 3, returnSequences: true), LSTM(units: 2, goBackwards: true)],
            input: input, batch: 3, seed: 102, maskedRows: masked)
        try checkChain(
            [Masking<Double>(), GRU(units: 3, returnSequences: true), GRU(units: 2, resetAfter: false)],
            input: input, batch: 3, seed: 103, maskedRows: masked)
        try checkChain(
            [
                Masking<Double>(), Bidirectional(SimpleRNN(units: 2, returnSequences: true)), Dense(units: 3),
                Bidirectional(LSTM(units: 2), mergeMode: .mul),
            ],
            input: input, batch: 3, seed: 104, maskedRows: masked)
        try checkChain(
            [
                Masking<Double>(), Bidirectional(GRU(units: 2, returnSequences: true, goBackwards: true), mergeMode: .average),
                GRU(units: 2),
            ], input: input, batch: 3, seed: 105, maskedRows: masked)
        // Whole steps masked (every sample at steps 0, 3 and 5), which the engine skips.
        let wholeSteps = masked.union([0, 1, 2, 9, 10, 11, 15, 16, 17])
        try checkChain(
            [
                Masking<Double>(), LSTM(units: 3, returnSequences: true), GRU(units: 2, resetAfter: false, returnSequences: true),
                Bidirectional(SimpleRNN(units: 2)),
            ], input: input, batch: 3, seed: 106, maskedRows: wholeSteps)
    }

    /// Encoder–decoder: the encoder's final state (h_T, and c_T for LSTM) starts the decoder
    /// (Keras's `return_state` and `initial_state`), and the decoder's d loss / d its initial state
    /// flows back into the encoder. Every weight of both and the encoder's input, by finite differences.
    func testInitialAndFinalStates() throws {
        let pairs: [(RecurrentLayer<Double>, RecurrentLayer<Double>)] = [
            (LSTM(units: 3), LSTM(units: 3, returnSequences: true)),
            (GRU(units: 3, goBackwards: true), GRU(units: 3, resetAfter: false, returnSequences: true)),
            (SimpleRNN(units: 3), SimpleRNN(units: 3, returnSequences: true, activation: .relu)),
            (GRU(units: 2, returnSequences: true), GRU(units: 2)),
        ]
        let backend = BLASBackend(), batch = 2
        for (k, (encoder, decoder)) in pairs.enumerated() {
            var generator = RandomGenerator(seed: UInt64(200 + k))
            _ = try encoder.build(inputShape: .sequence(steps: 4, features: 3), generator: &generator)
            let decoderOutput = try decoder.build(inputShape: .sequence(steps: 3, features: 2), generator: &generator)
            decoder.computesInitialStateGradient = true
            encoder.reserve(batchCapacity: batch, needsInputGradient: true, backend: backend)
            decoder.reserve(batchCapacity: batch, needsInputGradient: false, backend: backend)
            for (j, p) in (encoder.parameters + decoder.parameters).enumerated() {
                p.value.assign(randomValues(p.count, seed: UInt64(300 + 10 * k + j), scale: 0.5))
            }
            let x1 = randomValues(4 * batch * 3, seed: UInt64(400 + k), as: Double.self)
            let x2 = randomValues(3 * batch * 2, seed: UInt64(500 + k), as: Double.self)
            let projection = randomValues(decoderOutput.scalarCount * batch, seed: UInt64(600 + k), as: Double.self)
            let encoderOutputCount = (encoder.returnSequences ? 4 : 1) * batch * encoder.units
            let encoderProjection = randomValues(encoderOutputCount, seed: UInt64(700 + k), as: Double.self)
            func loss(_ x1: [Double]) -> Double {
                x1.withUnsafeBufferPointer { x1 in
                    x2.withUnsafeBufferPointer { x2 in
                        let encoded = encoder.forward(x1.baseAddress!, batchSize: batch, backend: backend)
                        let own = (0..<encoderOutputCount).reduce(0) { $0 + encoderProjection[$1] * encoded[$1] }
                        let final = encoder.finalState
                        decoder.setInitialState(h: final.h, c: final.c)
                        let decoded = decoder.forward(x2.baseAddress!, batchSize: batch, backend: backend)
                        return own + (0..<projection.count).reduce(0) { $0 + projection[$1] * decoded[$1] }
                    }
                }
            }
            _ = loss(x1)
            // Backward: the decoder, then the encoder with d loss / d h_T added to the last step of its output gradient.
            var encoderGradient = encoderProjection
            projection.withUnsafeBufferPointer { _ = decoder.backward($0.baseAddress!, batchSize: batch, backend: backend) }
            let initial = try XCTUnwrap(decoder.initialStateGradient)
            let last = encoderOutputCount - batch * encoder.units
            for i in 0..<(batch * encoder.units) { encoderGradient[last + i] += initial.h[i] }
            encoder.setFinalCellGradient(initial.c)
            let inputGradient: [Double] = encoderGradient.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(start: encoder.backward($0.baseAddress!, batchSize: batch, backend: backend)!, count: x1.count))
            }
            for parameter in encoder.parameters + decoder.parameters {
                let analytic = parameter.gradient.array
                let error = relativeError(analytic, numericGradient(of: { loss(x1) }, for: parameter))
                XCTAssertLessThan(error, tolerance, "d L / d \(parameter.name), pair \(k)")
                recordMaximum(error)
            }
            let error = relativeError(inputGradient, numericGradient(of: loss, at: x1))
            XCTAssertLessThan(error, tolerance, "d L / d the encoder's input, pair \(k)")
            recordMaximum(error)
        }
    }

    func testStackedCells() throws {
        try checkChain(
            [
                LSTM<Double>(units: 4, returnSequences: true), GRU<Double>(units: 3, returnSequences: true),
                GRU<Double>(units: 3, resetAfter: false, returnSequences: true), SimpleRNN<Double>(units: 2),
            ],
            input: .sequence(steps: 4, features: 3), batch: 2, seed: 61)
    }

    /// Each loss through a whole model, every weight: class losses fused with softmax and on a
    /// plain head, binary cross-entropy fused with sigmoid and on probabilities, mean squared
    /// error on vectors and on every step of a sequence.
    func testEveryLossThroughAModel() throws {
        let input = FeatureShape.sequence(steps: 4, features: 3), batch = 3
        func check(_ layers: [any Layer<Double>], _ loss: any Loss, seed: UInt64) throws {
            let model = try Sequential<Double>(inputShape: input, layers: layers, seed: seed)
            try model.compile(optimizer: SGD<Double>(), loss: loss)
            for (k, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: 70 + seed + UInt64(k), scale: 0.6)) }
            let x = randomValues(input.scalarCount * batch, seed: seed, as: Double.self)
            let rows = model.outputShape.steps * batch, columns = model.outputShape.features
            var generator = RandomGenerator(seed: seed)
            let labels = (0..<rows).map { _ in Int32(generator.next() % UInt64(columns)) }
            let targets = (0..<(rows * columns)).map { _ in generator.nextUnitDouble() }
            func lossAndGradients() throws -> (Double, [[Double]]) {
                let metrics = try x.withUnsafeBufferPointer { x in
                    loss.targets == .classIndices
                        ? try labels.withUnsafeBufferPointer {
                            try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: batch)
                        }
                        : try targets.withUnsafeBufferPointer {
                            try model.computeGradients(x: x.baseAddress!, targets: $0.baseAddress!, batchSize: batch)
                        }
                }
                return (metrics.loss, model.parameters.map(\.gradient.array))
            }
            let (_, analytic) = try lossAndGradients()
            for (parameter, gradient) in zip(model.parameters, analytic) {
                let numeric = try parameter.centralDifferences(of: { try lossAndGradients().0 }, step: h)
                let error = relativeError(gradient, numeric)
                XCTAssertLessThan(error, tolerance, "\(loss.name): d loss / d \(parameter.name)")
                recordMaximum(error)
            }
        }
        try check([LSTM(units: 3), Dense(units: 4, activation: .softmax)], CategoricalCrossentropy(), seed: 1)
        try check([GRU(units: 3), Dense(units: 4, activation: .softmax)], SparseCategoricalCrossentropy(), seed: 2)
        try check([GRU(units: 3), Dense(units: 4, activation: .sigmoid)], CategoricalCrossentropy(), seed: 3)
        try check([LSTM(units: 3, returnSequences: true), Dense(units: 4, activation: .softmax)], SparseCategoricalCrossentropy(), seed: 4)
        try check([SimpleRNN(units: 3), Dense(units: 2, activation: .sigmoid)], BinaryCrossentropy(), seed: 5)
        try check([GRU(units: 3, returnSequences: true), Dense(units: 2, activation: .sigmoid)], BinaryCrossentropy(), seed: 6)
        try check([LSTM(units: 3), Dense(units: 2)], MeanSquaredError(), seed: 7)
        try check([GRU(units: 3, returnSequences: true), Dense(units: 2)], MeanSquaredError(), seed: 8)
        try check([GRU(units: 3, returnSequences: true)], MeanSquaredError(), seed: 9)
    }

    func testDenseActivations() throws {
        for (k, activation) in Activation.allCases.enumerated() {
            try checkChain([Dense<Double>(units: 4, activation: activation)], input: .vector(features: 5), batch: 3, seed: 10 + UInt64(k))
        }
    }

    func testDenseOnSequences() throws {
        try checkChain([Dense<Double>(units: 3, activation: .tanh)], input: .sequence(steps: 3, features: 4), batch: 2, seed: 20)
    }

    /// Whole models under softmax + categorical cross-entropy, through `Sequential`, for every
    /// weight: stacks of SimpleRNNs first and behind a Dense layer (so their input gradient
    /// flows), three deep, and relu over relu.
    func testSequentialCrossEntropyGradients() throws {
        try checkSequential(
            [
                SimpleRNN<Double>(units: 6, returnSequences: true), SimpleRNN<Double>(units: 3, activation: .relu),
                Dense<Double>(units: 4, activation: .softmax),
            ], seed: 3)
        try checkSequential(
            [
                SimpleRNN<Double>(units: 5, returnSequences: true), SimpleRNN<Double>(units: 4, returnSequences: true),
                SimpleRNN<Double>(units: 3), Dense<Double>(units: 4, activation: .softmax),
            ], seed: 4)
        try checkSequential(
            [
                Dense<Double>(units: 3, activation: .tanh), SimpleRNN<Double>(units: 6, returnSequences: true),
                SimpleRNN<Double>(units: 4, returnSequences: true), SimpleRNN<Double>(units: 3, activation: .relu),
                Dense<Double>(units: 4, activation: .softmax),
            ], seed: 5)
        try checkSequential(
            [
                SimpleRNN<Double>(units: 4, returnSequences: true, activation: .relu), SimpleRNN<Double>(units: 3, activation: .relu),
                Dense<Double>(units: 4, activation: .softmax),
            ], seed: 6)
    }

    func checkSequential(_ layers: [any Layer<Double>], seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try makeModel(.sequence(steps: 5, features: 4), layers, seed: seed)
        for (k, p) in model.parameters.enumerated() { p.value.assign(randomValues(p.count, seed: 40 + seed + UInt64(k), scale: 0.6)) }
        let (x, labels) = randomBatch(steps: 5, batch: 3, features: 4, classes: 4, seed: 8 + seed, as: Double.self)
        let (_, gradients) = model.lossAndGradients(x: x, labels: labels)
        for parameter in model.parameters {
            var numeric = [Double](repeating: 0, count: parameter.count)
            for i in 0..<parameter.count {
                let saved = parameter.value.pointer[i]
                parameter.value.pointer[i] = saved + h
                let plus = model.loss(x: x, labels: labels)
                parameter.value.pointer[i] = saved - h
                let minus = model.loss(x: x, labels: labels)
                parameter.value.pointer[i] = saved
                numeric[i] = (plus - minus) / (2 * h)
            }
            let error = relativeError(gradients[parameter.name]!, numeric)
            XCTAssertLessThan(error, tolerance, "d loss / d \(parameter.name)", file: file, line: line)
            recordMaximum(error)
        }
    }
}
