/// A fixed-size block of scalars at a stable address, owned by one object and freed with it.
///
/// Layers and optimisers keep their weights and workspaces in these so the training loop can
/// hand raw pointers to BLAS with no copy-on-write checks, exclusivity checks or allocation.
/// Not thread-safe; a buffer belongs to the model that made it.
public final class Buffer<Scalar: Numeric> {
    /// The first element. Valid for `count` elements for the buffer's lifetime.
    public let pointer: UnsafeMutablePointer<Scalar>
    /// The number of elements.
    public let count: Int

    /// A zero-filled buffer of `count` elements, aligned for 64-byte vector loads.
    public init(count: Int) {
        precondition(count >= 0, "buffer size \(count) is negative")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Scalar>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Scalar.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    /// A copy of the elements.
    public var array: [Scalar] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Overwrites every element from `values`.
    /// - Precondition: `values.count == count`.
    public func assign(_ values: [Scalar]) {
        precondition(values.count == count, "assigning \(values.count) values to a buffer of \(count)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }
}

/// A run of `count` scalars inside a `Buffer` (or a whole one): how a `Parameter` sees its share
/// of the model's parameter arena. Keeps the buffer alive.
public struct BufferSlice<Scalar: Numeric> {
    /// The first element, valid for `count` elements while the slice exists.
    public let pointer: UnsafeMutablePointer<Scalar>
    /// The number of elements.
    public let count: Int
    private let owner: Buffer<Scalar>

    /// Elements `offset ..< offset + count` of `buffer`.
    public init(_ buffer: Buffer<Scalar>, offset: Int = 0, count: Int? = nil) {
        let count = count ?? buffer.count - offset
        precondition(
            offset >= 0 && count >= 0 && offset + count <= buffer.count,
            "slice \(offset)..<\(offset + count) outside a buffer of \(buffer.count)")
        owner = buffer
        pointer = buffer.pointer + offset
        self.count = count
    }

    /// A copy of the elements.
    public var array: [Scalar] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Overwrites every element from `values`.
    /// - Precondition: `values.count == count`.
    public func assign(_ values: [Scalar]) {
        precondition(values.count == count, "assigning \(values.count) values to a slice of \(count)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }
}
