import Foundation
import XCTest

/// The variable-length example of docs/GUIDE.md, `Examples/adding-problem`, run in its release build
/// (`make test` builds it; a debug build takes a minute) on shorter sequences: Masking → LSTM →
/// Dense under mean squared error must learn the task.
final class AddingProblemTests: XCTestCase {
    func testTheAddingProblemIsLearned() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/release/adding-problem")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            return XCTFail("\(binary.path) is missing: `make test` builds it (swift build -c release --product adding-problem)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["20", "600"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(output)
        XCTAssertEqual(process.terminationStatus, 0, output)
        // "… test MSE 0.0103 after 600 steps …": well below the 0.167 of predicting the mean.
        let error = try XCTUnwrap(
            output.components(separatedBy: "test MSE ").last?.split(separator: " ").first.flatMap { Double($0) }, output)
        XCTAssertLessThan(error, 0.05, output)
    }
}
