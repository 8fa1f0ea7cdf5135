import Foundation
import XCTest

/// The speaker-recognition example, `Examples/classify-ts`, run in its release build on the shared
/// UEA JapaneseVowels files with seed 0: it must reach the floor of 0.96 test accuracy, say so on
/// its last line, and write its metrics and pictures.
final class ClassifyTSTests: XCTestCase {
    func testSpeakerRecognitionReachesTheFloor() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/release/classify-ts")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            return XCTFail("\(binary.path) is missing: build it with swift build -c release --product classify-ts")
        }
        let data = root.deletingLastPathComponent().appendingPathComponent("shared/datasets/japanese_vowels")
        let train = data.appendingPathComponent("JapaneseVowels_TRAIN.ts"), test = data.appendingPathComponent("JapaneseVowels_TEST.ts")
        for file in [train, test] where !FileManager.default.fileExists(atPath: file.path) {
            return XCTFail("\(file.path) is missing: the shared datasets (../shared/datasets/japanese_vowels) hold the UEA files")
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-classify-ts-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--train", train.path, "--test", test.path, "--seed", "0", "--output", output.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let printed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(printed)
        XCTAssertEqual(process.terminationStatus, 0, printed)
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
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/release/classify-ts")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            return XCTFail("\(binary.path) is missing: build it with swift build -c release --product classify-ts")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-classify-ts-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bad = folder.appendingPathComponent("bad.ts")
        try Data("@problemName p\n@timeStamps false\n@univariate true\n@classLabel true a\n@data\n1,?:a\n".utf8).write(to: bad)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--train", bad.path, "--test", bad.path]
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertNotEqual(process.terminationStatus, 0, message)
        XCTAssertEqual(
            message, "classify-ts: \(bad.path): line 6 dimension 1 has a missing value ('?'): missing values are not supported\n")
    }
}
