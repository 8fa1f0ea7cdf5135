import Foundation
import Synchronization

/// Threads that run the shards of a batch with microseconds of hand-off latency.
///
/// A small model's batch takes tens of microseconds, about as long as Dispatch takes to wake a
/// thread, so each worker spins for a while on a generation counter before going to sleep on a
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
        /// `awake`, or the generation a sleeping worker has already run (so a caller wakes it only
        /// for the next one: a caller slow to reach its wake-up loop must not wake a worker that
        /// has since run that generation and gone back to sleep, which would leave a stale signal).
        static let awake = -1
        let state = Atomic<Int>(Slot.awake)
        let wake = DispatchSemaphore(value: 0)
    }

    private let shared = Shared()
    private let slots: [Slot]
    /// Busy-wait iterations before a waiting thread starts yielding its core (some tens of
    /// microseconds: longer than the gaps between the shards of a small model's batches).
    private static let hotSpins = 1 << 16
    /// Waiting iterations before a worker sleeps (about a millisecond more of yielding).
    private static let spinLimit = hotSpins + (1 << 11)

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
        wakeSleepers(for: shared.generation.add(1, ordering: .sequentiallyConsistent).newValue)
    }

    /// Signals every worker asleep after running the generation before `generation`.
    private func wakeSleepers(for generation: Int) {
        for slot in slots
        where slot.state.compareExchange(
            expected: generation - 1, desired: Slot.awake, ordering: .sequentiallyConsistent
        ).exchanged {
            slot.wake.signal()
        }
    }

    private static func work(index: Int, slot: Slot, shared: Shared) {
        var seen = 0
        while true {
            var spins = 0
            while shared.generation.load(ordering: .acquiring) == seen {
                spins += 1
                // Spin hot for a while, then let other threads have the core (more threads than
                // cores must still make progress), then sleep.
                if spins > hotSpins { sched_yield() }
                guard spins > spinLimit else { continue }
                slot.state.store(seen, ordering: .sequentiallyConsistent)
                if shared.generation.load(ordering: .sequentiallyConsistent) != seen,
                    slot.state.compareExchange(
                        expected: seen, desired: Slot.awake,
                        ordering: .sequentiallyConsistent
                    ).exchanged
                {
                    break // work came in before anyone saw us asleep
                }
                slot.wake.wait() // the caller saw us asleep and signals
                break
            }
            seen = shared.generation.load(ordering: .acquiring)
            if shared.stopping.load(ordering: .acquiring) { return }
            runJob(shared, index)
            shared.pending.subtract(1, ordering: .releasing)
        }
    }

    /// Calls this worker's shard. A function of its own, not inlined, so the worker's reference to
    /// the job is released before it reports done: `run` verifies (through
    /// `withoutActuallyEscaping`) that nothing holds the caller's closure once it returns.
    @inline(never)
    private static func runJob(_ shared: Shared, _ index: Int) {
        guard index < shared.shards, let job = shared.job else { return }
        job(index)
    }

    /// Runs `body(0)` … `body(count − 1)` at once, `body(0)` on the calling thread, and returns
    /// when all have finished. `count` must not exceed the pool's threads + 1.
    ///
    /// Handing `body` to the workers costs one small allocation (the context
    /// `withoutActuallyEscaping` makes), the only one in a sharded training step.
    func run(_ count: Int, _ body: (Int) -> Void) {
        precondition(count >= 1 && count <= slots.count + 1, "\(count) shards for a pool of \(slots.count + 1) threads")
        guard count > 1 else { return body(0) }
        withoutActuallyEscaping(body) { body in
            shared.job = body
            shared.shards = count
            shared.pending.store(slots.count, ordering: .releasing)
            wakeSleepers(for: shared.generation.add(1, ordering: .sequentiallyConsistent).newValue)
            body(0)
            var spins = 0
            while shared.pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > Self.hotSpins { sched_yield() }
            }
            shared.job = nil
        }
    }
}
