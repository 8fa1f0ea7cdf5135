@_spi(Kernels) import RNNKit

/// Data-parallel training across the ranks of an MPI job: each step, every rank sums its worker
/// threads' shards, then one in-place `MPI_Allreduce` over the whole gradient arena sums the ranks,
/// and a second, of nine doubles, sums the batch figures. Every rank then holds the same gradient
/// and applies the same optimiser step, so the weights stay identical without being sent.
///
/// Set it as a model's `reducer` on every rank, after making the weights equal
/// (`MPIWorld.broadcast(model:optimizer:)`). The model then gives each rank its contiguous share
/// of every batch (global-batch semantics: `fit` with batch size 32 on N ranks still trains on 32
/// samples a step), and `evaluate` its share of the data.
///
/// Used from the thread that started MPI only (hence `@unchecked Sendable`: a `fit` stop closure
/// may hold it, and is called on that thread).
public final class MPIReducer<Scalar: BLASScalar>: GradientReducer, @unchecked Sendable {
    /// The job whose ranks it sums over.
    public let world: MPIWorld
    /// Asked at each reduction whether this rank wants training to stop (a Ctrl-C or SIGTERM it
    /// received); the answers travel in the figures' all-reduce, so stopping costs no extra call.
    public var localStopRequested: (() -> Bool)?
    /// Whether any rank asked to stop at the last reduction: the same on every rank, so all stop
    /// after the same step (use it as `FitOptions.stopRequested`).
    public private(set) var stopRequestedOnAnyRank = false
    /// The figures as doubles, for their all-reduce: kept so that a step allocates nothing.
    private let figureBuffer = UnsafeMutablePointer<Double>.allocate(capacity: 9)

    /// A reducer over every rank of `world`; every rank makes one and sets it as its model's `reducer`.
    public init(world: MPIWorld) {
        self.world = world
    }

    deinit { figureBuffer.deallocate() }

    /// The ranks of the job (`world.size`), which share each batch.
    public var processCount: Int { world.size }
    /// This rank (`world.rank`), which takes share `processIndex` of each batch.
    public var processIndex: Int { world.rank }

    /// Sums this rank's shards into `gradients[0]`, then every rank's in one all-reduce, and the figures in another;
    /// `finite` is judged on the sums, so every rank reaches the same verdict. A collective call.
    /// - Throws: `MPIError` when an all-reduce fails.
    public func reduce(gradients: [UnsafeMutablePointer<Scalar>], figures: [BatchFigures], shards: Int, count: Int) throws -> BatchFigures {
        let local = InProcessReducer.sumShards(gradients: gradients, figures: figures, shards: shards, count: count)
        try world.allReduceSum(gradients[0], count: count)
        var total = try reduce(figures: local)
        // After the sum, so every rank reaches the same verdict on the same numbers.
        total.finite = total.finite && total.lossSum.isFinite && Scalar.allFinite(gradients[0], count: count)
        return total
    }

    /// The figures summed over every rank (one all-reduce), carrying each rank's stop request with them.
    /// A collective call.
    /// - Throws: `MPIError` when the all-reduce fails.
    public func reduce(figures: BatchFigures) throws -> BatchFigures {
        figureBuffer[0] = figures.lossSum
        figureBuffer[1] = figures.correct
        figureBuffer[2] = figures.counted
        figureBuffer[3] = Double(figures.samples)
        figureBuffer[4] = figures.finite ? 0 : 1
        figureBuffer[5] = Double(figures.invalidLabels)
        figureBuffer[6] = localStopRequested?() == true ? 1 : 0
        figureBuffer[7] = figures.masked ? 1 : 0
        figureBuffer[8] = figures.countedRows
        try world.allReduceSum(figureBuffer, count: 9)
        stopRequestedOnAnyRank = figureBuffer[6] > 0
        var total = BatchFigures(
            lossSum: figureBuffer[0], correct: figureBuffer[1], counted: figureBuffer[2],
            samples: Int(figureBuffer[3]), finite: figureBuffer[4] == 0)
        total.invalidLabels = Int(figureBuffer[5])
        total.masked = figureBuffer[7] > 0
        total.countedRows = figureBuffer[8]
        return total
    }
}
