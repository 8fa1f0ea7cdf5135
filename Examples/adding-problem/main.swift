// The adding problem (Hochreiter & Schmidhuber, 1997), with sequences of varied length: each
// step is a pair (value in [0, 1), marker 0 or 1); two steps are marked, one in each half, and the
// target is the sum of their two values. Sequences have `steps / 2` to `steps` steps and are
// padded at the end with rows of −1, which Masking skips. Predicting the mean (1) scores a mean
// squared error of 1/6 ≈ 0.167; a model that solves the task scores near 0.
//
//     swift run -c release adding-problem [steps] [training steps]      (defaults: 50, 3000)
import Foundation
import RNNKit

/// A batch of `size` sequences, time-major `[steps, size, 2]`, and their targets `[size, 1]`.
func addingBatch(size: Int, steps: Int, generator: inout RandomGenerator) -> (x: [Float], y: [Float]) {
    var x = [Float](repeating: -1, count: steps * size * 2), y = [Float](repeating: 0, count: size)
    for b in 0..<size {
        let length = steps / 2 + Int(generator.next() % UInt64(steps / 2 + 1))
        let first = Int(generator.next() % UInt64(length / 2))
        let second = length / 2 + Int(generator.next() % UInt64(length - length / 2))
        for t in 0..<length {
            let value = Float(generator.nextUnitDouble()), marked = t == first || t == second
            x[(t * size + b) * 2] = value
            x[(t * size + b) * 2 + 1] = marked ? 1 : 0
            if marked { y[b] += value }
        }
    }
    return (x, y)
}

let arguments = CommandLine.arguments.dropFirst().map { Int($0) }
guard arguments.allSatisfy({ $0 != nil && $0! >= 4 }), arguments.count <= 2 else {
    FileHandle.standardError.write(Data("usage: adding-problem [steps ≥ 4] [training steps ≥ 4]\n".utf8))
    exit(64)
}
let steps = arguments.first.flatMap { $0 } ?? 50, trainingSteps = arguments.dropFirst().first.flatMap { $0 } ?? 3000
let batch = 64

let model = try Sequential<Float>(
    inputShape: .sequence(steps: steps, features: 2),
    layers: [
        Masking(maskValue: -1), // the padding after each sequence
        LSTM(units: 32),
        Dense(units: 1),
    ])
try model.compile(optimizer: Adam(learningRate: 0.003, clipping: .norm(1)), loss: MeanSquaredError())
model.workers = 2
BLASConfiguration.threads = 1

var generator = RandomGenerator(seed: 0)
let test = addingBatch(size: 1000, steps: steps, generator: &generator)
/// The mean squared error on 1,000 sequences never trained on.
func testError(_ model: Sequential<Float>, _ test: (x: [Float], y: [Float])) -> Double {
    var predictions = [Float](repeating: 0, count: test.y.count)
    model.predict(x: test.x, batchSize: test.y.count, into: &predictions)
    return zip(predictions, test.y).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(test.y.count)
}

let start = Date()
for step in 1...trainingSteps {
    let (x, y) = addingBatch(size: batch, steps: steps, generator: &generator)
    let metrics = try model.trainStep(x: x, targets: y, batchSize: batch)
    if step % (trainingSteps / 4) == 0 {
        print(String(format: "step %5d  training MSE %.4f  test MSE %.4f", step, metrics.loss, testError(model, test)))
    }
}
print(
    String(
        format: "adding problem, %d to %d steps: test MSE %.4f after %d steps of %d in %.1f s (predicting the mean: 0.167)",
        steps / 2, steps, testError(model, test), trainingSteps, batch, Date().timeIntervalSince(start)))
