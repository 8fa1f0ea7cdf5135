import XCTest
@testable import RNNKit

final class BoundedMessageTests: XCTestCase {
    /// Text within the limits is unchanged (an empty line and a trailing newline included).
    func testShortTextIsUnchanged() {
        for text in [
            "", "one line", "two\nlines\n", String(repeating: "x", count: 4000),
            Array(repeating: "l", count: 40).joined(separator: "\n"),
        ] {
            XCTAssertEqual(boundedMessage(text), text)
        }
    }

    /// Too many lines: the first 39 are kept and the last line counts the rest.
    func testManyLinesKeepTheFirstAndCountTheRest() {
        let text = (1...1000).map { "line \($0)" }.joined(separator: "\n")
        let bounded = boundedMessage(text)
        let lines = bounded.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 40)
        XCTAssertEqual(lines.first, "line 1")
        XCTAssertEqual(lines[38], "line 39")
        XCTAssertEqual(lines.last, "… (961 more lines)")
        XCTAssertEqual(boundedMessage("a\nb\nc\nd", maxLines: 3), "a\nb\n… (2 more lines)")
    }

    /// One huge line (a one-line error naming a crafted value) stays one line, cut with a count.
    func testALongLineIsCutOnTheSameLine() {
        let text = "error: " + String(repeating: "é", count: 100_000)
        let bounded = boundedMessage(text)
        XCTAssertFalse(bounded.contains("\n"))
        XCTAssertLessThanOrEqual(bounded.count, 4000)
        XCTAssertTrue(bounded.hasPrefix("error: ééé"))
        XCTAssertTrue(bounded.hasSuffix(" … (\(100_007 - 3900) more characters)"), String(bounded.suffix(60)))
    }

    /// Many long lines: cut by characters first, both notes given, and both limits hold.
    func testBothLimitsHold() {
        let text = (1...500).map { "\($0): " + String(repeating: "x", count: 300) }.joined(separator: "\n")
        for (lines, characters) in [(40, 4000), (5, 100_000), (1000, 500), (3, 150)] {
            let bounded = boundedMessage(text, maxLines: lines, maxCharacters: characters)
            XCTAssertLessThanOrEqual(bounded.split(separator: "\n", omittingEmptySubsequences: false).count, lines)
            XCTAssertLessThanOrEqual(bounded.count, characters)
            XCTAssertTrue(bounded.hasPrefix("1: xxx"))
            XCTAssertTrue(bounded.hasSuffix(" more lines)"), bounded)
        }
        let bounded = boundedMessage(text)
        // 3900 characters of content: 12 whole lines of 304 and a newline each, then part of the 13th.
        XCTAssertTrue(bounded.contains("\n13: xxx"))
        XCTAssertTrue(bounded.contains(" more characters)\n… (487 more lines)"), String(bounded.suffix(80)))
    }
}
