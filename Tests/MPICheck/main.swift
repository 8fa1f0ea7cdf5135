// rnnkit-mpi-check: RNNKitMPI's collectives and reducer, checked on every rank of a real MPI job.
// Run by `MPITests` as `mpirun -np N rnnkit-mpi-check`; prints one line per check from rank 0
// and exits 1 on any rank whose check fails (mpirun then ends the job with that status).
import Foundation
import RNNKit
import RNNKitMPI

let world = try MPIWorld.start()
var failures = 0

@MainActor func check(_ condition: Bool, _ what: String) {
    if !condition {
        FileHandle.standardError.write(Data("rnnkit-mpi-check: rank \(world.rank): FAILED: \(what)\n".utf8))
        failures += 1
    } else if world.isRoot {
        print("ok: \(what)")
    }
}

// All-reduce: rank r contributes r + 1 + i/8 at index i; the sums are known exactly.
var values = (0..<1000).map { Float(world.rank + 1) + Float($0) / 8 }
try world.allReduceSum(&values, count: values.count)
let ranks = Float(world.size)
check(
    values.indices.allSatisfy { values[$0] == ranks * (ranks + 1) / 2 + ranks * Float($0) / 8 },
    "all-reduce sums \(values.count) floats over \(world.size) ranks exactly")

// Broadcast: every rank ends with rank 0's values.
var mine = (0..<7).map { Double(world.rank * 100 + $0) }
try world.broadcast(&mine, count: mine.count)
check(mine == (0..<7).map(Double.init), "broadcast gives every rank rank 0's values")

// Agreement on a failure: the lowest failing rank, or none.
check(try world.firstRank(where: false) == nil, "no rank failed: firstRank is nil")
check(try world.firstRank(where: world.rank == world.size - 1) == world.size - 1, "the last rank's failure is seen by all")
check(try world.firstRank(where: world.rank >= 1) == 1, "the lowest of several failing ranks is chosen")

// Global-batch semantics through the reducer: each rank computes its share of the same batch;
// the reduced gradient and figures equal one process's over the whole batch. Batches of 5 and 2
// (fewer samples than 3 ranks: a rank with an empty share still takes part), in Double.
func makeModel(seed: UInt64) throws -> Sequential<Double> {
    let model = try Sequential<Double>(
        inputShape: .sequence(steps: 4, features: 3),
        layers: [LSTM<Double>(units: 5), Dense<Double>(units: 3, activation: .softmax)], seed: seed)
    try model.compile(optimizer: Adam<Double>())
    return model
}
for batch in [5, 2] {
    let x = (0..<(4 * batch * 3)).map { Double(($0 * 37) % 11) / 11 - 0.5 }
    let labels = (0..<batch).map { Int32($0 % 3) }
    // Each rank draws different weights (its own seed); the broadcast must make them rank 0's.
    let together = try makeModel(seed: UInt64(world.rank))
    try world.broadcast(model: together, optimizer: together.optimizer as? any StatefulOptimizer<Double>)
    together.workers = 2
    together.reducer = MPIReducer<Double>(world: world)
    let alone = try makeModel(seed: 0)
    let reference = try alone.computeGradients(x: x, labels: labels, batchSize: batch)
    let shared = try together.computeGradients(x: x, labels: labels, batchSize: batch)
    var largest = 0.0
    for i in 0..<alone.arena.count {
        largest = max(largest, abs(alone.arena.gradients.pointer[i] - together.arena.gradients.pointer[i]))
    }
    check(largest < 1e-14, "batch of \(batch) over \(world.size) ranks × 2 workers: gradient within \(largest) of one process's")
    check(
        shared.samples == batch && abs(shared.loss - reference.loss) < 1e-14 && shared.accuracy == reference.accuracy,
        "batch of \(batch): loss and accuracy reduced over the ranks equal one process's")
    // One optimiser step on every rank: the weights stay identical.
    try together.trainStep(x: x, labels: labels, batchSize: batch)
    check((try? world.checkIdentical(together.arena)) != nil, "batch of \(batch): after a step every rank's weights are identical")
}

// A loss over masked steps (per-sample lengths reaching a sequence output) is the mean over the
// steps kept in the whole batch, not per rank: the ranks' sums and counts are reduced first.
do {
    let batch = 5
    let lengths: [Int32] = [4, 1, 3, 2, 4]
    let x = (0..<(4 * batch * 3)).map { Double(($0 * 29) % 13) / 13 - 0.5 }
    let labels = (0..<(4 * batch)).map { Int32(($0 * 7) % 3) }
    func sequenceModel(seed: UInt64) throws -> Sequential<Double> {
        let model = try Sequential<Double>(
            inputShape: .sequence(steps: 4, features: 3),
            layers: [GRU<Double>(units: 4, returnSequences: true), Dense<Double>(units: 3, activation: .softmax)],
            seed: seed)
        try model.compile(optimizer: Adam<Double>(), loss: SparseCategoricalCrossentropy())
        return model
    }
    let together = try sequenceModel(seed: UInt64(world.rank))
    try world.broadcast(model: together, optimizer: together.optimizer as? any StatefulOptimizer<Double>)
    together.workers = 2
    together.reducer = MPIReducer<Double>(world: world)
    let alone = try sequenceModel(seed: 0)
    let reference = try alone.computeGradients(x: x, labels: labels, lengths: lengths, batchSize: batch)
    let shared = try together.computeGradients(x: x, labels: labels, lengths: lengths, batchSize: batch)
    var largest = 0.0
    for i in 0..<alone.arena.count {
        largest = max(largest, abs(alone.arena.gradients.pointer[i] - together.arena.gradients.pointer[i]))
    }
    check(largest < 1e-14, "masked sequence loss over \(world.size) ranks × 2 workers: gradient within \(largest) of one process's")
    check(
        abs(shared.loss - reference.loss) < 1e-14 && shared.accuracy == reference.accuracy,
        "masked sequence loss: loss and accuracy over the kept steps equal one process's")
}

// The checksum check notices one flipped bit on the last rank, and names that rank on every rank.
let model = try makeModel(seed: 1)
try world.broadcast(model: model)
if world.rank == world.size - 1 {
    model.arena.values.pointer[3] = model.arena.values.pointer[3].nextUp
}
do {
    try world.checkIdentical(model.arena)
    check(false, "a flipped bit on rank \(world.size - 1) is noticed")
} catch let divergence as WeightDivergence {
    check(divergence.ranks == [world.size - 1], "a flipped bit on rank \(world.size - 1) is noticed: \(divergence)")
}

let anyFailed = try world.firstRank(where: failures > 0)
world.finish()
exit(anyFailed == nil ? 0 : 1)
