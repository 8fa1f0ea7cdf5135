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
        try Sequential(
            inputShape: .sequence(steps: 28, features: 28),
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
            XCTAssertEqual(
                lines,
                [
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
            XCTAssertEqual(
                error as? ModelError,
                .weightsMismatch([
                    "dense/bias: missing (the model has shape [10])", "extra/kernel: not a weight of this model (shape [10])",
                ]))
        }
    }

    func testDamagedFilesAreRefused() throws {
        let good = try SafeTensors.encode(model().weights)
        let cases: [(String, Data)] = [
            ("too short", Data([1, 2, 3])),
            ("runs past the end", Data([0, 0, 0, 0, 0, 0, 0, 255]) + good.dropFirst(8)),
            (
                "not a JSON object",
                {
                    var d = good; d[8] = UInt8(ascii: "x"); return d
                }()
            ),
            ("bytes after the last tensor", good + Data([0, 0, 0, 0])),
            ("offsets", good.dropLast(4)),
        ]
        for (expected, data) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(data, file: "w.safetensors", as: Float.self), expected) { error in
                XCTAssertTrue("\(error)".hasPrefix("w.safetensors: "), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
        let integers = Self.crafted(
            #"{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#, dataBytes: 6)
        XCTAssertThrowsError(try SafeTensors.decode(integers, file: "w", as: Double.self)) { error in
            XCTAssertEqual("\(error)", "w: tensors of a dtype that is not floating point (F32, F64, F16, BF16 are read): a (I32), b (U8)")
        }
        XCTAssertThrowsError(try model().loadWeights(from: folder.appendingPathComponent("absent.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("absent.safetensors: cannot be read"), "\(error)")
        }
    }

    /// A safetensors file from a header text (padded), with `dataBytes` zero data bytes.
    static func crafted(_ header: String, dataBytes: Int) -> Data {
        var json = Data(header.utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        return file + json + Data(count: dataBytes)
    }

    /// Crafted headers: sizes that overflow, many tensors aliasing one range, duplicate names,
    /// other formats; and non-finite weights refused by name.
    func testCraftedFilesAreRefusedBeforeAllocating() throws {
        let cases: [(String, Data)] = [
            (
                "element count overflows",
                Self.crafted(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#, dataBytes: 4)
            ),
            (
                "byte size that overflows",
                Self.crafted(#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, dataBytes: 4)
            ),
            (
                "overlap another tensor",
                Self.crafted(
                    "{" + (0..<1500).map { #""t\#($0)":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"# }.joined(separator: ",") + "}",
                    dataBytes: 4)
            ),
            (
                "duplicate name a",
                Self.crafted(
                    #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    dataBytes: 8)
            ),
            ("an HDF5 file", Data([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) + Data(count: 100)),
            ("a zip archive", Data([0x50, 0x4B, 0x03, 0x04]) + Data(count: 100)),
        ]
        for (expected, data) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(data, file: "c.safetensors", as: Float.self), expected) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
        // Keys inside tensor entries are not names; a nested "a" does not count as a duplicate.
        XCTAssertEqual(SafeTensors.topLevelKeys(Data(#"{"a":{"b":1,"a":[2,{"a":3}]},"c\"d":"a"}"#.utf8)), ["a", "c\"d"])

        var weights = try model().weights
        weights["dense/bias"]!.scalars[3] = .nan
        let url = folder.appendingPathComponent("nan.safetensors")
        try SafeTensors.encode(weights).write(to: url)
        XCTAssertThrowsError(try model().loadWeights(from: url)) { error in
            XCTAssertTrue("\(error)".contains("tensor dense/bias holds nan at element 3"), "\(error)")
        }
    }

    /// F64, F16 and BF16 tensors become the model's scalars; a Double model loads a Float file.
    func testOtherFloatingPointTypesAreConverted() throws {
        // 1.5, −2, 65504 (largest half), 2^-24 (smallest subnormal half) as F16; 1.5, −2 as BF16.
        let half: [UInt16] = [0x3E00, 0xC000, 0x7BFF, 0x0001], brain: [UInt16] = [0x3FC0, 0xC000]
        var body = Data()
        for value in half + brain { withUnsafeBytes(of: value.littleEndian) { body.append(contentsOf: $0) } }
        for value in [0.1, -3.25] { withUnsafeBytes(of: value) { body.append(contentsOf: $0) } }
        var file = Self.crafted(
            #"{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"d":{"dtype":"F64","shape":[2],"data_offsets":[12,28]}}"#,
            dataBytes: 0)
        file.append(body)
        let tensors = try SafeTensors.decode(file, file: "mixed", as: Double.self).tensors
        XCTAssertEqual(tensors["h"]?.scalars, [1.5, -2, 65504, 0x1p-24])
        XCTAssertEqual(tensors["b"]?.scalars, [1.5, -2])
        XCTAssertEqual(tensors["d"]?.scalars, [0.1, -3.25])
        XCTAssertEqual(try SafeTensors.decode(file, file: "mixed", as: Float.self).tensors["d"]?.scalars, [0.1, -3.25])

        let url = folder.appendingPathComponent("float.safetensors")
        let float = try model(seed: 4)
        try float.saveWeights(to: url)
        let double = try Sequential<Double>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN<Double>(units: 10), Dense<Double>(units: 10, activation: .softmax)])
        try double.loadWeights(from: url)
        XCTAssertEqual(double.weights["dense/kernel"]?.scalars, float.weights["dense/kernel"]?.scalars.map(Double.init))
    }

    /// Keras 3's variable paths name the same weights; an optimiser's tensors are skipped with a note.
    func testKerasPathsAreAliasesAndOptimizerTensorsAreSkipped() throws {
        let source = try model(seed: 5)
        var tensors: [String: Tensor<Float>] = [:]
        for (name, tensor) in source.weights {
            let path =
                name.hasPrefix("simple_rnn/")
                ? "sequential/simple_rnn/simple_rnn_cell/" + name.dropFirst("simple_rnn/".count) : "sequential/" + name
            tensors[path] = tensor
        }
        tensors["optimizer/slot0"] = Tensor(shape: [500], scalars: Array(repeating: 0, count: 500))
        tensors["adam/m_0"] = Tensor(shape: [3], scalars: [1, 2, 3])
        let url = folder.appendingPathComponent("keras-paths.safetensors")
        try SafeTensors.encode(tensors).write(to: url)
        let target = try model(seed: 6)
        let notes = try target.loadWeights(from: url)
        XCTAssertEqual(target.weights, source.weights)
        XCTAssertEqual(notes, ["\(url.path): skipped 2 tensors that are not weights (an optimiser's state): adam/m_0, optimizer/slot0"])
    }
}
