import Foundation
import XCTest

/// The character-level example, `Examples/char-words`, run in its release build on a random 20,000
/// of wamerican's lowercase words for five epochs of a smaller LSTM (128 units): Embedding → LSTM →
/// per-step softmax must beat the character bigram fitted on the same training words, in
/// validation bits per character, by a clear margin.
final class CharWordsTests: XCTestCase {
    private let charWords = ExampleBinary(name: "char-words")

    func testTheModelBeatsTheBigram() throws {
        let words = "/usr/share/dict/american-english"
        guard FileManager.default.isReadableFile(atPath: words) else {
            return XCTFail("\(words) is missing: `make deps` installs it (Debian's wamerican package)")
        }
        let (output, errors, status, _) = try charWords.run([
            "--words", words, "--max-words", "20000", "--epochs", "5", "--units", "128", "--samples", "5",
        ])
        print(output)
        XCTAssertEqual(status, 0, output + errors)
        // The last line: "validation bits/char: model X.XXX, bigram Y.YYY".
        let last = try XCTUnwrap(output.split(separator: "\n").last, output)
        let figures = last.split(whereSeparator: { " ,".contains($0) }).compactMap { Double($0) }
        XCTAssertTrue(last.hasPrefix("validation bits/char: model "), output)
        XCTAssertEqual(figures.count, 2, output)
        guard figures.count == 2 else { return }
        let (model, bigram) = (figures[0], figures[1])
        XCTAssertGreaterThan(bigram, 3, "the bigram scores about 3.3 bits/char on these words: \(output)")
        XCTAssertLessThan(model, bigram - 0.4, "the model must beat the bigram by a clear margin: \(output)")
    }

    /// A word list that is not there is refused with a message naming it and `make deps`, not a trap.
    func testAMissingWordListIsRefusedClearly() throws {
        let (_, message, status, _) = try charWords.run(["--words", "/nonexistent/words"])
        XCTAssertEqual(status, 1, message)
        XCTAssertTrue(message.contains("cannot read the word list /nonexistent/words"), message)
        XCTAssertTrue(message.contains("make deps"), message)
    }
}
