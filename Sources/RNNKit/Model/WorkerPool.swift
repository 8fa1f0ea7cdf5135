import Foundation
import Synchronization

/// Threads that run the shards of a batch with microseconds of hand-off latency.
///
/// A small model's batch takes tens of microseconds, about as long as Dispatch takes to wake a
/// thread, so each worker spins for a while on a job counter before going to sleep on a
/// semaphore. While batches keep coming, the hand-off is an atomic increment; an idle pool costs
/// nothing once its workers sleep. The caller runs shard 0 itself.
final class WorkerPool: @unchecked Sendable {
    /// The state the threads share; the pool object itself is not captured by them, so its
    /// `deinit` can stop them.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        // Written by the caller before `generation` is bumped, read by workers after they see the bump.
        var job: ((Int) -> Void)?
        var shards = 0
    }

    private final class Slot: @unchecked Sendable {
        static let awake = 0, sleeping = 1
        let state = Atomic<Int>(Slot.awake)
        let wake = DispatchSemaphore(value: 0)
    }

    private let shared = Shared()
    private let slots: [Slot]
    /// Spins before a worker sleeps (about a millisecond).
    private static let spinLimit = 1 << 20

    /// A pool that runs up to `threads + 1` shards at once (the caller's thread included).
    init(threads: Int) {
        slots = (0..<threads).map { _ in Slot() }
        for (index, slot) in slots.enumerated() {
            let shared = self.shared
            let thread = Thread { WorkerPool.work(index: index + 1, slot: slot, shared: shared) }
            thread.name = "rnnkit-worker-\(index + 1)"
            thread.start()
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .sequentiallyConsistent)
        shared.generation.add(1, ordering: .sequentiallyConsistent)
        wakeSleepers()
    }

    private func wakeSleepers() {
        for slot in slots where slot.state.compareExchange(
            expected: Slot.sleeping, desired: Slot.awake, ordering: .sequentiallyConsistent).exchanged {
            slot.wake.signal()
        }
    }

    private static func work(index: Int, slot: Slot, shared: Shared) {
        var seen = 0
        while true {
            var spins = 0
            while shared.generation.load(ordering: .acquiring) == seen {
                spins += 1
                guard spins > spinLimit else { continue }
                slot.state.store(Slot.sleeping, ordering: .sequentiallyConsistent)
                if shared.generation.load(ordering: .sequentiallyConsistent) != seen,
                   slot.state.compareExchange(expected: Slot.sleeping, desired: Slot.awake,
                                              ordering: .sequentiallyConsistent).exchanged {
                    break // work came in before anyone saw us asleep
                }
                slot.wake.wait() // the caller saw us asleep and signals
                break
            }
            seen = shared.generation.load(ordering: .acquiring)
            if shared.stopping.load(ordering: .acquiring) { return }
            if index < shared.shards { shared.job?(index) }
            shared.pending.subtract(1, ordering: .releasing)
        }
    }

    /// Runs `body(0)` … `body(count − 1)` at once, `body(0)` on the calling thread, and returns
    /// when all have finished. `count` must not exceed the pool's threads + 1.
    func run(_ count: Int, _ body: (Int) -> Void) {
        precondition(count >= 1 && count <= slots.count + 1, "\(count) shards for a pool of \(slots.count + 1) threads")
        guard count > 1 else { return body(0) }
        withoutActuallyEscaping(body) { body in
            shared.job = body
            shared.shards = count
            shared.pending.store(slots.count, ordering: .releasing)
            shared.generation.add(1, ordering: .sequentiallyConsistent)
            wakeSleepers()
            body(0)
            while shared.pending.load(ordering: .acquiring) > 0 {}
            shared.job = nil
        }
    }
}
