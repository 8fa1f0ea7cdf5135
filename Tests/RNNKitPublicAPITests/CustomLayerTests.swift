import RNNKit
import XCTest

/// A layer written outside the module, with only the public API (no `@testable`): a learned
/// per-feature scale and shift, `y = x ⊙ s + t`, on vectors or on every step of a sequence.
final class ScaleAndShift<Scalar: BLASScalar>: Layer {
    var typeName: String { "ScaleAndShift" }
    var nameStem: String { "scale_and_shift" }
    var name = "scale_and_shift" {
        didSet { for (parameter, leaf) in zip(parameters, ["scale", "shift"]) { parameter.name = "\(name)/\(leaf)" } }
    }
    private(set) var parameters: [Parameter<Scalar>] = []
    private(set) var outputShape: FeatureShape = .vector(features: 0)
    private var output = Buffer<Scalar>(count: 0), inputGradient = Buffer<Scalar>(count: 0)
    private var lastInput: UnsafePointer<Scalar>?

    private var features: Int { outputShape.features }
    private var rowsPerSample: Int { if case .sequence(let steps, _) = outputShape { steps } else { 1 } }

    func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        parameters = [Parameter(name: "scale", shape: [inputShape.features]), Parameter(name: "shift", shape: [inputShape.features])]
        Initializer.uniform(lower: 0.5, upper: 1.5).fill(parameters[0].value, shape: [inputShape.features], generator: &generator)
        outputShape = inputShape
        let named = name
        name = named // names the new parameters after the layer
        return inputShape
    }

    func replica() -> any Layer<Scalar> {
        let copy = ScaleAndShift<Scalar>()
        copy.outputShape = outputShape
        copy.parameters = parameters.map { Parameter(sharingValuesOf: $0) }
        return copy
    }

    func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        output = Buffer(count: batchCapacity * outputShape.scalarCount)
        inputGradient = Buffer(count: batchCapacity * outputShape.scalarCount)
    }

    func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let (s, t) = (parameters[0].value.pointer, parameters[1].value.pointer)
        for row in 0..<(rowsPerSample * batchSize) {
            for j in 0..<features { output.pointer[row * features + j] = input[row * features + j] * s[j] + t[j] }
        }
        lastInput = input
        return UnsafePointer(output.pointer)
    }

    func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        let (s, ds, dt) = (parameters[0].value.pointer, parameters[0].gradient.pointer, parameters[1].gradient.pointer)
        parameters[0].gradient.zero()
        parameters[1].gradient.zero()
        for row in 0..<(rowsPerSample * batchSize) {
            for j in 0..<features {
                let g = outputGradient[row * features + j]
                ds[j] += g * lastInput![row * features + j]
                dt[j] += g
                inputGradient.pointer[row * features + j] = g * s[j]
            }
        }
        return UnsafePointer(inputGradient.pointer)
    }
}

final class CustomLayerTests: XCTestCase {
    /// The user's layer sits between built-in ones, trains (its gradients agree with finite
    /// differences, in Double) and appears in the summary.
    func testUserLayerTrainsInsideAModel() throws {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 4, features: 3),
            layers: [ScaleAndShift(), LSTM(units: 5), ScaleAndShift(), Dense(units: 3, activation: .softmax)], seed: 1)
        try model.compile(optimizer: SGD(learningRate: 0.1))
        XCTAssertTrue(model.summary().contains("scale_and_shift_1 (ScaleAndShift)"), model.summary())
        XCTAssertEqual(model.parameters.map(\.name).first, "scale_and_shift/scale")

        var generator = RandomGenerator(seed: 2)
        let x = (0..<(4 * 6 * 3)).map { _ in generator.nextUnitDouble() }
        let labels: [Int32] = [0, 1, 2, 0, 1, 2]
        func loss() throws -> Double {
            try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { try model.computeGradients(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 6) }
            }.loss
        }
        _ = try loss()
        try assertGradientsMatchCentralDifferences(model, loss: loss, accuracy: 1e-7)
        let before = try loss()
        for _ in 0..<20 {
            _ = try x.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { try model.trainStep(x: x.baseAddress!, labels: $0.baseAddress!, batchSize: 6) }
            }
        }
        XCTAssertLessThan(try loss(), before, "training with a user's layer lowers the loss")
    }
}
