extension Parameter {
    /// The central-difference estimate of d loss / d value, one value at a time:
    /// `(loss(v + h) − loss(v − h)) / (2h)`, each value restored after. A check for the gradients a
    /// layer or loss of your own writes: compute them (`computeGradients`), then compare
    /// `gradient` with this. Run it on a `Sequential<Double>`, where the estimate can be tight
    /// (about 1e-8 relative with the default step); in `Float` the roundings of the loss swamp it.
    ///
    /// - Parameters: `loss` the loss as a function of the current values (it is called twice per
    ///   value, so it must not move the weights: no optimiser step); `h` the step.
    public func centralDifferences(of loss: () throws -> Double, step h: Double = 1e-5) rethrows -> [Double] {
        precondition(h > 0, "the step must be positive, got \(h)")
        let values = value.pointer
        return try (0..<count).map { i in
            let saved = values[i]
            // The step as the scalar type rounds it, so the quotient uses the step actually taken.
            let upper = saved + Scalar(h), lower = saved - Scalar(h)
            values[i] = upper
            let plus = try loss()
            values[i] = lower
            let minus = try loss()
            values[i] = saved
            return (plus - minus) / (Double(upper) - Double(lower))
        }
    }
}
