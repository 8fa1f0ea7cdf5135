import Foundation
import XCTest
@testable import RNNKit

/// Random values in [-scale, scale], reproducible from `seed`.
func randomValues<S: BLASScalar>(_ count: Int, seed: UInt64, scale: Double = 1, as _: S.Type = S.self) -> [S] {
    var generator = RandomGenerator(seed: seed)
    return (0..<count).map { _ in S(scale * (2 * generator.nextUnitDouble() - 1)) }
}

/// `max |a − b| / max |b|`: the error relative to the reference's magnitude.
func relativeError<S: BLASScalar>(_ a: [S], _ b: [S]) -> Double {
    precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
    var difference = 0.0, magnitude = 0.0
    for (x, y) in zip(a, b) {
        difference = max(difference, abs(Double(x) - Double(y)))
        magnitude = max(magnitude, abs(Double(y)))
    }
    return magnitude == 0 ? difference : difference / magnitude
}

/// A buffer holding `values`.
func buffer<S: BLASScalar>(_ values: [S]) -> Buffer<S> {
    let b = Buffer<S>(count: values.count)
    b.assign(values)
    return b
}

/// Builds a `Sequential` from layer factories; fails the test on a build error.
func makeModel<S: BLASScalar>(
    _ input: FeatureShape, _ layers: [any Layer<S>], seed: UInt64 = 0, backend: any Backend = BLASBackend()
) throws -> Sequential<S> {
    let model = try Sequential<S>(inputShape: input, layers: layers, seed: seed, backend: backend)
    try model.compile(optimizer: SGD<S>(learningRate: 0.1))
    return model
}

/// A random time-major batch `[T, B, D]` and labels, for a model's input shape.
func randomBatch<S: BLASScalar>(steps: Int, batch: Int, features: Int, classes: Int, seed: UInt64, as _: S.Type = S.self)
    -> (x: [S], labels: [Int32])
{
    var generator = RandomGenerator(seed: seed &+ 99)
    let labels = (0..<batch).map { _ in Int32(generator.next() % UInt64(classes)) }
    return (randomValues(steps * batch * features, seed: seed), labels)
}

extension Sequential {
    /// Mean loss and gradients for a raw batch (copies), for tests.
    func lossAndGradients(x: [Scalar], labels: [Int32]) -> (loss: Double, gradients: [String: [Scalar]]) {
        let metrics = x.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { labels in
                try! computeGradients(x: x.baseAddress!, labels: labels.baseAddress!, batchSize: labels.count / outputShape.steps)
            }
        }
        return (metrics.loss, Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.gradient.array) }))
    }

    /// Mean loss only, for finite differences.
    func loss(x: [Scalar], labels: [Int32]) -> Double { lossAndGradients(x: x, labels: labels).loss }
}

/// Reads the Keras fixture of Model A.
struct KerasFixture {
    let root: [String: Any]

    init() throws {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: "keras_model_a", withExtension: "json", subdirectory: "Fixtures"),
            "the Keras fixture is missing from the test bundle")
        root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// The value at a path of keys (and array indices), flattened to Doubles in row-major order.
    func values(_ path: Any...) -> [Double] {
        var node: Any = root
        for key in path {
            if let key = key as? String { node = (node as! [String: Any])[key]! } else { node = (node as! [Any])[key as! Int] }
        }
        return Self.flatten(node)
    }

    static func flatten(_ node: Any) -> [Double] {
        if let array = node as? [Any] { return array.flatMap(flatten) }
        if let number = node as? NSNumber { return [number.doubleValue] }
        fatalError("not numeric: \(node)")
    }

    static let weightNames = ["simple_rnn/kernel", "simple_rnn/recurrent_kernel", "simple_rnn/bias", "dense/kernel", "dense/bias"]
    static let weightShapes = [[28, 10], [10, 10], [10], [10, 10], [10]]

    /// The weights under `path` (e.g. "weights"), as tensors for `setWeights`.
    func weights<S: BLASScalar>(_ path: Any..., as _: S.Type) -> [String: Tensor<S>] {
        var result: [String: Tensor<S>] = [:]
        for (name, shape) in zip(Self.weightNames, Self.weightShapes) {
            var node: Any = root
            for key in path {
                if let key = key as? String { node = (node as! [String: Any])[key]! } else { node = (node as! [Any])[key as! Int] }
            }
            let values = Self.flatten((node as! [String: Any])[name]!)
            result[name] = Tensor(shape: shape, scalars: values.map { S($0) })
        }
        return result
    }

    /// The input batch, time-major `[28, 8, 28]`, and its labels.
    func input<S: BLASScalar>(as _: S.Type) -> (x: [S], labels: [Int32]) {
        let batchMajor = values("input", "x") // [8, 28, 28]
        var x = [S](repeating: 0, count: batchMajor.count)
        for b in 0..<8 { for t in 0..<28 { for i in 0..<28 { x[(t * 8 + b) * 28 + i] = S(batchMajor[(b * 28 + t) * 28 + i]) } } }
        return (x, values("input", "labels").map { Int32($0) })
    }
}

/// Runs `body` once on every instruction set this CPU runs (`SmallGEMM.availableInstructionSets`,
/// best first), the `Float` kernels forced to it, then puts back the set that ran before.
func onEveryInstructionSet(_ body: (String) throws -> Void) rethrows {
    let before = SmallGEMM.instructionSet
    defer { SmallGEMM.force(before) }
    for isa in SmallGEMM.availableInstructionSets {
        XCTAssertTrue(SmallGEMM.force(isa), "force(\(isa)) on a set the CPU runs")
        XCTAssertEqual(SmallGEMM.instructionSet, isa)
        try body(isa)
    }
}
