import Foundation
import RNNKit

/// Where Keras 3 keeps each weight and each optimiser variable in its HDF5 weights file
/// (`model.weights.h5` inside a `.keras` zip, or a `.weights.h5` file):
///
///     layers/<layer>/vars/0…           Dense: kernel, bias
///     layers/<layer>/cell/vars/0…      SimpleRNN, LSTM, GRU: kernel, recurrent_kernel, bias
///     layers/<layer>/layer/vars/0…     TimeDistributed: the wrapped layer's
///     optimizer/vars/0, 1              the update count (int64) and the learning rate (float32)
///     optimizer/vars/2…                per weight, in the model's weight order: Adam m, v (interleaved);
///                                      SGD its momentum (only with momentum); RMSprop its mean square
///
/// `<layer>` is the snake_case class name, numbered from the second of a kind (`dense`, `dense_1`),
/// never the layer's own name (Keras's `saving_lib._save_container_state`).
enum KerasWeightsLayout {
    /// The most optimiser steps a file may record: the largest count a Double holds exactly.
    static let largestIterationCount: Double = 9_007_199_254_740_992
    /// Each parameter of `model` and the dataset that holds it.
    static func paths<Scalar: BLASScalar>(of model: Sequential<Scalar>) throws -> [(parameter: Parameter<Scalar>, path: String)] {
        var used: [String: Int] = [:]
        var result: [(Parameter<Scalar>, String)] = []
        for layer in model.layers {
            let stem = layer.nameStem
            let count = used[stem, default: -1] + 1
            used[stem] = count
            let container = "layers/" + (count == 0 ? stem : "\(stem)_\(count)")
            // Each group of variables and the parameters it holds, in order.
            let groups: [(String, [Parameter<Scalar>])]
            switch layer {
            case is RecurrentLayer<Scalar>: groups = [(container + "/cell/vars", layer.parameters)]
            case is Dense<Scalar>, is Embedding<Scalar>: groups = [(container + "/vars", layer.parameters)]
            case is TimeDistributed<Scalar>: groups = [(container + "/layer/vars", layer.parameters)]
            case is Dropout<Scalar>, is Masking<Scalar>: groups = []
            case let bidirectional as Bidirectional<Scalar>:
                groups = [
                    (container + "/forward_layer/cell/vars", bidirectional.forwardLayer.parameters),
                    (container + "/backward_layer/cell/vars", bidirectional.backwardLayer.parameters),
                ]
            default:
                throw ModelError.invalidConfiguration(
                    "layer \(layer.name) (\(layer.typeName)) has no Keras file layout; Keras files hold Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, Dense, TimeDistributed(Dense) and Dropout"
                )
            }
            for (group, parameters) in groups {
                for (index, parameter) in parameters.enumerated() { result.append((parameter, "\(group)/\(index)")) }
            }
        }
        return result
    }

    /// Optimiser slots per weight in Keras's file, in Keras's order, as RNNKit slot indices.
    static func slotOrder<Scalar: BLASScalar>(of optimizer: any StatefulOptimizer<Scalar>) -> [Int] {
        if let sgd = optimizer as? SGD<Scalar> { return sgd.momentum > 0 ? [0] : [] }
        return Array(0..<optimizer.state.slotCount) // Adam: momentum, velocity; RMSprop: velocity
    }

    // MARK: Reading

    /// Reads every weight of `model` from `file`, checking every name and shape before changing
    /// anything, and the optimiser's state into `optimizer` when the file has it.
    /// - Returns: notes on what was skipped.
    static func read<Scalar: BLASScalar>(
        _ file: HDF5File, into model: Sequential<Scalar>,
        optimizer: (any StatefulOptimizer<Scalar>)?
    ) throws -> [String] {
        var values: [(Parameter<Scalar>, [Double])] = []
        var problems: [String] = []
        var expectedGroups: [String: Int] = [:]
        for (parameter, path) in try paths(of: model) {
            let group = String(path[..<path.lastIndex(of: "/")!])
            expectedGroups[group, default: 0] += 1
            guard file.kind(at: path) == .dataset else {
                problems.append("\(path) (\(parameter.name)): missing (the model has shape \(parameter.shape))")
                continue
            }
            // Shape and type first: nothing is read for a dataset that does not fit.
            let info = try file.info(at: path)
            guard info.shape == parameter.shape else {
                problems.append("\(path) (\(parameter.name)): the model has shape \(parameter.shape), the file has \(info.shape)")
                continue
            }
            guard info.storedType.hasPrefix("float") else {
                problems.append("\(path) (\(parameter.name)): stored as \(info.storedType), not as floating point")
                continue
            }
            let scalars = try file.values(at: path, expectedShape: parameter.shape)
            // Finite in the model's type: a float64 1e39 is infinite as a Float.
            if let index = scalars.firstIndex(where: { !Scalar($0).isFinite }) {
                problems.append(
                    "\(path) (\(parameter.name)): holds \(scalars[index]) at element \(index); weights must be finite in \(Scalar.self)")
                continue
            }
            values.append((parameter, scalars))
        }
        // A layer group holding more variables than the model's layer means another architecture.
        for (group, count) in expectedGroups.sorted(by: { $0.key < $1.key }) where file.kind(at: group) == .group {
            let extra = try file.members(of: group).filter { Int($0).map { $0 >= count } ?? true }
            if !extra.isEmpty {
                problems.append(
                    "\(group): holds \(extra.map { "\(group)/\($0)" }.joined(separator: ", ")), which the model has no weight for")
            }
        }
        // The audit walked every group once (a group that holds itself included), so this needs no walk of its own.
        let known = Set(expectedGroups.keys.map { String($0.split(separator: "/")[1]) })
        let foreign = Set(
            file.datasetPaths.compactMap { path -> String? in
                let parts = path.split(separator: "/")
                guard parts.count > 2, parts[0] == "layers", !known.contains(String(parts[1])) else { return nil }
                return String(parts[1])
            })
        for layer in foreign.sorted() { problems.append("layers/\(layer): a layer with weights that the model does not have") }
        guard problems.isEmpty else {
            throw FileFormatError(
                file: file.name, format: .hdf5Weights, reason: "the weights do not fit the model:\n" + KerasMessages.list(problems))
        }
        var notes: [String] = []
        var restore: (() throws -> Void)?
        if let optimizer, file.kind(at: "optimizer/vars") == .group {
            restore = try readOptimizer(file, model: model, optimizer: optimizer, notes: &notes)
        }
        for (parameter, scalars) in values { parameter.value.assign(scalars.map { Scalar($0) }) }
        try restore?()
        return notes
    }

    /// Checks the optimiser variables and returns the step that restores them.
    private static func readOptimizer<Scalar: BLASScalar>(
        _ file: HDF5File, model: Sequential<Scalar>, optimizer: any StatefulOptimizer<Scalar>,
        notes: inout [String]
    ) throws -> (() throws -> Void)? {
        let members = try file.members(of: "optimizer/vars")
        let order = slotOrder(of: optimizer)
        let parameters = model.parameters
        let expected = 2 + order.count * parameters.count
        guard members.count == expected || members.count == 2 else {
            notes.append(
                "\(file.name): the optimiser state was not loaded: the file's optimiser has \(members.count) variables, RNNKit's \(optimizer.name) needs \(expected); it starts afresh"
            )
            return nil
        }
        let iterationsInfo = try file.info(at: "optimizer/vars/0"), rateInfo = try file.info(at: "optimizer/vars/1")
        guard iterationsInfo.shape.isEmpty, rateInfo.shape.isEmpty, iterationsInfo.isNumeric, rateInfo.isNumeric else {
            throw FileFormatError(
                file: file.name, format: .hdf5Weights,
                reason:
                    "optimizer/vars/0 and 1 must be scalars (the update count and the learning rate), not of shapes \(iterationsInfo.shape) and \(rateInfo.shape)"
            )
        }
        let iterations = try file.values(at: "optimizer/vars/0", expectedShape: [])[0]
        let rate = try file.values(at: "optimizer/vars/1", expectedShape: [])[0]
        guard iterations >= 0, iterations <= Self.largestIterationCount, iterations == iterations.rounded() else {
            throw FileFormatError(
                file: file.name, format: .hdf5Weights,
                reason: "optimizer/vars/0, the update count, is \(iterations); it must be a whole number in 0…2^53")
        }
        guard rate > 0, rate.isFinite else {
            throw FileFormatError(
                file: file.name, format: .hdf5Weights,
                reason: "optimizer/vars/1, the learning rate, is \(rate); it must be positive and finite")
        }
        var slots = [[Scalar]](repeating: [Scalar](repeating: 0, count: model.arena.count), count: optimizer.state.slotCount)
        if members.count == expected, !order.isEmpty {
            var problems: [String] = []
            var index = 2
            for (parameter, offset) in zip(parameters, model.arena.offsets) {
                for slot in order {
                    let path = "optimizer/vars/\(index)"
                    index += 1
                    let info = try file.info(at: path)
                    guard info.shape == parameter.shape, info.isNumeric else {
                        problems.append(
                            "\(path) (\(optimizer.name) state of \(parameter.name)): shape \(info.shape) \(info.storedType), the weight's is \(parameter.shape)"
                        )
                        continue
                    }
                    let stored = try file.values(at: path, expectedShape: parameter.shape)
                    guard stored.allSatisfy({ Scalar($0).isFinite }) else {
                        problems.append("\(path) (\(optimizer.name) state of \(parameter.name)): holds a value that is not finite")
                        continue
                    }
                    for (i, value) in stored.enumerated() { slots[slot][offset + i] = Scalar(value) }
                }
            }
            guard problems.isEmpty else {
                throw FileFormatError(
                    file: file.name, format: .hdf5Weights,
                    reason: "the optimiser state does not fit the model:\n" + KerasMessages.list(problems))
            }
        } else if iterations > 0, !order.isEmpty {
            notes.append(
                "\(file.name): the optimiser has taken \(Int(iterations)) steps but the file holds no \(optimizer.name) moments; they start at zero"
            )
        }
        let arena = model.arena
        return {
            // Keras keeps the rate as float32. A short decimal in the config (0.003, as typed) that rounds to
            // the stored value is that value; otherwise the stored float32 is the rate.
            let configured = optimizer.learningRate
            let typed = Double(String(format: "%.7g", configured)) == configured
            if !(typed && Float(configured) == Float(rate)) { optimizer.learningRate = rate }
            try optimizer.restore(iterations: Int(iterations), slots: slots, for: arena)
        }
    }

    // MARK: Writing

    /// Writes every weight of `model`, and the state of its optimiser when it has one, into `file`
    /// as Keras lays them out, float32 for a `Float` model and float64 for a `Double` one.
    static func write<Scalar: BLASScalar>(_ model: Sequential<Scalar>, to file: HDF5File) throws {
        let stored: HDF5File.StoredType = Scalar.self == Double.self ? .float64 : .float32
        var groups: [String] = []
        for (parameter, path) in try paths(of: model) {
            let group = String(path[..<path.lastIndex(of: "/")!])
            if groups.last != group {
                try file.createGroup(group)
                groups.append(group)
            }
            try file.write(parameter.tensor.scalars.map(Double.init), shape: parameter.shape, as: stored, at: path)
        }
        // Keras names each variable group after its object; the loader does not need them.
        for layer in model.layers {
            let layerGroup = "layers/\(kerasContainer(of: layer, in: model))"
            try file.createGroup(layerGroup + "/vars")
            try file.setAttribute("name", to: layer.name, on: layerGroup + "/vars")
            for group in groups where group.hasPrefix(layerGroup + "/") && group.hasSuffix("/cell/vars") {
                let stem = (layer as? Bidirectional<Scalar>)?.forwardLayer.nameStem ?? layer.nameStem
                try file.setAttribute("name", to: "\(stem)_cell", on: group)
            }
        }
        try file.createGroup("vars")
        try file.setAttribute("name", to: model.name, on: "vars")
        guard let optimizer = model.optimizer as? any StatefulOptimizer<Scalar> else { return }
        try file.createGroup("optimizer/vars")
        try file.setAttribute("name", to: optimizer.name, on: "optimizer/vars")
        try file.write([Double(optimizer.iterations)], shape: [], as: .int64, at: "optimizer/vars/0")
        try file.write([Double(Float(optimizer.learningRate))], shape: [], as: .float32, at: "optimizer/vars/1")
        let bound = optimizer.state.arena === model.arena
        var index = 2
        for (parameter, offset) in zip(model.parameters, model.arena.offsets) {
            for slot in slotOrder(of: optimizer) {
                // An optimiser that has not stepped yet has no state: Keras's is zero then too.
                let values =
                    bound
                    ? (0..<parameter.count).map { Double(optimizer.state.slots[slot].pointer[offset + $0]) }
                    : [Double](repeating: 0, count: parameter.count)
                try file.write(values, shape: parameter.shape, as: stored, at: "optimizer/vars/\(index)")
                index += 1
            }
        }
    }

    /// The container name Keras gives `layer` within `model` (`dense`, `dense_1`).
    static func kerasContainer<Scalar: BLASScalar>(of layer: any Layer<Scalar>, in model: Sequential<Scalar>) -> String {
        var count = -1
        for other in model.layers where other.nameStem == layer.nameStem {
            count += 1
            if other === layer { break }
        }
        return count == 0 ? layer.nameStem : "\(layer.nameStem)_\(count)"
    }
}
