import XCTest
@testable import RNNKit

/// Each optimiser against steps worked out by hand from Keras's update rules.
final class OptimizerTests: XCTestCase {
    /// A parameter with the given values and gradient.
    func parameter(_ values: [Double], gradient: [Double]) -> Parameter<Double> {
        let p = Parameter<Double>(name: "w", shape: [values.count])
        p.value.assign(values)
        p.gradient.assign(gradient)
        return p
    }

    func assertClose(_ a: [Double], _ b: [Double], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-14, message, file: file, line: line) }
    }

    func testAdamTwoSteps() {
        // g = 0.5, then 0.25, lr 0.1, β1 0.9, β2 0.999, ε 1e-7, w0 = 1.
        let p = parameter([1], gradient: [0.5])
        let adam = Adam<Double>(learningRate: 0.1)
        adam.apply(to: [p])
        // m1 = 0.05, v1 = 0.00025, α1 = 0.1·√0.001/0.1 = √0.001; w1 = 1 − √0.001·0.05/(√0.00025 + 1e-7)
        let w1 = 1 - 0.001.squareRoot() * 0.05 / (0.00025.squareRoot() + 1e-7)
        assertClose(p.value.array, [w1], "Adam step 1")
        p.gradient.assign([0.25])
        adam.apply(to: [p])
        let m2 = 0.05 + (0.25 - 0.05) * 0.1
        let v2 = 0.00025 + (0.0625 - 0.00025) * 0.001
        let alpha2 = 0.1 * (1 - 0.999 * 0.999).squareRoot() / (1 - 0.9 * 0.9)
        assertClose(p.value.array, [w1 - alpha2 * m2 / (v2.squareRoot() + 1e-7)], "Adam step 2")
        assertClose(adam.moments(of: p).m, [m2], "Adam m")
        assertClose(adam.moments(of: p).v, [v2], "Adam v")
        XCTAssertEqual(adam.iterations, 2)
    }

    /// Keras's clipnorm (per weight), clipvalue and global_clipnorm, against steps worked by hand:
    /// SGD at rate 1 subtracts the clipped gradient itself.
    func testGradientClipping() {
        func step(
            _ clipping: GradientClipping,
            optimizer make: (GradientClipping) -> any StatefulOptimizer<Double> = {
                SGD<Double>(learningRate: 1, clipping: $0)
            }
        ) -> ([Double], [Double]) {
            let a = parameter([0, 0], gradient: [3, 4]), b = parameter([0], gradient: [0.5])
            make(clipping).apply(to: [a, b])
            return (a.value.array.map { -$0 }, b.value.array.map { -$0 })
        }
        // ‖g_a‖ = 5 > 1: scaled to norm 1; ‖g_b‖ = 0.5 ≤ 1: kept.
        var (a, b) = step(.norm(1))
        assertClose(a, [0.6, 0.8], "clipnorm a")
        assertClose(b, [0.5], "clipnorm b")
        (a, b) = step(.value(0.7))
        assertClose(a, [0.7, 0.7], "clipvalue a")
        assertClose(b, [0.5], "clipvalue b")
        // ‖(3, 4, 0.5)‖ = √25.25; every gradient scaled by 2.6 / √25.25.
        let scale = 2.6 / 25.25.squareRoot()
        (a, b) = step(.globalNorm(2.6))
        assertClose(a, [3 * scale, 4 * scale], "global_clipnorm a")
        assertClose(b, [0.5 * scale], "global_clipnorm b")
        // Limits above the norms change nothing.
        (a, b) = step(.globalNorm(100))
        assertClose(a + b, [3, 4, 0.5], "global_clipnorm above the norm")
        (a, b) = step(.none)
        assertClose(a + b, [3, 4, 0.5], "no clipping")
        // Every optimiser clips: RMSprop's first step is lr · g / √((1 − ρ)·g² + ε) ≈ lr / √(1 − ρ) · sign(g)
        // whatever g, so the clipped and the unclipped step barely differ; Adam's as well. SGD with
        // momentum's first step is lr · g.
        (a, b) = step(.value(1)) { SGD<Double>(learningRate: 1, momentum: 0.9, clipping: $0) }
        assertClose(a + b, [1, 1, 0.5], "SGD with momentum clips")
        let clippedRMSprop = step(.value(1e-4)) { RMSprop<Double>(learningRate: 1, clipping: $0) }
        // g clipped to 1e-4: s = 0.1·1e-8 = 1e-9, step = 1e-4 / √(1e-9 + 1e-7).
        assertClose(clippedRMSprop.0, [1e-4 / (1e-9 + 1e-7).squareRoot(), 1e-4 / (1e-9 + 1e-7).squareRoot()], "RMSprop clips")
        let clippedAdam = step(.value(1e-9)) { Adam<Double>(learningRate: 1, clipping: $0) }
        // g clipped to 1e-9: α = √(1 − β2)/(1 − β1), m = 0.1 g, √v = √0.001 g: step = √0.001 g / (√0.001 g + ε).
        let adamStep = 0.001.squareRoot() * 1e-9 / (0.001.squareRoot() * 1e-9 + 1e-7)
        assertClose(clippedAdam.0, [adamStep, adamStep], "Adam clips")
    }

    func testPlainSGD() {
        let p = parameter([1, -2], gradient: [0.5, -1])
        SGD<Double>(learningRate: 0.1).apply(to: [p])
        assertClose(p.value.array, [0.95, -1.9], "SGD")
    }

    func testSGDWithMomentumAndNesterov() {
        let p = parameter([1], gradient: [0.5])
        let sgd = SGD<Double>(learningRate: 0.1, momentum: 0.9)
        sgd.apply(to: [p]) // v = −0.05, w = 0.95
        p.gradient.assign([0.25])
        sgd.apply(to: [p]) // v = −0.045 − 0.025 = −0.07, w = 0.88
        assertClose(p.value.array, [0.88], "SGD momentum")

        let q = parameter([1], gradient: [0.5])
        let nesterov = SGD<Double>(learningRate: 0.1, momentum: 0.9, nesterov: true)
        nesterov.apply(to: [q]) // v = −0.05, w = 1 + 0.9·(−0.05) − 0.05 = 0.905
        assertClose(q.value.array, [0.905], "SGD Nesterov")
    }

    func testRMSpropTwoSteps() {
        let p = parameter([1], gradient: [0.5])
        let rms = RMSprop<Double>(learningRate: 0.01)
        rms.apply(to: [p])
        let s1 = 0.1 * 0.25
        let w1 = 1 - 0.01 * 0.5 / (s1 + 1e-7).squareRoot()
        assertClose(p.value.array, [w1], "RMSprop step 1")
        p.gradient.assign([-0.2])
        rms.apply(to: [p])
        let s2 = 0.9 * s1 + 0.1 * 0.04
        assertClose(p.value.array, [w1 + 0.01 * 0.2 / (s2 + 1e-7).squareRoot()], "RMSprop step 2")
    }

    func testKerasDefaults() {
        XCTAssertEqual(Adam<Float>().learningRate, 0.001)
        XCTAssertEqual(Adam<Float>().epsilon, 1e-7)
        XCTAssertEqual(SGD<Float>().learningRate, 0.01)
        XCTAssertEqual(RMSprop<Float>().learningRate, 0.001)
        XCTAssertEqual(RMSprop<Float>().rho, 0.9)
    }

    /// Keras's CosineDecay, and `fit` applying it per step and restoring the rate after.
    func testCosineDecaySchedule() throws {
        let schedule = LearningRateSchedule.cosineDecay(steps: 10, alpha: 0.1)
        XCTAssertEqual(schedule.rate(initial: 0.002, step: 0, totalSteps: 99), 0.002, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(initial: 0.002, step: 5, totalSteps: 99), 0.002 * (0.9 * 0.5 + 0.1), accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(initial: 0.002, step: 10, totalSteps: 99), 0.0002, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(initial: 0.002, step: 50, totalSteps: 99), 0.0002, accuracy: 1e-15)
        XCTAssertEqual(LearningRateSchedule.cosineDecay(steps: nil).rate(initial: 1, step: 3, totalSteps: 6), 0.5, accuracy: 1e-15)
        XCTAssertEqual(LearningRateSchedule.constant.rate(initial: 0.3, step: 7, totalSteps: 9), 0.3)

        // fit sets the rate before each step (the event follows the step) and restores it after.
        let model = try Sequential<Double>(inputShape: .vector(features: 1), layers: [Dense(units: 2, activation: .softmax)])
        let sgd = SGD<Double>(learningRate: 0.5)
        try model.compile(optimizer: sgd)
        let data = try TensorDataset(inputs: Tensor(shape: [4, 1], scalars: [0, 1, 2, 3]), labels: [0, 1, 0, 1], classCount: 2)
        var rates: [Double] = []
        _ = try model.fit(
            data,
            options: FitOptions(
                epochs: 2, batchSize: 2, shuffle: false,
                learningRateSchedule: .cosineDecay(steps: nil))
        ) { event in
            if case .batchEnded = event { rates.append(sgd.learningRate) }
        }
        let expected = (0..<4).map { 0.5 * 0.5 * (1 + cos(Double.pi * Double($0) / 4)) }
        XCTAssertEqual(rates.count, 4)
        for (rate, want) in zip(rates, expected) { XCTAssertEqual(rate, want, accuracy: 1e-15) }
        XCTAssertEqual(sgd.learningRate, 0.5, "fit leaves the optimiser at its own rate")
    }
}
