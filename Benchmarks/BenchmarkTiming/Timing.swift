import Foundation

/// Seconds on the monotonic clock.
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// The median of some times.
public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Times `body` (one batch) as a median of `samples` repetitions, after `warmUp` untimed calls.
/// Each repetition runs enough calls to last at least `minimumSample` seconds, so fast bodies are
/// not timed at the clock's resolution; a slow body gets fewer repetitions, never fewer than one,
/// once `budget` seconds are spent.
public func timePerCall(samples: Int, warmUp: Int = 2, minimumSample: Double = 0.02, budget: Double, _ body: () -> Void) -> (
    seconds: Double, calls: Int
) {
    for _ in 0..<warmUp { body() }
    let probeStart = now()
    body()
    let once = max(now() - probeStart, 1e-9)
    // A call long enough to be a sample on its own counts as the first one.
    var times: [Double] = once >= minimumSample ? [once] : []
    let callsPerSample = max(1, Int(minimumSample / once))
    var calls = 1
    let started = now()
    while times.count < samples, once < budget {
        let start = now()
        for _ in 0..<callsPerSample { body() }
        times.append((now() - start) / Double(callsPerSample))
        calls += callsPerSample
        if now() - started + once > budget { break }
    }
    return (median(times.isEmpty ? [once] : times), calls)
}
