// What the cells' fused `Float` backward steps share: 8-lane loads and stores with a
// scalar-padded tail (the forward steps, which need tanh, are in C on the one tanh). The fused steps take one pass over each row where the
// generic steps take several (one per activation block, then the state update) and evaluate
// derivatives through a switch per element.

/// 8-lane helpers for the fused steps.
enum Lanes {
    typealias V = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// Runs `body` on lane groups of 8 starting at `j`, then on the tail as lanes of a vector padded
    /// from scalars (so the same vector formula serves the tail, with no second scalar copy of it).
    @inline(__always)
    static func forEachGroup(_ count: Int, _ body: (Int, Int) -> Void) {
        var j = 0
        while j + 8 <= count {
            body(j, 8)
            j += 8
        }
        if j < count { body(j, count - j) }
    }

    /// Loads `n ≤ 8` lanes (the rest zero) and stores them back.
    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ n: Int) -> V {
        if n == 8 { return load(p) }
        var v = V(repeating: 0)
        for lane in 0..<n { v[lane] = p[lane] }
        return v
    }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 8 { return store(v, p) }
        for lane in 0..<n { p[lane] = v[lane] }
    }
}

/// The same memory seen as `Float`s, for the fused steps (only reached when `S` is `Float`).
@inline(__always)
func floats<S>(_ pointer: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Float.self)
}

@inline(__always)
func floats<S>(_ pointer: UnsafePointer<S>) -> UnsafePointer<Float> {
    UnsafeRawPointer(pointer).assumingMemoryBound(to: Float.self)
}

extension BLASScalar {
    /// Whether the fused `Float` steps apply (the comparison folds away in specialised code).
    @inline(__always)
    static func usesFusedSteps(_ activation: Activation, _ recurrentActivation: Activation) -> Bool {
        Self.self == Float.self && activation == .tanh && recurrentActivation == .sigmoid
    }
}
