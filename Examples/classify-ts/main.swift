// Classifies the cases of a UEA/UCR `.ts` time-series file with a masked recurrent network: each
// case is read step by step up to its own length, the features standardised with the training
// file's means and deviations. The default recipe is the one chosen for speaker recognition on
// JapaneseVowels (docs/examples/classify-ts.md); flags override it for other sets.
//
//     swift run -c release classify-ts --train FILE_TRAIN.ts --test FILE_TEST.ts [--seed N] [--output DIR]
import ArgumentParser
import Foundation
import RNNKit
import TrainerSupport

struct ClassifyTS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify-ts",
        abstract: "Train a masked recurrent classifier on a UEA/UCR .ts training file and score it on its test file.",
        discussion: "The last line printed is `test accuracy: 0.xxxx`.")

    @Option(help: "The training cases (.ts).") var train: String
    @Option(help: "The test cases (.ts), scored once after training.") var test: String
    @Option(help: "Seeds the weights, the shuffling and the dropout masks.") var seed: UInt64 = 0
    @Option(help: "A folder for metrics.json and the pictures (created if need be).") var output: String?
    @Option(help: "Passes over the training cases.") var epochs: Int = 60
    @Option(help: "Cases per training step.") var batchSize: Int = 16
    @Option(help: "The GRU's units (each direction).") var units: Int = 64
    @Option(help: "Adam's initial learning rate (cosine decay to 0 over the run).") var learningRate: Double = 0.003
    @Option(help: "Dropout on the GRU's inputs.") var dropout: Double = 0.3
    @Option(help: "Dropout on the GRU's state.") var recurrentDropout: Double = 0
    @Flag(inversion: .prefixedNo, help: "Read each case both ways (Bidirectional GRU).") var bidirectional = true
    @Option(help: "Hold out this fraction of each class of the training cases to validate (for choosing a recipe).")
    var holdout: Double = 0
    @Option(help: "Which block of each class --holdout holds out, counting from the end (0: the last cases, 1: those before them, …).")
    var fold: Int = 0

    func validate() throws {
        guard epochs >= 1, batchSize >= 1, units >= 1 else {
            throw ValidationError("--epochs, --batch-size and --units must be at least 1")
        }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be a positive number") }
        guard (0..<1).contains(dropout), (0..<1).contains(recurrentDropout) else {
            throw ValidationError("--dropout and --recurrent-dropout must be in [0, 1)")
        }
        guard (0..<1).contains(holdout) else { throw ValidationError("--holdout must be in [0, 1)") }
        guard fold >= 0, Double(fold + 1) * holdout <= 1 + 1e-9 else {
            throw ValidationError("--fold must be from 0 to \(holdout > 0 ? Int((1 / holdout + 1e-9).rounded(.down)) - 1 : 0)")
        }
    }

    func run() throws {
        do { try classify() } catch let error as ExitCode {
            throw error
        } catch is CocoaError {
            // Writing --output's files: Foundation's own message names no path and no cause.
            throw failure("\(output ?? ""): cannot be written as a folder of results (a file in its way, no permission, or a full disk)")
        } catch {
            throw failure("\(error)")
        }
    }

    func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("classify-ts: \(boundedMessage(message))\n".utf8))
        return ExitCode.failure
    }

    func classify() throws {
        let trainFile = try UEATimeSeries.readClassification(contentsOf: URL(fileURLWithPath: train))
        let testFile = try UEATimeSeries.readClassification(contentsOf: URL(fileURLWithPath: test))
        guard testFile.dimensions == trainFile.dimensions, testFile.classNames == trainFile.classNames else {
            throw failure(
                "\(test) does not match \(train): \(testFile.dimensions) dimensions and classes \(testFile.classNames.prefix(20)), "
                    + "against \(trainFile.dimensions) and \(trainFile.classNames.prefix(20))")
        }
        let scaler = Standardizer(trainFile.sequences, dimensions: trainFile.dimensions)
        let steps = max(trainFile.lengths.max()!, testFile.lengths.max()!)
        let (fitIndices, heldIndices) = stratifiedSplit(labels: trainFile.labels, classCount: trainFile.classNames.count)
        func dataset(_ file: UEATimeSeries.Classification, _ indices: [Int]) throws -> RaggedDataset {
            try RaggedDataset(
                sequences: indices.map { scaler.apply(file.sequences[$0]) }, labels: indices.map { file.labels[$0] },
                classCount: file.classNames.count, steps: steps)
        }
        let trainSet = try dataset(trainFile, fitIndices)
        let validationSet = heldIndices.isEmpty ? nil : try dataset(trainFile, heldIndices)
        let testSet = try dataset(testFile, Array(0..<testFile.count))
        print(
            "\(trainFile.problemName): \(trainFile.count) training cases (\(trainSet.count) trained on), \(testFile.count) test cases, "
                + "\(trainFile.dimensions) features, \(trainFile.lengths.min()!) to \(steps) steps, \(trainFile.classNames.count) classes")

        let recurrent = GRU<Float>(units: units, dropout: dropout, recurrentDropout: recurrentDropout, seed: seed)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: trainFile.dimensions),
            layers: [
                bidirectional ? Bidirectional(recurrent) : recurrent,
                Dense(units: trainFile.classNames.count, activation: .softmax),
            ], seed: seed)
        try model.compile(optimizer: Adam(learningRate: learningRate))
        model.workers = 1
        BLASConfiguration.threads = 1

        var options = FitOptions(epochs: epochs, batchSize: batchSize, seed: seed, learningRateSchedule: .cosineDecay(steps: nil))
        options.validationData = validationSet
        let start = Date()
        let history = try model.fit(trainSet, options: options) { event in
            guard case .epochEnded(let epoch, _, let training, let validation, _) = event else { return }
            if epoch % 10 == 0 || epoch == epochs {
                let held = validation.map { String(format: ", validation loss %.4f accuracy %.4f", $0.loss, $0.accuracy) } ?? ""
                print(String(format: "epoch %3d: loss %.4f accuracy %.4f", epoch, training.loss, training.accuracy) + held)
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let scores = try model.evaluate(testSet)
        print(String(format: "trained in %.1f s; test loss %.4f", seconds, scores.loss))

        if let output {
            let folder = URL(fileURLWithPath: output)
            let probabilities = try model.predict(testSet).scalars
            let classes = trainFile.classNames.count
            var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
            for (index, label) in testSet.labels.enumerated() {
                let row = probabilities[index * classes..<(index + 1) * classes]
                confusion[label][row.indices.max { row[$0] < row[$1] }! - index * classes] += 1
            }
            try write(
                to: folder, history: history, confusion: confusion, classNames: trainFile.classNames, accuracy: scores.accuracy,
                seconds: seconds, problem: trainFile.problemName)
        }
        print(String(format: "test accuracy: %.4f", scores.accuracy))
    }

    /// The cases held out to validate: `holdout` of each class's cases, the `fold`-th such block
    /// from the end (none without `--holdout`); the rest train.
    func stratifiedSplit(labels: [Int], classCount: Int) -> (fit: [Int], held: [Int]) {
        guard holdout > 0 else { return (Array(labels.indices), []) }
        var fit: [Int] = [], held: [Int] = []
        for label in 0..<classCount {
            let members = labels.indices.filter { labels[$0] == label }
            let size = Int((Double(members.count) * holdout).rounded())
            let end = max(members.count - fold * size, 0), start = max(end - size, 0)
            fit += members[..<start] + members[end...]
            held += members[start..<end]
        }
        return (fit.sorted(), held)
    }

    func write(
        to folder: URL, history: History, confusion: [[Int]], classNames: [String], accuracy: Double, seconds: Double, problem: String
    ) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let recipe: [String: Any] = [
            "layers": bidirectional ? "Bidirectional(GRU(\(units))) → Dense(softmax)" : "GRU(\(units)) → Dense(softmax)",
            "standardised": "each feature with the training file's mean and standard deviation",
            "optimizer": "Adam", "learning_rate": learningRate, "schedule": "cosine decay to 0 over the run",
            "batch_size": batchSize, "dropout": dropout, "recurrent_dropout": recurrentDropout, "holdout": holdout, "fold": fold,
        ]
        let metrics: [String: Any] = [
            "problem": problem, "test_accuracy": accuracy, "seed": seed, "epochs": epochs, "train_seconds": seconds,
            "recipe": recipe, "loss": history.loss, "accuracy": history.categoricalAccuracy,
            "val_loss": history.valLoss, "val_accuracy": history.valCategoricalAccuracy, "confusion": confusion,
        ]
        let json = try JSONSerialization.data(withJSONObject: metrics, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: folder.appendingPathComponent("metrics.json"))
        let curves = Pictures.historySVG(
            loss: history.loss, accuracy: history.categoricalAccuracy, valLoss: history.valLoss,
            valAccuracy: history.valCategoricalAccuracy, title: "\(problem), seed \(seed)")
        try Data(curves.utf8).write(to: folder.appendingPathComponent("training.svg"))
        let matrix = confusionSVG(
            confusion, classNames: classNames, title: String(format: "\(problem) test set, seed \(seed): accuracy %.4f", accuracy))
        try Data(matrix.utf8).write(to: folder.appendingPathComponent("confusion.svg"))
        print("wrote metrics.json, training.svg and confusion.svg to \(folder.path)")
    }
}

/// Each feature's mean and standard deviation over every step of the training cases.
struct Standardizer {
    var mean: [Float], deviation: [Float]

    init(_ sequences: [[[Float]]], dimensions: Int) {
        var sum = [Double](repeating: 0, count: dimensions), squares = sum, count = 0.0
        for sequence in sequences {
            for step in sequence {
                for (feature, value) in step.enumerated() {
                    sum[feature] += Double(value)
                    squares[feature] += Double(value) * Double(value)
                }
                count += 1
            }
        }
        mean = sum.map { Float($0 / count) }
        // A constant feature keeps a deviation of 1, so it becomes 0 rather than NaN.
        deviation = zip(sum, squares).map { sum, squares in
            let variance = squares / count - (sum / count) * (sum / count)
            return variance > 1e-12 ? Float(variance.squareRoot()) : 1
        }
    }

    func apply(_ sequence: [[Float]]) -> [[Float]] {
        sequence.map { step in step.enumerated().map { ($1 - mean[$0]) / deviation[$0] } }
    }
}

/// The test set's confusion matrix as an SVG heat map: true classes down, predicted across.
func confusionSVG(_ confusion: [[Int]], classNames: [String], title: String) -> String {
    let classes = confusion.count, cell = max(16.0, min(48.0, 480.0 / Double(classes)))
    let left = 90.0, top = 70.0, side = cell * Double(classes)
    let width = left + side + 30, height = top + side + 50
    let largest = Double(confusion.flatMap { $0 }.max() ?? 1)
    func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
    var svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
    svg += "<text x=\"\(Int(left + side / 2))\" y=\"48\" text-anchor=\"middle\" font-size=\"13\">predicted class</text>\n"
    svg +=
        "<text x=\"20\" y=\"\(Int(top + side / 2))\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 20 \(Int(top + side / 2)))\">true class</text>\n"
    for (row, counts) in confusion.enumerated() {
        let y = top + Double(row) * cell
        svg +=
            "<text x=\"\(Int(left - 6))\" y=\"\(Int(y + cell / 2 + 4))\" text-anchor=\"end\" font-size=\"12\">\(escape(String(classNames[row].prefix(8))))</text>\n"
        for (column, count) in counts.enumerated() {
            let x = left + Double(column) * cell
            let shade = count == 0 ? 1.0 : 1 - 0.85 * (Double(count) / largest).squareRoot()
            let blue = Int(255 * shade), dark = shade < 0.5
            svg += String(
                format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,255)\" stroke=\"#ccc\"/>\n", x, y,
                cell,
                cell, blue, blue)
            if count > 0, classes <= 20 {
                let ink = dark ? "white" : (row == column ? "black" : "#c00")
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" fill=\"\(ink)\">%d</text>\n",
                    x + cell / 2, y + cell / 2 + 4, count)
            }
        }
    }
    for column in 0..<classes {
        svg +=
            "<text x=\"\(Int(left + (Double(column) + 0.5) * cell))\" y=\"\(Int(top - 6))\" text-anchor=\"middle\" font-size=\"12\">\(escape(String(classNames[column].prefix(8))))</text>\n"
    }
    return svg + "</svg>\n"
}

ClassifyTS.main()
