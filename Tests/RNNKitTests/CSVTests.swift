import Foundation
import XCTest
@testable import RNNKit

/// Numeric CSV: headers found or not, quoted cells, `\r\n`, chosen columns, and every refusal
/// naming the file, the line and the column.
final class CSVTests: XCTestCase {
    func read(
        _ text: String, header: CSV.Header = .automatic, delimiter: Character = ",", columns: [String]? = nil, skip: Bool = false
    ) throws -> CSV.Numbers {
        try CSV.readNumbers(
            Data(text.utf8), file: "t.csv", header: header, delimiter: delimiter, columns: columns, skipNonNumericColumns: skip)
    }

    func assertRefused(
        _ text: String, _ expected: String, header: CSV.Header = .automatic, delimiter: Character = ",", columns: [String]? = nil,
        skip: Bool = false, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try read(text, header: header, delimiter: delimiter, columns: columns, skip: skip), file: file, line: line) {
            error in
            guard let error = error as? FileFormatError else { return XCTFail("refused with \(error)", file: file, line: line) }
            XCTAssertEqual(error.format, .csv, file: file, line: line)
            XCTAssertEqual(error.description, "t.csv: " + expected, file: file, line: line)
        }
    }

    func testReadsNumbersWithAndWithoutAHeader() throws {
        let table = try read("\u{FEFF}a,\"b\"\r\n1, 2.5\r\n\r\n\"-3\",4e-2\r\n")
        XCTAssertEqual(table.columnNames, ["a", "b"])
        XCTAssertEqual(table.rows, [[1, 2.5], [-3, 0.04]])
        XCTAssertEqual(table.rowCount, 2)
        XCTAssertEqual(table.columnCount, 2)
        XCTAssertEqual(table.column("b"), [2.5, 0.04])
        XCTAssertNil(table.column("c"))
        let bare = try read("1;2\n3;4", delimiter: ";")
        XCTAssertNil(bare.columnNames)
        XCTAssertEqual(bare.values, [1, 2, 3, 4])
        XCTAssertEqual(Array(bare.row(1)), [3, 4])
        let named = try read("1\t2\n.5\t+6.\n", header: .present, delimiter: "\t")
        XCTAssertEqual(named.columnNames, ["1", "2"])
        XCTAssertEqual(named.rows, [[0.5, 6]])
        XCTAssertEqual(try read("").rowCount, 0)
        XCTAssertEqual(try read("x,y\n", header: .present).columnNames, ["x", "y"])
        let chosen = try read("Date,Passengers,Other\n1949-01,112,a\n1949-02,118,b\n", columns: ["Passengers"])
        XCTAssertEqual(chosen.columnNames, ["Passengers"])
        XCTAssertEqual(chosen.values, [112, 118])
    }

    func testRefusesWhatIsNotATableOfNumbers() {
        assertRefused("a,b\n1,2\n3,4,5\n", "line 3 has 3 cells; line 1, the first, has 2")
        assertRefused("1,2\n3\n", "line 2 has 1 cell; line 1, the first, has 2")
        assertRefused("Date,Passengers\n1949-01,112\n", "line 2, column 1 (Date) is '1949-01', not a finite decimal number")
        assertRefused("1,2\n3,abc\n", "line 2, column 2 is 'abc', not a finite decimal number")
        assertRefused("a,b\n1,\n", "line 2, column 2 (b) is empty")
        assertRefused("a,b\n1,nan\n", "line 2, column 2 (b) is 'nan', not a finite decimal number")
        assertRefused("a\ninf\n", "line 2, column 1 (a) is 'inf', not a finite decimal number")
        assertRefused("a\n0x10\n", "line 2, column 1 (a) is '0x10', not a finite decimal number")
        assertRefused("a\n1e999\n", "line 2, column 1 (a) is '1e999', not a finite decimal number")
        assertRefused("a\n\"1,5\"\n", "line 2, column 1 (a) is '1,5', not a finite decimal number")
        assertRefused("a\n\"1\n", "line 2, column 1: a quoted cell has no closing quote on its line")
        assertRefused("a\n\"1\"2\n", "line 2, column 1: a quoted cell has text after its closing quote")
        assertRefused(
            "a\n" + String(repeating: "9", count: 500) + "\n",
            "line 2, column 1 (a) is '" + String(repeating: "9", count: 39) + "…', not a finite decimal number")
        assertRefused("1,2\n", "has no header row, so columns cannot be chosen by name", columns: ["a"])
        assertRefused("a,b\n1,2\n", "has no column 'c' (its columns are 'a', 'b')", columns: ["c"])
        assertRefused(
            "a\n1\n", "cannot be read with delimiter \"\\\"\": it must be an ASCII character other than a quote or line end",
            delimiter: "\"")
    }

    /// `skipNonNumericColumns`: the columns whose first data cell is not a number are left out,
    /// the others must hold numbers in every row, and named columns take precedence.
    func testSkipsTheColumnsThatAreNotNumbers() throws {
        let table = try read("Date,Passengers,Note,Fare\n1949-01,112,a,1.5\n1949-02,118,b,2\n", skip: true)
        XCTAssertEqual(table.columnNames, ["Passengers", "Fare"])
        XCTAssertEqual(table.rows, [[112, 1.5], [118, 2]])
        XCTAssertEqual(table.columnCount, 2)
        XCTAssertEqual(table.column("Fare"), [1.5, 2])
        XCTAssertNil(table.column("Date"))
        // Without a header (given as absent), the same columns are left out and none is named.
        let bare = try read("x,1\ny,2\n", header: .absent, skip: true)
        XCTAssertNil(bare.columnNames)
        XCTAssertEqual(bare.values, [1, 2])
        // Every column numeric: all read, as without the option.
        XCTAssertEqual(try read("a,b\n1,2\n", skip: true), try read("a,b\n1,2\n"))
        // Named columns win: the option changes nothing.
        XCTAssertEqual(try read("Date,Passengers\n1949-01,112\n", columns: ["Passengers"], skip: true).values, [112])
        // A header and no data row: nothing is judged non-numeric.
        XCTAssertEqual(try read("a,b\n", header: .present, skip: true).columnNames, ["a", "b"])
        assertRefused("Date,Passengers\n1949-01,112\n1949-02,\n", "line 3, column 2 (Passengers) is empty", skip: true)
        assertRefused(
            "Date,Passengers\n1949-01,112\n1949-02,x\n", "line 3, column 2 (Passengers) is 'x', not a finite decimal number", skip: true)
        assertRefused("Date,Month\n1949-01,Jan\n", "has no column of numbers: line 2, the first data row, holds none", skip: true)
        assertRefused("Date,Passengers\n1949-01,112\n1949-02\n", "line 3 has 1 cell; line 1, the first, has 2", skip: true)
        assertRefused("Date,Passengers\n1949-01\n", "line 2 has 1 cell; line 1, the first, has 2", skip: true)
    }

    func testFilesAreCappedAndNamed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-csv-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("t.csv")
        try Data("a,b\n1,2\n".utf8).write(to: url)
        XCTAssertEqual(try CSV.readNumbers(contentsOf: url).rows, [[1, 2]])
        XCTAssertThrowsError(try CSV.readNumbers(contentsOf: url, maximumBytes: 4)) { error in
            XCTAssertEqual("\(error)", "\(url.path): is 8 bytes, more than the 4 RNNKit reads from such a file")
        }
        XCTAssertThrowsError(try CSV.readNumbers(contentsOf: folder.appendingPathComponent("absent.csv"))) { error in
            XCTAssertEqual((error as? FileFormatError)?.format, .csv)
            XCTAssertTrue("\(error)".hasSuffix("absent.csv: does not exist"), "\(error)")
        }
    }

    /// The airline passengers of the shared data sets (../shared/datasets/airline), when present.
    func testReadsTheAirlineFile() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/datasets/airline/Airline.csv")
        guard FileManager.default.fileExists(atPath: url.path) else {
            print("skipped: \(url.path) is not here")
            throw XCTSkip("skipped: \(url.path) is not here")
        }
        XCTAssertThrowsError(try CSV.readNumbers(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".hasSuffix("line 2, column 1 (Date) is '1949-01', not a finite decimal number"), "\(error)")
        }
        let passengers = try CSV.readNumbers(contentsOf: url, columns: ["Passengers"])
        XCTAssertEqual(passengers.rowCount, 144)
        XCTAssertEqual(passengers.values.prefix(3), [112, 118, 132])
        XCTAssertEqual(try CSV.readNumbers(contentsOf: url, skipNonNumericColumns: true), passengers)
    }
}
