extension Sequential {
    /// The model's outputs for the batch `x`, batch-major as Keras's `predict(x)` takes it:
    /// `[batch, steps, features]` for a model that reads sequences (`[batch, features]` for one
    /// that reads vectors). Returns `[batch, outputs]`, or `[batch, steps, outputs]` for a
    /// sequence output. Needs no `compile`.
    ///
    /// A model that is not stateful takes sequences of its `inputShape`'s steps, any batch (or
    /// its fixed `batchSize`). A stateful model takes its `batchSize` sequences of any number of
    /// steps, 1 or more: each call continues, row by row, the sequences the last batch or call
    /// ended in (whatever their lengths), until `resetStates()`, as Keras's stateful layers do.
    /// A piece of the model's own steps runs as a batch does; pieces of other lengths run the
    /// layers as a `StreamingSession` does, which takes the layers a session takes.
    ///
    /// - Parameter x: the batch, batch-major.
    /// - Returns: the outputs, batch-major.
    /// - Throws: `ModelError.invalidConfiguration` for a shape the model does not take, saying
    ///   what it takes; `ModelError.idOutOfRange` for an id outside the first `Embedding`'s table.
    public func predict(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        let shape = x.shape
        var count: Int? = 1
        for extent in shape {
            count = count.flatMap { extent >= 0 ? $0.multipliedReportingOverflow(by: extent) : (0, true) }
                .flatMap { $0.overflow ? nil : $0.partialValue }
        }
        guard x.scalars.count == count else {
            throw ModelError.invalidConfiguration("the tensor's shape \(shape) and its \(x.scalars.count) values differ")
        }
        switch inputShape {
        case .vector(let features):
            guard shape.count == 2, shape[0] >= 1, shape[1] == features else {
                throw ModelError.invalidConfiguration("the model takes [batch, \(features)], not \(shape)")
            }
            try checkFixedBatch(shape[0])
            return runWhole(x.scalars, batch: shape[0])
        case .sequence(let steps, let features):
            guard shape.count == 3, shape[0] >= 1, shape[1] >= 1, shape[2] == features else {
                throw ModelError.invalidConfiguration(
                    "the model takes [batch, \(isStateful ? "steps" : String(steps)), \(features)], not \(shape)")
            }
            try checkFixedBatch(shape[0])
            let (batch, length) = (shape[0], shape[1])
            if length == steps {
                let timeMajor = Self.timeMajor(x.scalars, batch: batch, steps: steps, features: features)
                try timeMajor.withUnsafeBufferPointer { try firstEmbedding?.checkIDs($0.baseAddress!, batchSize: batch) }
                return runWhole(timeMajor, batch: batch)
            }
            guard isStateful else {
                throw ModelError.invalidConfiguration(
                    "the model reads sequences of \(steps) steps, not \(length); only a stateful model takes pieces of other lengths")
            }
            // Passes as long as the piece needs, up to 32 steps (longer pieces run as several):
            // a session's buffers grow with its longest pass. A longer piece makes a new session,
            // which shares the same carried states.
            let longestPass = min(32, 1 << (Int.bitWidth - (length - 1).leadingZeroBitCount))
            if piecesSession.map({ $0.longestPass < longestPass }) ?? true {
                piecesSession = try StreamingSession(model: self, batchSize: batch, longestPass: longestPass, sharingModelStates: true)
            }
            return try piecesSession!.predict(x)
        }
    }

    /// `predict(x:batchSize:into:)` of the time-major `x`, as a batch-major tensor.
    private func runWhole(_ x: [Scalar], batch: Int) -> Tensor<Scalar> {
        let shape: [Int] =
            switch outputShape {
            case .vector(let features): [batch, features]
            case .sequence(let steps, let features): [batch, steps, features]
            }
        var output = [Scalar](repeating: 0, count: batch * outputShape.scalarCount)
        x.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { predict(x: x.baseAddress!, batchSize: batch, into: $0.baseAddress!) }
        }
        return Tensor(shape: shape, scalars: output)
    }

    /// `[B, T, F]` batch-major as `[T, B, F]` time-major.
    private static func timeMajor(_ x: [Scalar], batch: Int, steps: Int, features: Int) -> [Scalar] {
        var result = [Scalar](repeating: 0, count: x.count)
        for b in 0..<batch {
            for t in 0..<steps {
                for f in 0..<features { result[(t * batch + b) * features + f] = x[(b * steps + t) * features + f] }
            }
        }
        return result
    }
}
