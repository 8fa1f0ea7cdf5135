import Foundation
import XCTest

/// The forecasting example, `Examples/forecast` (docs/examples/forecast.md), run in its release
/// build on the airline passengers of the shared data sets: trained on the first 120 months, its
/// forecast of the last 24 must beat the better baseline (the last year scaled by its growth,
/// RMSE 56.4), and `--output` must write the picture and the metrics.
final class ForecastTests: XCTestCase {
    private let forecast = ExampleBinary(name: "forecast")

    func run(_ arguments: [String]) throws -> (output: String, errors: String, status: Int32, exited: Bool) {
        try forecast.run(arguments)
    }

    func airline() throws -> URL { try ExampleBinary.sharedFile("datasets/airline/Airline.csv") }

    func testTheForecastBeatsTheGrowthBaseline() throws {
        let csv = try airline()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-forecast-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (output, errors, status, _) = try run(["--csv", csv.path, "--holdout", "24", "--seed", "0", "--output", folder.path])
        print(output)
        XCTAssertEqual(status, 0, output + errors)
        // The program's own baselines: they check its holdout indexing.
        XCTAssertTrue(output.contains("baseline, the last year repeated: RMSE 76.99"), output)
        XCTAssertTrue(output.contains("RMSE 56.43"), output)
        let last = try XCTUnwrap(output.split(separator: "\n").last, output)
        XCTAssertTrue(last.hasPrefix("RMSE: "), output)
        let rmse = try XCTUnwrap(Double(last.dropFirst("RMSE: ".count)), output)
        XCTAssertLessThan(rmse, 56.4, output)
        let svg = try String(contentsOf: folder.appendingPathComponent("forecast.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("LSTM forecast") && svg.contains("held-out truth"), svg)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("metrics.json")))
        let rmseInFile = try XCTUnwrap((metrics as? [String: Any])?["rmse"] as? Double)
        XCTAssertEqual(rmseInFile, rmse, accuracy: 0.005)
    }

    /// Bad input: a message naming what is wrong and a non-zero exit, never a trap.
    func testBadInputIsRefused() throws {
        let csv = try airline()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-forecast-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let short = folder.appendingPathComponent("short.csv")
        try Data("Date,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n".utf8).write(to: short)
        let cases: [([String], String)] = [
            (["--csv", folder.appendingPathComponent("absent.csv").path], "absent.csv: does not exist"),
            (["--csv", short.path, "--holdout", "1"], "the series is too short"),
            (["--csv", csv.path, "--holdout", "144"], "--holdout 144 leaves no training months: the series has 144"),
            (["--csv", csv.path, "--column", "Fares"], "has no column 'Fares'"),
            (["--csv", csv.path, "--holdout", "0"], "--holdout must be at least 1"),
        ]
        for (arguments, expected) in cases {
            let (output, errors, status, exited) = try run(arguments)
            XCTAssertTrue(exited, "\(arguments): ended by signal \(status), not an exit: \(errors)")
            XCTAssertNotEqual(status, 0, "\(arguments): \(output)")
            XCTAssertTrue(errors.contains(expected), "\(arguments): expected '\(expected)' in: \(errors)")
        }
    }
}
