/// How a `Bidirectional` layer combines its two directions' outputs: Keras's `merge_mode`, whose
/// spellings (`concat`, `sum`, `mul`, `ave`) are the raw values, as config.json and the trainer's
/// `--bidirectional` write them. `concat` doubles the output's width; the others keep it.
public enum MergeMode: String, Sendable, CaseIterable {
    /// `concat` joins the two outputs along the features, forward first (`2H`); `sum` adds and `mul`
    /// multiplies them elementwise (`H`).
    case concat, sum, mul
    /// The elementwise mean of the two outputs (`H`); Keras's `ave`.
    case average = "ave"
}

/// Keras's `Bidirectional`: a recurrent layer run over the sequence forwards and a copy of it run
/// backwards (its `goBackwards` flipped), their outputs merged.
///
/// Input `[T, B, D]`. Each direction's output is `[T, B, H]` with `returnSequences` (the backward
/// one flipped back into time order first, so step t of both is about x_t) or `[B, H]` (each
/// direction's last state). Merged: `concat` `[…, 2H]` (forward first), `sum`, `mul` or `average`
/// `[…, H]`. Weights: the forward layer's, then the backward layer's, named as Keras names them:
/// `bidirectional/forward_lstm/kernel`, …, `bidirectional/backward_lstm/bias`.
public final class Bidirectional<Scalar: BLASScalar>: Layer {
    /// How the two directions' outputs combine (Keras's `merge_mode`); the same type whatever `Scalar`.
    public typealias MergeMode = RNNKit.MergeMode

    /// The layer reading the sequence in its own direction (`bidirectional/forward_lstm`).
    public let forwardLayer: RecurrentLayer<Scalar>
    /// The copy of the forward layer reading the other way (`bidirectional/backward_lstm`).
    public let backwardLayer: RecurrentLayer<Scalar>
    /// How the two directions' outputs combine.
    public let mergeMode: MergeMode

    public var typeName: String { "Bidirectional" }
    public var nameStem: String { "bidirectional" }
    public var name: String = "bidirectional" { didSet { renameLayers() } }
    public var parameters: [Parameter<Scalar>] { forwardLayer.parameters + backwardLayer.parameters }
    public private(set) var outputShape: FeatureShape = .vector(features: 0)

    private var steps = 0, inputs = 0
    private var output = Buffer<Scalar>(count: 0) // [rows, outF]
    private var forwardGradient = Buffer<Scalar>(count: 0) // [rows, H]
    private var backwardGradient = Buffer<Scalar>(count: 0) // [rows, H], in the backward layer's order
    private var inputGradient: Buffer<Scalar>? // [T, B, D]
    private var lastForward: UnsafePointer<Scalar>?
    private var lastBackward: UnsafePointer<Scalar>?
    private var lastBatch = 0

    /// Wraps `layer`, which becomes the forward direction, and makes the backward one.
    ///
    /// - Parameters:
    ///   - layer: the forward layer (unbuilt); the backward one is a copy reading the other way.
    ///   - mergeMode: `concat` (Keras's default), `sum`, `mul` or `average`.
    public init(_ layer: RecurrentLayer<Scalar>, mergeMode: MergeMode = .concat) {
        // As Keras's: with a mask, both directions output zeros at masked steps of a returned sequence.
        if layer.returnSequences { layer.zeroOutputForMask = true }
        self.forwardLayer = layer
        self.backwardLayer = layer.unbuiltCopy(reversed: true)
        self.mergeMode = mergeMode
        renameLayers()
    }

    private init(forward: RecurrentLayer<Scalar>, backward: RecurrentLayer<Scalar>, mergeMode: MergeMode) {
        forwardLayer = forward
        backwardLayer = backward
        self.mergeMode = mergeMode
    }

    /// Both directions read the same mask (the backward one reverses it with its input).
    public func setMask(_ mask: UnsafePointer<UInt8>?) {
        forwardLayer.setMask(mask)
        backwardLayer.setMask(mask)
    }

    public func setTraining(_ training: Bool, step: Int) {
        forwardLayer.setTraining(training, step: step)
        backwardLayer.setTraining(training, step: step)
    }

    private func renameLayers() {
        forwardLayer.name = "\(name)/forward_\(forwardLayer.nameStem)"
        backwardLayer.name = "\(name)/backward_\(backwardLayer.nameStem)"
    }

    private var units: Int { forwardLayer.units }
    private var returnSequences: Bool { forwardLayer.returnSequences }
    /// Output rows per sample: the steps of a returned sequence, else 1.
    private var rowsPerSample: Int { returnSequences ? steps : 1 }

    public func build(inputShape: FeatureShape, generator: inout RandomGenerator) throws -> FeatureShape {
        guard case .sequence(let steps, let features) = inputShape else {
            throw ModelError.incompatibleInput(layer: name, expected: "a sequence (None, steps, features)", got: inputShape)
        }
        self.steps = steps
        inputs = features
        _ = try forwardLayer.build(inputShape: inputShape, generator: &generator)
        _ = try backwardLayer.build(inputShape: inputShape, generator: &generator)
        renameLayers()
        let width = mergeMode == .concat ? 2 * units : units
        outputShape = returnSequences ? .sequence(steps: steps, features: width) : .vector(features: width)
        return outputShape
    }

    public func replica() -> any Layer<Scalar> {
        let copy = Bidirectional(
            forward: forwardLayer.replica() as! RecurrentLayer<Scalar>,
            backward: backwardLayer.replica() as! RecurrentLayer<Scalar>, mergeMode: mergeMode)
        copy.steps = steps
        copy.inputs = inputs
        copy.outputShape = outputShape
        copy.name = name
        return copy
    }

    public func reserve(batchCapacity: Int, needsInputGradient: Bool, backend: any Backend) {
        forwardLayer.reserve(batchCapacity: batchCapacity, needsInputGradient: needsInputGradient, backend: backend)
        backwardLayer.reserve(batchCapacity: batchCapacity, needsInputGradient: needsInputGradient, backend: backend)
        let rows = rowsPerSample * batchCapacity
        if output.count < rows * outputShape.features {
            output = Buffer(count: rows * outputShape.features)
            forwardGradient = Buffer(count: rows * units)
            backwardGradient = Buffer(count: rows * units)
        }
        if needsInputGradient, (inputGradient?.count ?? 0) < steps * batchCapacity * inputs {
            inputGradient = Buffer(count: steps * batchCapacity * inputs)
        } else if !needsInputGradient {
            inputGradient = nil
        }
    }

    /// The row of the backward layer's output that lines up with merged row `row`: for a
    /// sequence, step t of time is step T − 1 − t of the backward layer's processing.
    @inline(__always)
    private func backwardRow(_ row: Int, batchSize: Int) -> Int {
        guard returnSequences else { return row }
        let t = row / batchSize, b = row % batchSize
        return (steps - 1 - t) * batchSize + b
    }

    public func forward(_ input: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar> {
        let rows = rowsPerSample * batchSize, H = units, width = outputShape.features
        precondition(rows * width <= output.count, "batch of \(batchSize) exceeds the reserved capacity of \(name)")
        let f = forwardLayer.forward(input, batchSize: batchSize, backend: backend)
        let b = backwardLayer.forward(input, batchSize: batchSize, backend: backend)
        for row in 0..<rows {
            let out = output.pointer + row * width, fr = f + row * H, br = b + backwardRow(row, batchSize: batchSize) * H
            switch mergeMode {
            case .concat:
                out.update(from: fr, count: H)
                (out + H).update(from: br, count: H)
            case .sum: Scalar.combine(fr, br, into: out, count: H, multiply: false, scale: 1)
            case .mul: Scalar.combine(fr, br, into: out, count: H, multiply: true, scale: 1)
            case .average: Scalar.combine(fr, br, into: out, count: H, multiply: false, scale: 0.5)
            }
        }
        lastForward = f
        lastBackward = b
        lastBatch = batchSize
        return UnsafePointer(output.pointer)
    }

    @discardableResult
    public func backward(_ outputGradient: UnsafePointer<Scalar>, batchSize: Int, backend: any Backend) -> UnsafePointer<Scalar>? {
        guard let f = lastForward, let b = lastBackward, batchSize == lastBatch else {
            preconditionFailure("\(name).backward must follow a forward pass over the same batch")
        }
        let rows = rowsPerSample * batchSize, H = units, width = outputShape.features
        for row in 0..<rows {
            let d = outputGradient + row * width, backRow = backwardRow(row, batchSize: batchSize)
            let df = forwardGradient.pointer + row * H, db = backwardGradient.pointer + backRow * H
            switch mergeMode {
            case .concat:
                df.update(from: d, count: H)
                db.update(from: d + H, count: H)
            case .sum:
                df.update(from: d, count: H)
                db.update(from: d, count: H)
            case .mul:
                Scalar.combine(d, b + backRow * H, into: df, count: H, multiply: true, scale: 1)
                Scalar.combine(d, f + row * H, into: db, count: H, multiply: true, scale: 1)
            case .average:
                Scalar.combine(d, nil, into: df, count: H, multiply: false, scale: 0.5)
                Scalar.combine(d, nil, into: db, count: H, multiply: false, scale: 0.5)
            }
        }
        let fromForward = forwardLayer.backward(forwardGradient.pointer, batchSize: batchSize, backend: backend)
        let fromBackward = backwardLayer.backward(backwardGradient.pointer, batchSize: batchSize, backend: backend)
        guard let inputGradient, let fromForward, let fromBackward else { return nil }
        Scalar.combine(fromForward, fromBackward, into: inputGradient.pointer, count: steps * batchSize * inputs, multiply: false, scale: 1)
        return UnsafePointer(inputGradient.pointer)
    }
}
