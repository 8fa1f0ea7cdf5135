import Dispatch
import Foundation
import Synchronization

/// Ctrl-C (SIGINT) and SIGTERM during a run: the first asks training to stop after the current
/// step, so the outputs of what was trained are written; a second exits at once with status 130.
///
/// `install` and `uninstall` belong to the trainer's thread; the handlers touch only the counter.
final class Interruption: @unchecked Sendable {
    private let count = Atomic<Int>(0)
    private var sources: [any DispatchSourceSignal] = []

    /// Whether a signal has arrived.
    var requested: Bool { count.load(ordering: .acquiring) > 0 }

    /// Replaces the default handlers (which end the process at once) with ours.
    func install(say: @escaping @Sendable (String) -> Void) {
        let made: [any DispatchSourceSignal] = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                if count.add(1, ordering: .acquiringAndReleasing).newValue >= 2 {
                    say("\ntrain-blas: interrupted again: exiting now\n")
                    _exit(130)
                }
                say("\ntrain-blas: interrupted: finishing the current step and writing what was trained so far (again to quit at once)\n")
            }
            source.resume()
            return source
        }
        sources = made
    }

    /// Restores the default handlers.
    func uninstall() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
