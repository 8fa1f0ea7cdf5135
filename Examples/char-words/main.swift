// A character-level model of English words: Embedding → LSTM (or GRU) → a softmax over the
// characters at every step, trained on the lowercase a–z words of Debian's wamerican word list,
// scored in bits per character on held-out words against a character-bigram model fitted on the
// same training words, then sampled for new words (docs/examples/char-words.md).
//
//     swift run -c release char-words [--seed N] [--epochs N] [--samples N] [--output DIR] …
import ArgumentParser
import Foundation
import RNNKit

/// Token ids: 0 pads (masked by the Embedding's `maskZero`), 1 starts a word, 2 ends it, 3… are a–z.
enum Vocabulary {
    static let padding = 0, start = 1, end = 2, firstLetter = 3
    static let size = firstLetter + 26
    static func id(of letter: UInt8) -> Int { firstLetter + Int(letter - UInt8(ascii: "a")) }
    static func letter(of id: Int) -> Character { Character(UnicodeScalar(UInt8(ascii: "a") + UInt8(id - firstLetter))) }
}

/// A message for the user and a non-zero exit, for input that cannot be used.
struct InputError: Error, CustomStringConvertible {
    let description: String
}

/// The words kept from the list: lines of lowercase ASCII letters only (no capitals, which are
/// mostly names; no apostrophes, which are mostly the possessive 's; no accented letters),
/// deduplicated and sorted.
func readWords(_ path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw InputError(
            description: "cannot read the word list \(path) (`make deps` installs Debian's wamerican, /usr/share/dict/american-english)")
    }
    var words = Set<String>()
    for line in data.split(separator: UInt8(ascii: "\n")) {
        let bytes = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
        if !bytes.isEmpty, bytes.allSatisfy({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) {
            words.insert(String(decoding: bytes, as: UTF8.self))
        }
    }
    return words.sorted()
}

/// The model's input (start, then the letters) and per-step labels (the letters, then end) of a word.
func tokens(of word: String) -> (input: [Int], labels: [Int]) {
    let letters = word.utf8.map(Vocabulary.id(of:))
    return ([Vocabulary.start] + letters, letters + [Vocabulary.end])
}

/// A character-bigram model: p(next | previous) from the training words' counts with add-one
/// smoothing over the 27 possible next tokens (a–z and end), previous being start or a letter.
struct Bigram {
    private var counts = [[Double]](repeating: [Double](repeating: 0, count: Vocabulary.size), count: Vocabulary.size)

    init(training words: [String]) {
        for word in words {
            let (input, labels) = tokens(of: word)
            for (previous, next) in zip(input, labels) { counts[previous][next] += 1 }
        }
    }

    func probability(of next: Int, after previous: Int) -> Double {
        let row = counts[previous], outcomes = Double(Vocabulary.size - Vocabulary.end)
        return (row[next] + 1) / (row.reduce(0, +) + outcomes)
    }

    /// Mean −log₂ p over every predicted character of `words`, end of word included.
    func bitsPerCharacter(_ words: [String]) -> Double {
        var bits = 0.0, count = 0
        for word in words {
            let (input, labels) = tokens(of: word)
            for (previous, next) in zip(input, labels) {
                bits -= log2(probability(of: next, after: previous))
                count += 1
            }
        }
        return bits / Double(count)
    }
}

/// Mean −log₂ p(next character) over the true steps of `data` (end of word included), from the
/// model's per-step softmax: each word's every predicted character counts once, whatever the batch.
func bitsPerCharacter(_ model: Sequential<Float>, _ data: RaggedDataset, labels: [[Int]], batchSize: Int) throws -> Double {
    let probabilities = try model.predict(data, batchSize: batchSize).scalars
    let steps = data.steps, width = Vocabulary.size
    var bits = 0.0, count = 0
    for (index, sequence) in labels.enumerated() {
        for (t, label) in sequence.enumerated() {
            // A probability that rounds to 0 in Float is scored as the smallest normal Float, not −∞.
            let p = max(Double(probabilities[(index * steps + t) * width + label]), Double(Float.leastNormalMagnitude))
            bits -= log2(p)
            count += 1
        }
    }
    return bits / Double(count)
}

/// `count` words drawn letter by letter at temperature 1: from the start token, each step's
/// softmax (over a–z and end only) picks the next token, until end or `steps` letters (the model's
/// steps; such a word is returned with `cut` true). The whole prefix is run through `predict` at
/// every step: simple, and fast enough for a few dozen words.
func sample(_ model: Sequential<Float>, count: Int, steps: Int, generator: inout RandomGenerator) -> [(word: String, cut: Bool)] {
    let width = Vocabulary.size
    var x = [Float](repeating: Float(Vocabulary.padding), count: steps * count) // time-major [T, B, 1]
    var output = [Float](repeating: 0, count: count * steps * width) // batch-major [B, T, V]
    var words = [String](repeating: "", count: count), done = [Bool](repeating: false, count: count)
    var cut = [Bool](repeating: false, count: count)
    for b in 0..<count { x[b] = Float(Vocabulary.start) }
    for t in 0..<steps where done.contains(false) {
        x.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: count, into: &output) }
        for b in 0..<count where !done[b] {
            let row = output[((b * steps + t) * width)..<((b * steps + t + 1) * width)]
            let choices = Vocabulary.end..<width
            let total = choices.map { Double(row[row.startIndex + $0]) }.reduce(0, +)
            var u = generator.nextUnitDouble() * total, choice = width - 1
            for id in choices {
                u -= Double(row[row.startIndex + id])
                if u < 0 {
                    choice = id
                    break
                }
            }
            if choice == Vocabulary.end {
                done[b] = true
            } else if t + 1 == steps {
                // No step is left to read this letter: the word is cut here.
                words[b].append(Vocabulary.letter(of: choice))
                done[b] = true
                cut[b] = true
            } else {
                words[b].append(Vocabulary.letter(of: choice))
                x[(t + 1) * count + b] = Float(choice)
            }
        }
    }
    return Array(zip(words, cut))
}

/// Validation bits per character over the epochs, with the bigram's as a horizontal line.
func curveSVG(model: [Double], bigram: Double, title: String) -> String {
    let width = 640.0, height = 400.0, left = 70.0, right = width - 20, top = 45.0, bottom = height - 55
    var low = min(model.min() ?? bigram, bigram), high = max(model.max() ?? bigram, bigram)
    let pad = max(high - low, 0.1) * 0.08
    low -= pad
    high += pad
    let epochs = max(model.count, 1)
    func px(_ epoch: Int) -> Double { epochs == 1 ? (left + right) / 2 : left + (right - left) * Double(epoch - 1) / Double(epochs - 1) }
    func py(_ value: Double) -> Double { bottom - (bottom - top) * (value - low) / (high - low) }
    func f(_ value: Double) -> String { String(format: "%.1f", value) }
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))">
        <rect width="100%" height="100%" fill="white"/>
        <g font-family="sans-serif" font-size="12">
        <text x="\(f(width / 2))" y="25" text-anchor="middle" font-size="15">\(title)</text>
        <rect x="\(f(left))" y="\(f(top))" width="\(f(right - left))" height="\(f(bottom - top))" fill="none" stroke="#333"/>

        """
    let step = (high - low) > 1.5 ? 0.5 : (high - low) > 0.6 ? 0.2 : 0.1
    var tick = (low / step).rounded(.up) * step
    while tick <= high {
        svg += "<line x1=\"\(f(left - 4))\" y1=\"\(f(py(tick)))\" x2=\"\(f(right))\" y2=\"\(f(py(tick)))\" stroke=\"#ddd\"/>\n"
        svg += "<text x=\"\(f(left - 7))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(String(format: "%.1f", tick))</text>\n"
        tick += step
    }
    for epoch in Swift.stride(from: 1, through: epochs, by: max(1, (epochs + 9) / 10)) {
        svg += "<text x=\"\(f(px(epoch)))\" y=\"\(f(bottom + 17))\" text-anchor=\"middle\">\(epoch)</text>\n"
    }
    svg += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 40))\" text-anchor=\"middle\">epoch</text>\n"
    svg +=
        "<text transform=\"translate(20 \(f((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">validation bits per character</text>\n"
    svg +=
        "<line x1=\"\(f(left))\" y1=\"\(f(py(bigram)))\" x2=\"\(f(right))\" y2=\"\(f(py(bigram)))\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
    let points = model.enumerated().map { "\(f(px($0.offset + 1))),\(f(py($0.element)))" }
    svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
    for point in points {
        let xy = point.split(separator: ",")
        svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"#1f77b4\"/>\n"
    }
    // Below the bigram's line and above the model's curve, which falls from the left.
    let legend = top + (bottom - top) * 0.35
    svg +=
        "<line x1=\"\(f(right - 190))\" y1=\"\(f(legend))\" x2=\"\(f(right - 170))\" y2=\"\(f(legend))\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
    svg += "<text x=\"\(f(right - 165))\" y=\"\(f(legend + 4))\">model (\(String(format: "%.3f", model.last ?? .nan)))</text>\n"
    svg +=
        "<line x1=\"\(f(right - 190))\" y1=\"\(f(legend + 20))\" x2=\"\(f(right - 170))\" y2=\"\(f(legend + 20))\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
    svg += "<text x=\"\(f(right - 165))\" y=\"\(f(legend + 24))\">bigram (\(String(format: "%.3f", bigram)))</text>\n"
    return svg + "</g>\n</svg>\n"
}

/// The figures of a run, written to `metrics.json`.
struct RunMetrics: Codable {
    var seed: UInt64
    var cell: String
    var units: Int
    var epochs: Int
    var batchSize: Int
    var trainingWords: Int
    var validationWords: Int
    var validationCharacters: Int
    var modelBitsPerCharacter: Double
    var bigramBitsPerCharacter: Double
    var modelBitsPerCharacterPerEpoch: [Double]
    var trainSeconds: Double
}

/// Calls `body` after every epoch (the validation figure is computed there).
final class EpochEnd: Callback {
    let body: (Int) throws -> Void
    init(_ body: @escaping (Int) throws -> Void) { self.body = body }
    func epochEnded(_ epoch: Int, logs: EpochLogs, control: TrainingControl) throws { try body(epoch) }
}

struct CharWords: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "char-words",
        abstract: "A character-level LSTM or GRU language model of English words, against a character bigram.")

    @Option(help: "The word list, one word a line; only lowercase a–z words are kept.")
    var words = "/usr/share/dict/american-english"
    @Option(help: "Seeds the weights, the batch order and the sampling (the train/validation split is fixed).")
    var seed: UInt64 = 0
    @Option(help: "Passes over the training words.")
    var epochs = 10
    @Option(help: "Words to sample from the trained model.")
    var samples = 20
    @Option(help: "Use only this many words of the list (a random subset, before the split); 0 for all.")
    var maxWords = 0
    @Option(help: "The recurrent layer: lstm or gru.")
    var cell = "lstm"
    @Option(help: "Units of the recurrent layer.")
    var units = 256
    @Option(help: "Words per training step.")
    var batchSize = 128
    @Option(help: "Adam's initial learning rate (decayed along a cosine to a tenth over the run).")
    var learningRate = 0.008
    @Option(help: "A folder for metrics.json and the training curve, curve.svg.")
    var output: String?

    mutating func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard samples >= 0 else { throw ValidationError("--samples must be at least 0, got \(samples)") }
        guard maxWords == 0 || maxWords >= 20 else { throw ValidationError("--max-words must be 0 (all) or at least 20, got \(maxWords)") }
        guard ["lstm", "gru"].contains(cell) else { throw ValidationError("--cell must be lstm or gru, got \(cell)") }
        guard units >= 1 else { throw ValidationError("--units must be at least 1, got \(units)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate must be positive, got \(learningRate)")
        }
    }

    func run() throws {
        do {
            try train()
        } catch let error as InputError {
            FileHandle.standardError.write(Data("char-words: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func train() throws {
        // The output folder is made first, so that a bad --output fails before the training, not after.
        if let output {
            do {
                try FileManager.default.createDirectory(
                    at: URL(fileURLWithPath: output, isDirectory: true), withIntermediateDirectories: true)
            } catch {
                throw InputError(description: "cannot make the output folder \(output): \(error.localizedDescription)")
            }
        }
        let list = try readWords(words)
        guard list.count >= 20 else {
            throw InputError(description: "\(words) has \(list.count) lowercase a–z words; at least 20 are needed")
        }
        // The split is drawn from a fixed seed, so every --seed trains and validates on the same words.
        var order = list
        var splitGenerator = RandomGenerator(seed: 20_261_206)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(splitGenerator.next() % UInt64(i + 1)))
        }
        if maxWords > 0 { order = Array(order.prefix(maxWords)) }
        let validationCount = max(order.count / 10, 1)
        let training = Array(order.dropLast(validationCount)), validation = Array(order.suffix(validationCount))
        let steps = list.map(\.count).max()! + 1

        let bigram = Bigram(training: training)
        let bigramBits = bigram.bitsPerCharacter(validation)
        let trainingTokens = training.map(tokens(of:)), validationTokens = validation.map(tokens(of:))
        let trainingData = try RaggedDataset(
            tokens: trainingTokens.map(\.input), stepLabels: trainingTokens.map(\.labels), classCount: Vocabulary.size, steps: steps)
        let validationLabels = validationTokens.map(\.labels)
        let validationData = try RaggedDataset(
            tokens: validationTokens.map(\.input), stepLabels: validationLabels, classCount: Vocabulary.size, steps: steps)
        let characters = validationLabels.map(\.count).reduce(0, +)
        print(
            "\(list.count) lowercase a–z words of \(words): \(training.count) train, \(validation.count) validate "
                + "(\(characters) characters to predict, end of word included), up to \(steps - 1) letters")

        let recurrent: any Layer<Float> =
            cell == "gru" ? GRU(units: units, returnSequences: true) : LSTM(units: units, returnSequences: true)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: steps, features: 1),
            layers: [
                Embedding(inputDim: Vocabulary.size, outputDim: 16, maskZero: true),
                recurrent,
                TimeDistributed(Dense(units: Vocabulary.size, activation: .softmax)),
            ], seed: seed)
        try model.compile(optimizer: Adam(learningRate: learningRate, clipping: .norm(1)), loss: SparseCategoricalCrossentropy())
        model.workers = 2
        BLASConfiguration.threads = 1

        var perEpoch: [Double] = []
        var options = FitOptions(
            epochs: epochs, batchSize: batchSize, seed: seed, learningRateSchedule: .cosineDecay(steps: nil, alpha: 0.1))
        options.shuffle = true
        let start = Date()
        try model.fit(
            trainingData, options: options,
            callbacks: [
                EpochEnd { epoch in
                    let bits = try bitsPerCharacter(model, validationData, labels: validationLabels, batchSize: batchSize)
                    perEpoch.append(bits)
                    print(
                        String(
                            format: "epoch %2d  validation bits/char %.3f  (bigram %.3f)  %.0f s", epoch, bits, bigramBits,
                            Date().timeIntervalSince(start)))
                }
            ])
        let seconds = Date().timeIntervalSince(start)
        let modelBits = perEpoch.last!

        if samples > 0 {
            var generator = RandomGenerator(seed: seed &+ 0x5A3F_1E00)
            let known = Set(list)
            print("\(samples) words sampled at temperature 1 (new: not in the word list):")
            for (word, cut) in sample(model, count: samples, steps: steps, generator: &generator) {
                let note = known.contains(word) ? "in the list" : "new"
                print("  \(word.padding(toLength: max(word.count, 16), withPad: " ", startingAt: 0))  \(note)\(cut ? ", cut" : "")")
            }
        }
        if let output {
            let folder = URL(fileURLWithPath: output, isDirectory: true)
            do {
                let metrics = RunMetrics(
                    seed: seed, cell: cell, units: units, epochs: epochs, batchSize: batchSize, trainingWords: training.count,
                    validationWords: validation.count, validationCharacters: characters, modelBitsPerCharacter: modelBits,
                    bigramBitsPerCharacter: bigramBits, modelBitsPerCharacterPerEpoch: perEpoch, trainSeconds: seconds)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.keyEncodingStrategy = .convertToSnakeCase
                try encoder.encode(metrics).write(to: folder.appendingPathComponent("metrics.json"))
                let title = "char-words: \(cell.uppercased())(\(units)), seed \(seed)"
                try Data(curveSVG(model: perEpoch, bigram: bigramBits, title: title).utf8)
                    .write(to: folder.appendingPathComponent("curve.svg"))
            } catch {
                throw InputError(description: "cannot write to \(output): \(error.localizedDescription)")
            }
            print("wrote \(output)/metrics.json and \(output)/curve.svg")
        }
        print(String(format: "trained in %.1f s; model / bigram = %.3f", seconds, modelBits / bigramBits))
        print(String(format: "validation bits/char: model %.3f, bigram %.3f", modelBits, bigramBits))
    }
}

CharWords.main()
