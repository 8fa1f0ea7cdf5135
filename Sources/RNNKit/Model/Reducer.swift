/// Combines what the parts of one training step computed (the gradient arenas of a batch's
/// shards, and their loss and accuracy figures) into the step's totals, which the optimiser then
/// applies. The seam where training spreads beyond one process: the in-process sum over worker
/// threads is the first implementation; `RNNKitMPI`'s sum over MPI ranks adds an all-reduce after it.
///
/// A reducer that spans several processes (`processCount > 1`) gives the model global-batch
/// semantics: every process is handed the same batch (the same sample indices, or the same raw
/// batch), takes its contiguous share of it (process `processIndex` of `processCount`, split as
/// the worker threads split a share), and the reduced gradient is that of the whole batch's mean
/// loss, so every process applies the same optimiser step.
public protocol GradientReducer<Scalar>: AnyObject {
    /// The scalar type of the gradients it sums: the model's.
    associatedtype Scalar: BLASScalar

    /// How many processes share each batch (1 for the in-process sum).
    var processCount: Int { get }
    /// This process's place among them, `0..<processCount`.
    var processIndex: Int { get }

    /// On entry, for each of the first `shards` entries, `gradients[i]` holds shard `i`'s gradient
    /// arena (`count` scalars each) and `figures[i]` its figures. On return `gradients[0]` holds
    /// the total gradient over every shard of every process; the returned figures are the totals,
    /// `finite` false when the loss or any total gradient is NaN or infinite. (The arrays are the
    /// model's own, passed whole so that a step allocates nothing.)
    func reduce(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures

    /// The totals over every process of figures computed without gradients (evaluation).
    func reduce(figures: BatchFigures) throws -> BatchFigures
}

extension GradientReducer {
    public var processCount: Int { 1 }
    public var processIndex: Int { 0 }
    public func reduce(figures: BatchFigures) throws -> BatchFigures { figures }
}

/// The sum over the shards of a batch computed in this process.
public final class InProcessReducer<Scalar: BLASScalar>: GradientReducer {
    /// The reducer every model starts with.
    public init() {}

    @_specialize(where Scalar == Float)
    public func reduce(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures {
        var total = Self.sumShards(gradients: gradients, figures: figures, shards: shards, count: count)
        total.finite = total.finite && total.lossSum.isFinite && Scalar.allFinite(gradients[0], count: count)
        return total
    }

    /// Adds shards `1..<shards` of `gradients` into `gradients[0]` and returns the figures' sum,
    /// without the finiteness check (which a reducer across processes makes after its all-reduce).
    public static func sumShards(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int)
        -> BatchFigures
    {
        precondition(shards >= 1 && shards <= gradients.count && shards <= figures.count, "\(shards) shards to reduce")
        // Index loops: `zip` and `reduce` from unspecialised generic code allocate on every step.
        var total = figures[0]
        for shard in stride(from: 1, to: shards, by: 1) {
            Scalar.add(gradients[shard], into: gradients[0], count: count)
            total += figures[shard]
        }
        return total
    }
}
