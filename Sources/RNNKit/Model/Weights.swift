extension Sequential {
    /// Every weight by its Keras path (`simple_rnn/kernel`, …), as tensors in Keras's layout.
    public var weights: [String: Tensor<Scalar>] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.tensor) })
    }

    /// Replaces every weight. The names and shapes must be exactly the model's: nothing
    /// missing, nothing extra.
    ///
    /// - Throws: `ModelError.weightsMismatch` listing every difference; the model is unchanged then.
    public func setWeights(_ newWeights: [String: Tensor<Scalar>]) throws {
        let differences = Self.differences(
            expected: parameters.map { ($0.name, $0.shape) },
            given: newWeights.mapValues(\.shape))
        guard differences.isEmpty else { throw ModelError.weightsMismatch(differences) }
        for parameter in parameters { parameter.value.assign(newWeights[parameter.name]!.scalars) }
    }

    /// What differs between the model's weights and a set offered for it, one line each.
    static func differences(expected: [(String, [Int])], given: [String: [Int]]) -> [String] {
        var lines: [String] = []
        for (name, shape) in expected {
            if let other = given[name] {
                if other != shape { lines.append("\(name): the model has shape \(shape), the file has \(other)") }
            } else {
                lines.append("\(name): missing (the model has shape \(shape))")
            }
        }
        let known = Set(expected.map(\.0))
        for name in given.keys.sorted() where !known.contains(name) {
            lines.append("\(name): not a weight of this model (shape \(given[name]!))")
        }
        return lines
    }
}
