import Foundation
import XCTest

/// The variable-length example of docs/GUIDE.md, `Examples/adding-problem`, run in its release build
/// (`make test` builds it; a debug build takes a minute) on shorter sequences: Masking → LSTM →
/// Dense under mean squared error must learn the task.
final class AddingProblemTests: XCTestCase {
    func testTheAddingProblemIsLearned() throws {
        let (output, errors, status, _) = try ExampleBinary(name: "adding-problem").run(["20", "600"])
        print(output)
        XCTAssertEqual(status, 0, output + errors)
        // "… test MSE 0.0103 after 600 steps …": well below the 0.167 of predicting the mean.
        let error = try XCTUnwrap(
            output.components(separatedBy: "test MSE ").last?.split(separator: " ").first.flatMap { Double($0) }, output)
        XCTAssertLessThan(error, 0.05, output)
    }
}
