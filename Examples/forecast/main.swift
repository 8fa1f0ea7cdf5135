// Forecasting a monthly series (the airline passengers of 1949–1960 in docs/examples/forecast.md):
// train on all but the last `holdout` months, forecast those months, and compare with two
// baselines computed here: the last observed year repeated, and the same scaled by that year's
// growth over the year before.
//
// The recipe: the log of the series, its 12-month difference (which removes the trend and the
// seasonality), standardised with the training months' mean and deviation (the training months'
// alone), and windows of `window` months, each predicting the `holdout` months after it at once
// with an LSTM and a Dense(holdout); the last training window then forecasts the holdout, and
// each month's log is the log a year before it plus its forecast difference. The defaults were
// chosen on the training months alone (scripts/forecast-validation.py). `--recursive` predicts
// one month at a time instead, each prediction fed back as the next window's last month.
//
//     swift run -c release forecast --csv FILE [--holdout 24] [--seed N] [--column NAME] [--output DIR]
//
// The last line printed is `RMSE: x`, the forecast's root mean squared error on the holdout.
import ArgumentParser
import Foundation
import RNNKit

struct Forecast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Forecast the last months of a monthly series with an LSTM trained on the months before them.",
        discussion: "The last line printed is `RMSE: x`, the forecast's root mean squared error on the held-out months.")

    @Option(help: "The CSV file: a header row, one row per month (non-numeric columns such as dates are skipped).")
    var csv: String

    @Option(help: "The last months held out and forecast.")
    var holdout = 24

    @Option(help: "Seeds the initial weights and the shuffling.")
    var seed: UInt64 = 0

    @Option(help: "The column forecast (default: the last numeric column).")
    var column: String?

    @Option(help: "A folder to write forecast.svg and metrics.json to (created if missing).")
    var output: String?

    @Option(help: "Months in each input window.")
    var window = 18

    @Option(help: "The LSTM's units.")
    var units = 16

    @Option(help: "Passes over the training windows.")
    var epochs = 100

    @Option(help: "Windows per training step.")
    var batchSize = 16

    @Option(help: "Adam's learning rate.")
    var learningRate = 0.003

    @Option(help: "Models trained (seeds seed·K … seed·K + K − 1) whose forecasts are averaged.")
    var ensemble = 1

    @Flag(help: "Forecast month by month, each prediction fed back, instead of every held-out month at once.")
    var recursive = false

    /// The season: the difference is taken over this many months.
    static let season = 12

    func validate() throws {
        guard holdout >= 1 else { throw ValidationError("--holdout must be at least 1, got \(holdout)") }
        guard window >= 1 else { throw ValidationError("--window must be at least 1, got \(window)") }
        guard units >= 1 else { throw ValidationError("--units must be at least 1, got \(units)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard ensemble >= 1 else { throw ValidationError("--ensemble must be at least 1, got \(ensemble)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate must be a positive number, got \(learningRate)")
        }
    }

    func run() throws {
        let (name, series) = try readSeries()
        // The baselines need two training years; the model needs windows past the first season.
        let minimum = max(2 * Self.season, Self.season + window + 8 + (recursive ? 0 : holdout))
        guard holdout < series.count else {
            throw Failure("--holdout \(holdout) leaves no training months: the series has \(series.count)")
        }
        guard series.count - holdout >= minimum else {
            let targets = recursive ? "the month after each" : "the \(holdout) months after each"
            throw Failure(
                "the series is too short: \(series.count) months less \(holdout) held out leaves \(series.count - holdout) to train on, "
                    + "and this recipe needs at least \(minimum): a year for the yearly difference, then 8 windows of \(window) months "
                    + "and \(targets)")
        }
        if let bad = series.firstIndex(where: { !($0 > 0) }) {
            throw Failure(
                "data row \(bad + 1) of column \(name) is \(series[bad]): the recipe takes logarithms, so every value must be positive")
        }
        try forecast(name: name, series: series)
    }

    /// The column forecast, its name and values.
    func readSeries() throws -> (String, [Double]) {
        let url = URL(fileURLWithPath: csv)
        if let column {
            let table = try CSV.readNumbers(contentsOf: url, header: .present, columns: [column])
            return (column, table.values)
        }
        let table = try CSV.readNumbers(contentsOf: url, header: .present, skipNonNumericColumns: true)
        guard let names = table.columnNames, let last = names.last else { throw Failure("\(csv): has no column of numbers") }
        return (last, table.column(last) ?? [])
    }

    func forecast(name: String, series: [Double]) throws {
        let trainCount = series.count - holdout
        let truth = Array(series[trainCount...])
        print("\(csv), column \(name): \(series.count) months, training on the first \(trainCount), forecasting the last \(holdout)")

        let baselines = Baselines(training: Array(series[..<trainCount]), horizon: holdout, season: Self.season)
        let lastYearRMSE = rmse(baselines.lastYear, truth), growthRMSE = rmse(baselines.grown, truth)
        print(String(format: "baseline, the last year repeated: RMSE %.2f", lastYearRMSE))
        print(String(format: "baseline, the last year scaled by its growth (×%.4f a year): RMSE %.2f", baselines.growth, growthRMSE))

        let start = Date()
        let (predicted, finalLoss) = try trainAndForecast(Array(series[..<trainCount]))
        let seconds = Date().timeIntervalSince(start)
        let error = rmse(predicted, truth)
        let models = ensemble > 1 ? "\(ensemble) × LSTM(\(units))" : "LSTM(\(units))"
        print(
            "\(models) on \(window)-month windows of the \(Self.season)-month log difference, \(recursive ? "recursive" : "direct"), "
                + "\(epochs) epochs, seed \(seed): "
                + String(format: "trained and forecast in %.2f s (final training loss %.4f)", seconds, finalLoss))

        if let output {
            let folder = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let title =
                "\(name): forecast of the last \(holdout) months "
                + String(format: "(RMSE %.1f; growth baseline %.1f)", error, growthRMSE)
            let svg = ForecastPicture(
                series: series, trainCount: trainCount, forecast: predicted, baseline: baselines.grown, title: title, valueName: name
            ).svg()
            try Data(svg.utf8).write(to: folder.appendingPathComponent("forecast.svg"))
            let metrics: [String: Any] = [
                "rmse": error, "baseline_last_year_rmse": lastYearRMSE, "baseline_growth_rmse": growthRMSE, "seed": seed,
                "train_seconds": seconds, "holdout": holdout, "column": name, "window": window, "units": units, "epochs": epochs,
                "batch_size": batchSize, "learning_rate": learningRate, "ensemble": ensemble, "recursive": recursive, "forecast": predicted,
            ]
            let json = try JSONSerialization.data(withJSONObject: metrics, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: folder.appendingPathComponent("metrics.json"))
            print("wrote \(folder.appendingPathComponent("forecast.svg").path) and metrics.json")
        }
        print(String(format: "RMSE: %.2f", error))
    }

    /// Trains `ensemble` models on `training` alone (its transform's mean and deviation included)
    /// and averages their forecasts of the next `holdout` values; also returns the models' mean
    /// last-epoch training loss.
    func trainAndForecast(_ training: [Double]) throws -> ([Double], Double) {
        let season = Self.season
        let logs = training.map { Foundation.log($0) }
        let differences = (season..<logs.count).map { logs[$0] - logs[$0 - season] }
        let mean = differences.reduce(0, +) / Double(differences.count)
        let deviation = max(
            (differences.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(differences.count)).squareRoot(), 1e-8)
        let scaled = differences.map { Float(($0 - mean) / deviation) }

        var forecast = [Double](repeating: 0, count: holdout), loss = 0.0
        for member in 0..<ensemble {
            let (predicted, memberLoss) = try forecastDifferences(scaled, seed: seed &* UInt64(ensemble) &+ UInt64(member))
            for h in 0..<holdout { forecast[h] += Double(predicted[h]) / Double(ensemble) }
            loss += memberLoss / Double(ensemble)
        }
        // Each month's log is the log a season before it (observed, or forecast) plus its difference.
        var extendedLogs = logs
        for difference in forecast { extendedLogs.append(extendedLogs[extendedLogs.count - season] + difference * deviation + mean) }
        return (extendedLogs.suffix(holdout).map { Foundation.exp($0) }, loss)
    }

    /// One model, seeded by `seed`, trained on windows of the standardised differences `scaled`:
    /// its forecast of the next `holdout` of them and its last epoch's training loss.
    func forecastDifferences(_ scaled: [Float], seed: UInt64) throws -> ([Float], Double) {
        let outputs = recursive ? 1 : holdout
        // Window p is scaled[p..<p + window]; its target the `outputs` months after it.
        let targets = (0..<(scaled.count - window - outputs + 1)).map { Array(scaled[($0 + window)..<($0 + window + outputs)]) }
        let windows = try timeseriesDataset(data: scaled.map { [$0] }, targets: targets, sequenceLength: window)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: window, features: 1), layers: [LSTM(units: units), Dense(units: outputs)], seed: seed)
        try model.compile(optimizer: Adam(learningRate: learningRate), loss: MeanSquaredError())
        let history = try model.fit(windows, options: FitOptions(epochs: epochs, batchSize: batchSize, seed: seed))

        var known = scaled, prediction = [Float](repeating: 0, count: outputs)
        // Direct: one prediction of every month. Recursive: each predicted month becomes the last
        // of the next window.
        while known.count < scaled.count + holdout {
            let input = Array(known.suffix(window)) // time-major [window, 1, 1]
            input.withUnsafeBufferPointer { model.predict(x: $0.baseAddress!, batchSize: 1, into: &prediction) }
            known += prediction
        }
        return (Array(known[scaled.count...]), history.loss.last ?? .nan)
    }
}

/// The two baselines: the last training year repeated, and the same grown by that year's growth
/// over the year before it, compounded for each further year.
struct Baselines {
    let lastYear: [Double]
    let grown: [Double]
    let growth: Double

    init(training: [Double], horizon: Int, season: Int) {
        let last = Array(training.suffix(season)), before = Array(training.dropLast(season).suffix(season))
        growth = last.reduce(0, +) / before.reduce(0, +)
        lastYear = (0..<horizon).map { last[$0 % season] }
        grown = (0..<horizon).map { [growth] h in last[h % season] * Foundation.pow(growth, Double(h / season + 1)) }
    }
}

func rmse(_ predicted: [Double], _ truth: [Double]) -> Double {
    (zip(predicted, truth).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(truth.count)).squareRoot()
}

/// A message for bad input, printed by ArgumentParser with a non-zero exit.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The whole series, the held-out truth, the forecast and the growth baseline as an SVG line chart
/// with axes, ticks and a legend.
struct ForecastPicture {
    let series: [Double]
    let trainCount: Int
    let forecast: [Double]
    let baseline: [Double]
    let title: String
    let valueName: String

    let width = 900.0, height = 480.0
    let left = 70.0, right = 880.0, top = 50.0, bottom = 420.0

    func svg() -> String {
        let values = series + forecast + baseline
        let ticks = Self.ticks(values.min()!, values.max()!)
        let low = min(ticks.first!, values.min()!), high = max(ticks.last!, values.max()!)
        func px(_ month: Int) -> Double { left + (right - left) * Double(month) / Double(max(series.count - 1, 1)) }
        func py(_ value: Double) -> Double { bottom - (bottom - top) * (value - low) / (high - low) }
        func path(_ points: [(Int, Double)], color: String, width: Double, dash: String? = nil) -> String {
            let d = points.enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(f(px(p.0))),\(f(py(p.1)))" }.joined(separator: " ")
            let dashed = dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
            return "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(width)\"\(dashed)/>"
        }
        var svg = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(f(width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\(Self.escape(title))</text>",
        ]
        for tick in ticks {
            svg.append("<line x1=\"\(f(left))\" x2=\"\(f(right))\" y1=\"\(f(py(tick)))\" y2=\"\(f(py(tick)))\" stroke=\"#e5e5e5\"/>")
            svg.append("<text x=\"\(f(left - 6))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(Self.label(tick))</text>")
        }
        for month in stride(from: 0, to: series.count, by: 12) {
            svg.append("<line x1=\"\(f(px(month)))\" x2=\"\(f(px(month)))\" y1=\"\(f(bottom))\" y2=\"\(f(bottom + 5))\" stroke=\"black\"/>")
            svg.append("<text x=\"\(f(px(month)))\" y=\"\(f(bottom + 18))\" text-anchor=\"middle\">\(month + 1)</text>")
        }
        svg.append("<line x1=\"\(f(left))\" x2=\"\(f(right))\" y1=\"\(f(bottom))\" y2=\"\(f(bottom))\" stroke=\"black\"/>")
        svg.append("<line x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(top))\" y2=\"\(f(bottom))\" stroke=\"black\"/>")
        svg.append(
            "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 40))\" text-anchor=\"middle\">month (1 = the first row)</text>")
        svg.append(
            "<text transform=\"translate(18,\(f((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(valueName))</text>"
        )
        // Where the forecast starts.
        let origin = px(trainCount - 1)
        svg.append(
            "<line x1=\"\(f(origin))\" x2=\"\(f(origin))\" y1=\"\(f(top))\" y2=\"\(f(bottom))\" stroke=\"#999\" stroke-dasharray=\"3 3\"/>")
        let history = (0..<trainCount).map { ($0, series[$0]) }
        let held = (trainCount - 1..<series.count).map { ($0, series[$0]) }
        let anchor = (trainCount - 1, series[trainCount - 1])
        svg.append(path(history, color: "#555555", width: 1.5))
        svg.append(path(held, color: "#1f77b4", width: 2.5))
        svg.append(path([anchor] + baseline.enumerated().map { (trainCount + $0, $1) }, color: "#2ca02c", width: 1.5, dash: "2 3"))
        svg.append(path([anchor] + forecast.enumerated().map { (trainCount + $0, $1) }, color: "#d62728", width: 2.5, dash: "7 4"))
        let legend: [(String, String, String?)] = [
            ("training months", "#555555", nil), ("held-out truth", "#1f77b4", nil),
            ("LSTM forecast", "#d62728", "7 4"), ("growth baseline", "#2ca02c", "2 3"),
        ]
        for (i, entry) in legend.enumerated() {
            let y = top + 12 + Double(i) * 18
            let dashed = entry.2.map { " stroke-dasharray=\"\($0)\"" } ?? ""
            svg.append(
                "<line x1=\"\(f(left + 14))\" x2=\"\(f(left + 44))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"\(entry.1)\" stroke-width=\"2.5\"\(dashed)/>"
            )
            svg.append("<text x=\"\(f(left + 50))\" y=\"\(f(y + 4))\">\(entry.0)</text>")
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }

    static func label(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(format: "%g", value)
    }

    /// About five round values (1, 2 or 5 times a power of ten apart) spanning [low, high].
    static func ticks(_ low: Double, _ high: Double) -> [Double] {
        guard high > low else { return [low - 1, low, low + 1] }
        let raw = (high - low) / 5, power = Foundation.pow(10, (Foundation.log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        let first = (low / step).rounded(.down) * step
        return stride(from: first, through: (high / step).rounded(.up) * step + step / 2, by: step).map { $0 }
    }
}

Forecast.main()
