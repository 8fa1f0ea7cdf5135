import RNNKit

extension MPIWorld {
    /// Makes every rank's model start from rank 0's: its weights, and its optimiser's state and
    /// update count when given (a resumed run). Rank 0 draws (or loads) the weights; the others
    /// receive them, so the ranks agree bit for bit whatever each drew or read.
    public func broadcast<Scalar: BLASScalar>(model: Sequential<Scalar>, optimizer: (any StatefulOptimizer<Scalar>)? = nil) throws {
        try broadcast(model.arena.values.pointer, count: model.arena.count)
        guard let optimizer else { return }
        // The update count first: a rank whose optimiser has not run yet has no state to receive into.
        let iterations = try broadcast(UInt64(optimizer.iterations))
        let slots =
            optimizer.state.slots.count == optimizer.state.slotCount && optimizer.state.arena === model.arena
            ? optimizer.state.slots.map(\.array)
            : Array(repeating: [Scalar](repeating: 0, count: model.arena.count), count: optimizer.state.slotCount)
        try optimizer.restore(iterations: Int(iterations), slots: slots, for: model.arena)
        for slot in optimizer.state.slots { try broadcast(slot.pointer, count: slot.count) }
    }

    /// Checks that every rank's weights equal rank 0's bit for bit, through a 64-bit FNV-1a
    /// checksum of each rank's weight arena gathered on every rank.
    /// - Returns: the checksum they share.
    /// - Throws: `WeightDivergence`, naming the ranks that differ, on every rank.
    @discardableResult
    public func checkIdentical<Scalar: BLASScalar>(_ arena: ParameterArena<Scalar>) throws -> UInt64 {
        let sums = try allGather(Self.checksum(arena.values.pointer, count: arena.count))
        let differing = sums.indices.filter { sums[$0] != sums[0] }
        guard differing.isEmpty else { throw WeightDivergence(ranks: differing, checksums: sums) }
        return sums[0]
    }

    /// FNV-1a over the values' bytes: any flipped bit changes it.
    public static func checksum<Scalar>(_ values: UnsafePointer<Scalar>, count: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let bytes = UnsafeRawBufferPointer(start: values, count: count * MemoryLayout<Scalar>.stride)
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// The ranks' weights stopped being identical, which data-parallel training must never allow
/// (an MPI library whose all-reduce gives ranks different sums, or ranks started differently).
public struct WeightDivergence: Error, CustomStringConvertible {
    /// The ranks whose weights differ from rank 0's.
    public let ranks: [Int]
    /// Every rank's checksum, in rank order.
    public let checksums: [UInt64]

    /// One line naming the differing ranks and their checksums in hexadecimal, against rank 0's.
    public var description: String {
        let list = ranks.map { "rank \($0) (\(String(checksums[$0], radix: 16)))" }.joined(separator: ", ")
        return "the weights on \(list) differ from rank 0's (\(String(checksums[0], radix: 16))): the ranks diverged during training"
    }
}
