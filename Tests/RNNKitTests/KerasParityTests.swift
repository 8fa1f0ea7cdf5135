import XCTest
@testable import RNNKit

/// RNNKit against the values Keras 3.15 computed for the notebook's Model A (Fixtures/README in
/// ../shared/fixtures): forward pass, loss, gradients and three Adam steps.
final class KerasParityTests: XCTestCase {
    func modelA<S: BLASScalar>(_: S.Type, fixture: KerasFixture) throws -> Sequential<S> {
        let model = try Sequential<S>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN<S>(units: 10), Dense<S>(units: 10, activation: .softmax)])
        try model.compile(optimizer: Adam<S>(learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7))
        try model.setWeights(fixture.weights("weights", as: S.self))
        return model
    }

    /// Forward, loss and gradients: Double to 1e-12, Float to 1e-5 (relative to each array's magnitude).
    func checkForwardAndGradients<S: BLASScalar>(_: S.Type, tolerance: Double) throws -> Double {
        let fixture = try KerasFixture()
        let model = try modelA(S.self, fixture: fixture)
        let (x, labels) = fixture.input(as: S.self)
        let (loss, gradients) = model.lossAndGradients(x: x, labels: labels)
        var worst = 0.0
        func compare(_ ours: [S], _ keras: [Double], _ what: String) {
            let error = relativeError(ours.map(Double.init), keras)
            worst = max(worst, error)
            XCTAssertLessThan(error, tolerance, "\(what) in \(S.self)")
        }
        let rnn = model.layers[0] as! SimpleRNN<S>
        compare(rnn.lastStateSequence().scalars, fixture.values("forward", "hidden_sequences", "simple_rnn"), "hidden states")
        let probabilities = try model.predict(
            try TensorDataset(
                inputs: Tensor(shape: [8, 28, 28], scalars: fixture.values("input", "x").map { S($0) }),
                labels: labels.map(Int.init), classCount: 10), batchSize: 8)
        compare(probabilities.scalars, fixture.values("forward", "probabilities"), "probabilities")
        compare([S(loss)], [fixture.values("forward", "loss")[0]], "loss")
        for name in KerasFixture.weightNames {
            compare(gradients[name]!, fixture.values("gradients", name), "d loss / d \(name)")
        }
        return worst
    }

    func testForwardAndGradientsInDouble() throws {
        let worst = try checkForwardAndGradients(Double.self, tolerance: 1e-12)
        print("Keras parity (Double): largest relative error \(worst)")
    }

    func testForwardAndGradientsInFloat() throws {
        let worst = try checkForwardAndGradients(Float.self, tolerance: 1e-5)
        print("Keras parity (Float): largest relative error \(worst)")
    }

    /// Three Adam steps on the same batch. Double with the literal betas matches
    /// `adam_exact_betas` to ~1e-15; Float matches Keras's own trajectory to ~1e-6.
    func checkAdamSteps<S: BLASScalar>(_: S.Type, reference: String, tolerance: Double) throws -> Double {
        let fixture = try KerasFixture()
        let model = try modelA(S.self, fixture: fixture)
        let (x, labels) = fixture.input(as: S.self)
        var worst = 0.0
        for step in 0..<3 {
            let metrics = try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { labels in
                    try model.trainStep(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: 8)
                }
            }
            let lossError = abs(metrics.loss - fixture.values(reference, "steps", step, "loss_before_step")[0])
            XCTAssertLessThan(lossError, tolerance, "loss before step \(step + 1)")
            let expected: [String: Tensor<Double>] = fixture.weights(reference, "steps", step, "weights_after_step", as: Double.self)
            for parameter in model.parameters {
                let error = relativeError(parameter.value.array.map(Double.init), expected[parameter.name]!.scalars)
                worst = max(worst, error)
                XCTAssertLessThan(error, tolerance, "\(parameter.name) after Adam step \(step + 1) in \(S.self)")
            }
            if reference == "adam" {
                let adam = model.optimizer as! Adam<S>
                let m: [String: Tensor<Double>] = fixture.weights("adam", "steps", step, "adam_m_after_step", as: Double.self)
                let v: [String: Tensor<Double>] = fixture.weights("adam", "steps", step, "adam_v_after_step", as: Double.self)
                for parameter in model.parameters {
                    let moments = adam.moments(of: parameter)
                    XCTAssertLessThan(relativeError(moments.m.map(Double.init), m[parameter.name]!.scalars), tolerance)
                    XCTAssertLessThan(relativeError(moments.v.map(Double.init), v[parameter.name]!.scalars), tolerance)
                }
            }
        }
        return worst
    }

    func testAdamStepsInDoubleMatchExactBetas() throws {
        let worst = try checkAdamSteps(Double.self, reference: "adam_exact_betas", tolerance: 1e-13)
        print("Keras parity, Adam (Double vs exact betas): largest relative error \(worst)")
    }

    func testAdamStepsInFloatMatchKeras() throws {
        let worst = try checkAdamSteps(Float.self, reference: "adam", tolerance: 1e-5)
        print("Keras parity, Adam (Float vs Keras): largest relative error \(worst)")
    }
}
