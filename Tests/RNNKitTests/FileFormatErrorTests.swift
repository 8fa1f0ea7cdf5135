import Foundation
import XCTest
@testable import RNNKit
@testable import RNNKitKeras

/// Every parser refuses a bad file with the one `FileFormatError`, naming the file and the
/// format whose reader refused it; the message is the path, a colon and the reason.
final class FileFormatErrorTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-format-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    private func refusal(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> FileFormatError? {
        do { try body() } catch let error as FileFormatError { return error } catch {
            XCTFail("refused with \(type(of: error)), not FileFormatError: \(error)", file: file, line: line)
            return nil
        }
        XCTFail("not refused", file: file, line: line)
        return nil
    }

    func testTheDescriptionIsThePathAndTheReason() {
        XCTAssertEqual("\(FileFormatError(file: "a/b.idx", format: .idx, reason: "is empty"))", "a/b.idx: is empty")
        XCTAssertEqual("\(FileFormatError(file: nil, format: .gzip, reason: "the file is empty"))", "the file is empty")
    }

    func testIDXAndGzip() throws {
        let labels = Data([0, 0, 8, 1, 0, 0, 0, 2, 3, 4])
        let wrongMagic = refusal { _ = try IDX.parseImages(labels, file: "labels.idx") }
        XCTAssertEqual(wrongMagic?.format, .idx)
        XCTAssertEqual(wrongMagic?.file, "labels.idx")
        XCTAssertTrue(
            wrongMagic?.description.hasPrefix("labels.idx: has magic number 2049, expected 2051") ?? false,
            "\(String(describing: wrongMagic))")
        // Damaged gzip inside an IDX file: gzip's reason, named by the IDX file.
        let truncated = Data([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0x63])
        let damaged = refusal { _ = try IDX.parseLabels(truncated, file: "labels.gz") }
        XCTAssertEqual(damaged?.format, .gzip)
        XCTAssertEqual(damaged?.file, "labels.gz")
        // Gzip alone knows no file.
        let bare = refusal { _ = try Gzip.decompress(truncated) }
        XCTAssertEqual(bare?.format, .gzip)
        XCTAssertNil(bare?.file)
        XCTAssertEqual(bare?.description, bare?.reason)
        let missing = refusal { _ = try IDX.readLabels(root.appendingPathComponent("absent.idx")) }
        XCTAssertEqual(missing?.description, root.appendingPathComponent("absent.idx").path + ": does not exist")
    }

    func testSafeTensors() {
        let error = refusal { _ = try SafeTensors.decode(Data([1, 2, 3]), file: "w.safetensors", as: Float.self) }
        XCTAssertEqual(
            error, FileFormatError(file: "w.safetensors", format: .safetensors, reason: "too short for a safetensors file (3 bytes)"))
    }

    func testKerasArchiveConfigAndWeights() throws {
        let text = root.appendingPathComponent("model.keras")
        try Data("not a zip".utf8).write(to: text)
        let archive = refusal { _ = try Keras.loadModel(from: text, as: Float.self) }
        XCTAssertEqual(archive?.format, .kerasArchive)
        XCTAssertEqual(
            archive?.description,
            "\(text.path): is not a zip archive; a .keras file is a zip of config.json, metadata.json and model.weights.h5")
        let config = refusal { _ = try Keras.buildModel(config: Data("[1".utf8), file: "config.json", as: Float.self) }
        XCTAssertEqual(config?.format, .kerasConfig)
        XCTAssertEqual(config?.file, "config.json")
        let weights = root.appendingPathComponent("model.weights.h5")
        try Data("not hdf5".utf8).write(to: weights)
        let model = try Sequential<Float>(inputShape: .sequence(steps: 2, features: 2), layers: [SimpleRNN(units: 2)])
        let hdf5 = refusal { try model.loadKerasWeights(from: weights) }
        XCTAssertEqual(hdf5?.format, .hdf5Weights)
        XCTAssertEqual(hdf5?.description, "\(weights.path): is not an HDF5 file (no HDF5 signature at its start)")
    }
}
