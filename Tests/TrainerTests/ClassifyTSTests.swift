import Foundation
import XCTest

/// The speaker-recognition example, `Examples/classify-ts`, run in its release build on the shared
/// UEA JapaneseVowels files with seed 0: it must reach the floor of 0.96 test accuracy, say so on
/// its last line, and write its metrics and pictures.
final class ClassifyTSTests: XCTestCase {
    private let classifyTS = ExampleBinary(name: "classify-ts")

    func testSpeakerRecognitionReachesTheFloor() throws {
        let train = try ExampleBinary.sharedFile("datasets/japanese_vowels/JapaneseVowels_TRAIN.ts")
        let test = try ExampleBinary.sharedFile("datasets/japanese_vowels/JapaneseVowels_TEST.ts")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-classify-ts-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let (printed, errors, status, _) = try classifyTS.run([
            "--train", train.path, "--test", test.path, "--seed", "0", "--output", output.path,
        ])
        print(printed)
        XCTAssertEqual(status, 0, printed + errors)
        let last = try XCTUnwrap(printed.split(separator: "\n").last, printed)
        XCTAssertTrue(last.hasPrefix("test accuracy: "), printed)
        let accuracy = try XCTUnwrap(Double(last.dropFirst("test accuracy: ".count)), printed)
        XCTAssertGreaterThanOrEqual(accuracy, 0.96, printed)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json")))
        let written = try XCTUnwrap((metrics as? [String: Any])?["test_accuracy"] as? Double)
        XCTAssertEqual(written, accuracy, accuracy: 5e-5)
        for picture in ["training.svg", "confusion.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent(picture).path), picture)
        }
    }

    func testABadFileIsRefusedWithAMessage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-classify-ts-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bad = folder.appendingPathComponent("bad.ts")
        try Data("@problemName p\n@timeStamps false\n@univariate true\n@classLabel true a\n@data\n1,?:a\n".utf8).write(to: bad)
        let (_, message, status, _) = try classifyTS.run(["--train", bad.path, "--test", bad.path])
        XCTAssertNotEqual(status, 0, message)
        XCTAssertEqual(
            message, "classify-ts: \(bad.path): line 6 dimension 1 has a missing value ('?'): missing values are not supported\n")
    }
}
