/// Combines what the parts of one training step computed (the gradient arenas of a batch's
/// shards, and their loss and accuracy figures) into the step's totals, which the optimiser then
/// applies. The seam where training spreads beyond one process: the in-process sum over worker
/// threads is the first implementation; one over MPI ranks adds an all-reduce after it.
public protocol GradientReducer<Scalar>: AnyObject {
    associatedtype Scalar: BLASScalar

    /// On entry, for each of the first `shards` entries, `gradients[i]` holds shard `i`'s gradient
    /// arena (`count` scalars each) and `figures[i]` its figures. On return `gradients[0]` holds
    /// the total gradient; the returned figures are the totals, `finite` false when the loss or
    /// any total gradient is NaN or infinite. (The arrays are the model's own, passed whole so
    /// that a step allocates nothing.)
    func reduce(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures
}

/// The sum over the shards of a batch computed in this process.
public final class InProcessReducer<Scalar: BLASScalar>: GradientReducer {
    public init() {}

    public func reduce(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures {
        precondition(shards >= 1 && shards <= gradients.count && shards <= figures.count, "\(shards) shards to reduce")
        // Index loops: `zip` and `reduce` from unspecialised generic code allocate on every step.
        var total = figures[0]
        for shard in stride(from: 1, to: shards, by: 1) {
            Scalar.add(gradients[shard], into: gradients[0], count: count)
            total += figures[shard]
        }
        total.finite = total.finite && total.lossSum.isFinite && Scalar.allFinite(gradients[0], count: count)
        return total
    }
}
