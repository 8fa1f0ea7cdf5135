import Foundation
import XCTest
@testable import RNNKit

/// The UEA/UCR `.ts` reader: a good file into time-major sequences, labels and class names (and a
/// `RaggedDataset`), and every refusal naming the file and the line.
final class UEATimeSeriesTests: XCTestCase {
    static let header = """
        # a comment
        @problemName Tiny Problem
        @timeStamps false
        @missing false
        @univariate false
        @dimensions 2
        @equalLength false
        @classLabel true a b c
        @data

        """

    func read(_ text: String, maximumValues: Int = UEATimeSeries.mostValues) throws -> UEATimeSeries.Classification {
        try UEATimeSeries.readClassification(Data(text.utf8), file: "t.ts", maximumValues: maximumValues)
    }

    func assertRefused(
        _ text: String, _ expected: String, maximumValues: Int = UEATimeSeries.mostValues, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try read(text, maximumValues: maximumValues), file: file, line: line) { error in
            guard let error = error as? FileFormatError else { return XCTFail("refused with \(error)", file: file, line: line) }
            XCTAssertEqual(error.format, .ts, file: file, line: line)
            XCTAssertEqual(error.description, "t.ts: " + expected, file: file, line: line)
        }
    }

    func testReadsCasesTimeMajorWithTheirLabels() throws {
        let file = try read(
            "\u{FEFF}" + Self.header + "1,2,3:4,5,6:b\r\n\n# between cases\n 0.5 , -1e-1:2.5,+3:a \n7:8:c\n")
        XCTAssertEqual(file.problemName, "Tiny Problem")
        XCTAssertEqual(file.classNames, ["a", "b", "c"])
        XCTAssertEqual(file.dimensions, 2)
        XCTAssertEqual(file.count, 3)
        XCTAssertEqual(file.sequences, [[[1, 4], [2, 5], [3, 6]], [[0.5, 2.5], [-0.1, 3]], [[7, 8]]])
        XCTAssertEqual(file.labels, [1, 0, 2])
        XCTAssertEqual(file.lengths, [3, 2, 1])
        let dataset = try file.dataset()
        XCTAssertEqual(dataset.count, 3)
        XCTAssertEqual(dataset.steps, 3)
        XCTAssertEqual(dataset.features, 2)
        XCTAssertEqual(dataset.classCount, 3)
        XCTAssertEqual((0..<3).map { dataset.length(at: $0) }, [3, 2, 1])
        XCTAssertEqual(try file.dataset(steps: 5).steps, 5)
    }

    func testHeadersAreOptionalOrCaseInsensitiveAsSktimeReadsThem() throws {
        // No @dimensions: the first case sets it; @univariate true means one; headers in any case.
        let file = try read("@PROBLEMNAME u\n@timestamps FALSE\n@Univariate true\n@classlabel true 1 2\n@DATA\n1,2:2\n3:1\n")
        XCTAssertEqual(file.dimensions, 1)
        XCTAssertEqual(file.sequences, [[[1], [2]], [[3]]])
        XCTAssertEqual(file.labels, [1, 0])
        let equal = try read(
            "@problemName e\n@timeStamps false\n@univariate false\n@equalLength true\n@seriesLength 2\n@classLabel true x\n@data\n1,2:3,4:x\n"
        )
        XCTAssertEqual(equal.sequences, [[[1, 3], [2, 4]]])
    }

    func testReadsTheSharedJapaneseVowelsFiles() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/datasets/japanese_vowels")
        let train = folder.appendingPathComponent("JapaneseVowels_TRAIN.ts")
        guard FileManager.default.fileExists(atPath: train.path) else {
            return XCTFail("\(train.path) is missing: the shared datasets (../shared/datasets) hold the UEA JapaneseVowels files")
        }
        let file = try UEATimeSeries.readClassification(contentsOf: train)
        XCTAssertEqual(file.problemName, "JapaneseVowels")
        XCTAssertEqual(file.count, 270)
        XCTAssertEqual(file.dimensions, 12)
        XCTAssertEqual(file.classNames, (1...9).map(String.init))
        XCTAssertEqual(file.lengths.min(), 7)
        XCTAssertEqual(file.lengths.max(), 26)
        XCTAssertEqual((0..<9).map { label in file.labels.filter { $0 == label }.count }, Array(repeating: 30, count: 9))
        XCTAssertEqual(file.sequences[0][0][0], 1.860936)
        XCTAssertEqual(file.sequences[0][1][0], 1.891651)
        XCTAssertEqual(file.sequences[0][0][1], -0.207383)
    }

    func testRefusesBadHeaders() {
        let body = "1:2:a\n"
        assertRefused("", "has no @data line: the headers never end")
        assertRefused("# only a comment\n", "has no @data line: the headers never end")
        assertRefused(
            "@problemName p\n1,2:a\n", "line 2 is '1,2:a' before @data: a header line starts with @ (or the @data line is missing)")
        assertRefused("@problemName p\n@colour blue\n@data\n", "line 2 has the unknown header '@colour'")
        assertRefused("@problemName p\n@problemname q\n", "line 2 repeats the header '@problemname'")
        assertRefused("@problemName\n", "line 1 is @problemName with no name")
        assertRefused("@timeStamps true\n", "line 1 says @timeStamps true: time stamps are not supported")
        assertRefused("@timeStamps maybe\n", "line 1 is '@timeStamps maybe': @timeStamps takes true or false")
        assertRefused(
            "@dimensions -2\n", "line 1 is '@dimensions -2': @dimensions takes a whole number from 1 to \(UEATimeSeries.mostValues)")
        assertRefused("@classLabel false\n", "line 1 says @classLabel false: only classification files (with class labels) are read")
        assertRefused("@classLabel true\n", "line 1 says @classLabel true but declares no labels")
        assertRefused("@classLabel true a b a\n", "line 1 declares a class label twice")
        assertRefused("@classLabel\n", "line 1 is '@classLabel': @classLabel takes true and the labels, or false")
        assertRefused(
            "@targetLabel true\n", "line 1 has @targetLabel: regression files are not supported, only classification (@classLabel true …)")
        assertRefused("@data now\n", "line 1 is '@data now': @data takes nothing after it")
        assertRefused("@timeStamps false\n@univariate false\n@classLabel true a\n@data\n" + body, "has no @problemName header before @data")
        assertRefused("@problemName p\n@univariate false\n@classLabel true a\n@data\n" + body, "has no @timeStamps header before @data")
        assertRefused("@problemName p\n@timeStamps false\n@classLabel true a\n@data\n" + body, "has no @univariate header before @data")
        assertRefused("@problemName p\n@timeStamps false\n@univariate false\n@data\n" + body, "has no @classLabel header before @data")
        assertRefused(
            "@problemName p\n@timeStamps false\n@univariate true\n@dimensions 2\n@classLabel true a\n@data\n" + body,
            "says @univariate true but @dimensions 2")
    }

    func testRefusesBadCases() {
        let h = Self.header
        let line = 10 // the first case's line after the header
        assertRefused(h, "has no cases after @data")
        assertRefused(h + "# nothing\n\n", "has no cases after @data")
        assertRefused(h + "1,2,3\n", "line \(line) is '1,2,3': a case is its dimensions separated by ':', then ':' and its class label")
        assertRefused(h + "1:2:d\n", "line \(line) has the class label 'd', which @classLabel does not declare")
        assertRefused(h + "1:2:\n", "line \(line) has the class label '', which @classLabel does not declare")
        assertRefused(h + "1:a\n", "line \(line) has 1 dimension; the file has 2")
        assertRefused(h + "1:2:3:a\n", "line \(line) has 3 dimensions; the file has 2")
        assertRefused(h + "1,2:3:a\n", "line \(line) has 1 values in dimension 2 but 2 in dimension 1")
        assertRefused(h + "1,?:3,4:a\n", "line \(line) dimension 1 has a missing value ('?'): missing values are not supported")
        assertRefused(h + "1,2:3,x:a\n", "line \(line) dimension 2, value 2 is 'x', not a finite decimal number")
        assertRefused(h + "1,2:3,nan:a\n", "line \(line) dimension 2, value 2 is 'nan', not a finite decimal number")
        assertRefused(h + "1,2:3,inf:a\n", "line \(line) dimension 2, value 2 is 'inf', not a finite decimal number")
        assertRefused(h + "1e39:3:a\n", "line \(line) dimension 1, value 1 is '1e39', not a finite decimal number")
        assertRefused(h + "0x10:3:a\n", "line \(line) dimension 1, value 1 is '0x10', not a finite decimal number")
        assertRefused(h + "1,,2:3,4,5:a\n", "line \(line) dimension 1 has an empty value (value 2)")
        assertRefused(h + ":3:a\n", "line \(line) dimension 1 is empty")
        assertRefused(h + "1,2:3,4:a\n5:6:b\n1,x:1,2:c\n", "line \(line + 2) dimension 1, value 2 is 'x', not a finite decimal number")
        assertRefused(
            h + String(repeating: "9", count: 500) + ":1:a\n",
            "line \(line) dimension 1, value 1 is '" + String(repeating: "9", count: 39) + "…', not a finite decimal number")
        // One dimension but @dimensions absent: the first case sets the count for the rest.
        let open = "@problemName p\n@timeStamps false\n@univariate false\n@classLabel true a\n@data\n"
        assertRefused(open + "1:2:a\n1:a\n", "line 7 has 1 dimension; the file has 2")
        // @equalLength true: every case as long as the first, and as @seriesLength says.
        let equal = "@problemName p\n@timeStamps false\n@univariate true\n@equalLength true\n@classLabel true a\n@data\n"
        assertRefused(equal + "1,2:a\n1:a\n", "line 8 has 1 steps but line 7 has 2, and the file says @equalLength true")
        assertRefused(
            "@problemName p\n@timeStamps false\n@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n",
            "line 8 has 2 steps; @seriesLength says 3")
    }

    func testBoundsTheWorkAHostileFileCanAsk() throws {
        let h = Self.header
        assertRefused(
            h + "1,2:3,4:a\n5,6:7,8:b\n", "line 11 brings the values read to more than the 6 RNNKit reads from a file", maximumValues: 6)
        XCTAssertEqual(try read(h + "1,2:3,4:a\n5:7:b\n", maximumValues: 6).count, 2)
        assertRefused(
            "@problemName p\n@timeStamps false\n@univariate false\n@classLabel true "
                + (0...UEATimeSeries.mostClasses).map(String.init)
                .joined(separator: " ") + "\n",
            "line 4 declares \(UEATimeSeries.mostClasses + 1) class labels, more than the \(UEATimeSeries.mostClasses) RNNKit reads")
        // Files: missing, not regular, larger than allowed.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-ts-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try UEATimeSeries.readClassification(contentsOf: folder.appendingPathComponent("absent.ts"))) { error in
            XCTAssertEqual((error as? FileFormatError)?.format, .ts)
            XCTAssertTrue("\(error)".hasSuffix("absent.ts: does not exist"), "\(error)")
        }
        XCTAssertThrowsError(try UEATimeSeries.readClassification(contentsOf: folder)) { error in
            XCTAssertTrue("\(error)".hasSuffix(": is not a regular file (a folder, a pipe or a device)"), "\(error)")
        }
        let url = folder.appendingPathComponent("t.ts")
        try Data((h + "1:2:a\n").utf8).write(to: url)
        XCTAssertEqual(try UEATimeSeries.readClassification(contentsOf: url).count, 1)
        XCTAssertThrowsError(try UEATimeSeries.readClassification(contentsOf: url, maximumBytes: 10)) { error in
            XCTAssertTrue("\(error)".contains("more than the 10 RNNKit reads from such a file"), "\(error)")
        }
    }
}
