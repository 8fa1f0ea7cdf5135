import CMPI
import Foundation
@_spi(Kernels) import RNNKit

/// The processes of an MPI job (`MPI_COMM_WORLD`), and the few collective operations data-parallel
/// training needs. One per process: `MPIWorld.start()` initialises MPI once, `finish()` finalises it.
///
/// Every MPI call is made from the thread that started MPI (MPI_THREAD_FUNNELED): the model calls
/// its reducer from the thread that owns it, never from its worker threads.
///
/// Collective calls (`allReduceSum`, `broadcast`, `firstRank(where:)`, …) must be made by every
/// rank, in the same order, with the same counts, as MPI requires.
public final class MPIWorld: @unchecked Sendable {
    /// This process's rank, `0..<size`.
    public let rank: Int
    /// The number of processes in the job.
    public let size: Int
    /// Whether this process is rank 0, the one that prints and writes.
    public var isRoot: Bool { rank == 0 }

    private let communicator: MPI_Comm
    private nonisolated(unsafe) static var started: MPIWorld?

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        communicator = rnnkit_mpi_comm_world()
    }

    /// Whether this process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun`), read
    /// from the environment the launchers set; a process started on its own is not, and needs no
    /// MPI at all.
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { environment[$0] != nil }
    }

    /// How many ranks share this process's machine (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`), so
    /// that their threads can divide its cores; 1 when the launcher does not say.
    public static var ranksOnThisMachine: Int {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) }.map { max($0, 1) } ?? 1
    }

    /// Initialises MPI (once per process) and returns the job's world.
    /// - Throws: `MPIError` when MPI cannot start or cannot serve calls from the main thread.
    public static func start() throws -> MPIWorld {
        if let started { return started }
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        guard status == MPI_SUCCESS else { throw MPIError(call: "MPI_Init_thread", status: status) }
        guard provided >= Int32(MPI_THREAD_FUNNELED) else {
            throw MPIError(call: "MPI_Init_thread", message: "this MPI library cannot serve a threaded process (MPI_THREAD_FUNNELED)")
        }
        let world = rnnkit_mpi_comm_world()
        var rank: Int32 = 0, size: Int32 = 0
        try check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try check(MPI_Comm_size(world, &size), "MPI_Comm_size")
        let made = MPIWorld(rank: Int(rank), size: Int(size))
        started = made
        return made
    }

    /// Finalises MPI; every rank calls it once at a normal end (also after an error that every
    /// rank knows of).
    public func finish() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// Ends every rank of the job now with `code` (after an error only this rank knows of, which
    /// would otherwise leave the others waiting in a collective call).
    public func abort(code: Int32) -> Never {
        MPI_Abort(communicator, code)
        exit(code)
    }

    // MARK: Collectives

    /// MPI counts are `Int32`: larger buffers go in pieces of at most this many elements.
    static let largestCall = 1 << 30

    /// Sums `count` values across all ranks, in place; every rank ends with the same sums.
    public func allReduceSum<Scalar: BLASScalar>(_ values: UnsafeMutablePointer<Scalar>, count: Int) throws {
        let type = try Self.datatype(of: Scalar.self)
        try inPieces(count) { offset, piece in
            try Self.check(
                MPI_Allreduce(rnnkit_mpi_in_place(), values + offset, piece, type, rnnkit_mpi_sum(), communicator), "MPI_Allreduce")
        }
    }

    /// Sums `count` doubles across all ranks, in place.
    public func allReduceSum(_ values: UnsafeMutablePointer<Double>, count: Int) throws {
        try Self.check(
            MPI_Allreduce(rnnkit_mpi_in_place(), values, Int32(count), rnnkit_mpi_double(), rnnkit_mpi_sum(), communicator), "MPI_Allreduce"
        )
    }

    /// Copies rank `root`'s `count` values over every other rank's.
    public func broadcast<Scalar: BLASScalar>(_ values: UnsafeMutablePointer<Scalar>, count: Int, from root: Int = 0) throws {
        let type = try Self.datatype(of: Scalar.self)
        try inPieces(count) { offset, piece in
            try Self.check(MPI_Bcast(values + offset, piece, type, Int32(root), communicator), "MPI_Bcast")
        }
    }

    /// Rank `root`'s `value` on every rank.
    public func broadcast(_ value: UInt64, from root: Int = 0) throws -> UInt64 {
        var value = value
        try Self.check(MPI_Bcast(&value, 1, rnnkit_mpi_uint64(), Int32(root), communicator), "MPI_Bcast")
        return value
    }

    /// Every rank's `value`, in rank order, on every rank.
    public func allGather(_ value: UInt64) throws -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        try Self.check(MPI_Allgather(&mine, 1, rnnkit_mpi_uint64(), &all, 1, rnnkit_mpi_uint64(), communicator), "MPI_Allgather")
        return all
    }

    /// The lowest rank for which `condition` holds, on every rank; nil when it holds on none.
    /// How the ranks agree on a failure: each says whether it failed, and all learn who did first.
    public func firstRank(where condition: Bool) throws -> Int? {
        var candidate = Int32(condition ? rank : size)
        try Self.check(
            MPI_Allreduce(rnnkit_mpi_in_place(), &candidate, 1, rnnkit_mpi_int(), rnnkit_mpi_min(), communicator), "MPI_Allreduce")
        return candidate < Int32(size) ? Int(candidate) : nil
    }

    /// Whether `condition` holds on any rank, on every rank.
    public func any(_ condition: Bool) throws -> Bool { try firstRank(where: condition) != nil }

    /// Waits for every rank.
    public func barrier() throws { try Self.check(MPI_Barrier(communicator), "MPI_Barrier") }

    private func inPieces(_ count: Int, _ body: (Int, Int32) throws -> Void) throws {
        var offset = 0
        while offset < count {
            let piece = min(Self.largestCall, count - offset)
            try body(offset, Int32(piece))
            offset += piece
        }
    }

    static func datatype<Scalar: BLASScalar>(of type: Scalar.Type) throws -> MPI_Datatype {
        if type == Float.self { return rnnkit_mpi_float() }
        if type == Double.self { return rnnkit_mpi_double() }
        throw MPIError(call: "datatype", message: "no MPI datatype for \(type)")
    }

    static func check(_ status: Int32, _ call: String) throws {
        guard status == MPI_SUCCESS else { throw MPIError(call: call, status: status) }
    }
}

/// An MPI call failed.
public struct MPIError: Error, CustomStringConvertible {
    /// The MPI function that failed (`MPI_Allreduce`), or what RNNKit was doing when it found the problem.
    public let call: String
    /// Why: the MPI library's own error string, or RNNKit's sentence.
    public let message: String

    init(call: String, message: String) {
        self.call = call
        self.message = message
    }

    init(call: String, status: Int32) {
        var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(status, &text, &length)
        self.init(call: call, message: String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// `CALL failed: MESSAGE`.
    public var description: String { "\(call) failed: \(message)" }
}
