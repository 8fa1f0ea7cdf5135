import Foundation
import XCTest
@testable import RNNKit

final class SafeTensorsTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-safetensors-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func model(units: Int = 10, seed: UInt64 = 0) throws -> Sequential<Float> {
        try Sequential(inputShape: .sequence(steps: 28, features: 28),
                       layers: [SimpleRNN<Float>(units: units), Dense<Float>(units: 10, activation: .softmax)], seed: seed)
    }

    func testRoundTrip() throws {
        let url = folder.appendingPathComponent("w.safetensors")
        let saved = try model(seed: 1)
        try saved.saveWeights(to: url, metadata: ["format": "keras"])
        let loaded = try model(seed: 2)
        XCTAssertNotEqual(loaded.weights, saved.weights)
        try loaded.loadWeights(from: url)
        XCTAssertEqual(loaded.weights, saved.weights)

        // The layout is the format's: 8-byte length, JSON header, data aligned to 8.
        let data = try Data(contentsOf: url)
        let length = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        XCTAssertEqual(length % 8, 0)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        let kernel = header["simple_rnn/kernel"] as! [String: Any]
        XCTAssertEqual(kernel["dtype"] as? String, "F32")
        XCTAssertEqual(kernel["shape"] as? [Int], [28, 10])
        XCTAssertEqual((header["__metadata__"] as? [String: String])?["format"], "keras")
        XCTAssertEqual(data.count, 8 + length + 500 * 4)
    }

    func testMismatchedWeightsAreRefusedWithEveryDifference() throws {
        let url = folder.appendingPathComponent("w16.safetensors")
        try model(units: 16).saveWeights(to: url)
        let target = try model(units: 10)
        let before = target.weights
        XCTAssertThrowsError(try target.loadWeights(from: url)) { error in
            guard case ModelError.weightsMismatch(let lines) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(lines, [
                "simple_rnn/kernel: the model has shape [28, 10], the file has [28, 16]",
                "simple_rnn/recurrent_kernel: the model has shape [10, 10], the file has [16, 16]",
                "simple_rnn/bias: the model has shape [10], the file has [16]",
                "dense/kernel: the model has shape [10, 10], the file has [16, 10]",
            ])
        }
        XCTAssertEqual(target.weights, before)
        var renamed = before
        renamed["extra/kernel"] = renamed.removeValue(forKey: "dense/bias")
        XCTAssertThrowsError(try target.setWeights(renamed)) { error in
            XCTAssertEqual(error as? ModelError, .weightsMismatch([
                "dense/bias: missing (the model has shape [10])", "extra/kernel: not a weight of this model (shape [10])"]))
        }
    }

    func testDamagedFilesAreRefused() throws {
        let good = try SafeTensors.encode(model().weights)
        let cases: [(String, Data)] = [
            ("too short", Data([1, 2, 3])),
            ("runs past the end", Data([0, 0, 0, 0, 0, 0, 0, 255]) + good.dropFirst(8)),
            ("not a JSON object", { var d = good; d[8] = UInt8(ascii: "x"); return d }()),
            ("bytes after the last tensor", good + Data([0, 0, 0, 0])),
            ("offsets", good.dropLast(4)),
        ]
        for (expected, data) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(data, file: "w.safetensors", as: Float.self), expected) { error in
                XCTAssertTrue("\(error)".hasPrefix("w.safetensors: "), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
        XCTAssertThrowsError(try SafeTensors.decode(good, file: "w", as: Double.self)) { error in
            XCTAssertTrue("\(error)".contains("dtype F32, expected F64"), "\(error)")
        }
        XCTAssertThrowsError(try model().loadWeights(from: folder.appendingPathComponent("absent.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("absent.safetensors: cannot be read"), "\(error)")
        }
    }
}
