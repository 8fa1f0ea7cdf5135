import Foundation

/// Numeric CSV files: a table of numbers, with or without a header row of column names.
public enum CSV {
    /// Whether the first row names the columns.
    public enum Header: Sendable, Equatable {
        /// The first row is column names.
        case present
        /// Every row is numbers.
        case absent
        /// The first row is column names when any of its cells is not a number.
        case automatic
    }

    /// A table of numbers read from a CSV file: `rowCount` rows of `columnCount` values.
    public struct Numbers: Equatable, Sendable {
        /// The header row's names (quotes removed), or nil when the file had no header.
        public let columnNames: [String]?
        /// The values row after row (`values[row * columnCount + column]`).
        public let values: [Double]
        /// The number of data rows (the header is not one).
        public let rowCount: Int
        /// The number of columns read (all of a row's cells, or those selected).
        public let columnCount: Int

        /// The values of row `index`.
        public func row(_ index: Int) -> ArraySlice<Double> {
            values[index * columnCount..<(index + 1) * columnCount]
        }

        /// The rows, each an array of `columnCount` values.
        public var rows: [[Double]] { (0..<rowCount).map { Array(row($0)) } }

        /// The values of the column called `name`, or nil when there is no such column.
        public func column(_ name: String) -> [Double]? {
            guard let index = columnNames?.firstIndex(of: name) else { return nil }
            return (0..<rowCount).map { values[$0 * columnCount + index] }
        }
    }

    /// The largest file read unless the caller allows more (the values take up to four times a file's size).
    public static let largestFile = 512 << 20

    /// The numbers in the CSV file at `url`.
    ///
    /// Rows end in `\n` or `\r\n`; empty lines are skipped, and a UTF-8 byte-order mark is
    /// ignored. A cell is a decimal number (`3`, `-0.5`, `1e-3`, spaces around it allowed),
    /// quoted or not (`"12.5"`); an empty cell, `nan`, `inf`, or anything else is refused. Every
    /// row has as many cells as the first.
    /// - Parameters:
    ///   - url: the CSV file.
    ///   - header: whether the first row is column names (`.automatic`: when any of its cells is
    ///     not a number).
    ///   - delimiter: the byte between cells, an ASCII character other than a quote or line end (`,`, `;`, tab).
    ///   - columns: the names of the columns to read, in this order (the file needs a header);
    ///     nil for all. Other columns need not hold numbers (a column of dates, say).
    ///   - skipNonNumericColumns: when `columns` is nil, leave out every column whose cell in the
    ///     first data row is not a number (a column of dates, say), so that a table with a date
    ///     column reads without naming its columns; `columnNames` then names the columns read.
    ///     Every cell of a column read must still be a number, and a file whose first data row
    ///     has no number is refused. Ignored when `columns` names the columns (default false:
    ///     every column must hold numbers).
    ///   - maximumBytes: the largest file read (default `largestFile`, 512 MiB).
    /// - Throws: `FileFormatError` of format `.csv` naming the file and, for a bad cell or row,
    ///   its line and column.
    public static func readNumbers(
        contentsOf url: URL, header: Header = .automatic, delimiter: Character = ",", columns: [String]? = nil,
        skipNonNumericColumns: Bool = false, maximumBytes: Int = largestFile
    ) throws -> Numbers {
        let data = try readRegularFile(url, format: .csv, maximumBytes: maximumBytes)
        return try readNumbers(
            data, file: url.path, header: header, delimiter: delimiter, columns: columns, skipNonNumericColumns: skipNonNumericColumns)
    }

    /// The numbers in the bytes of a CSV file; `file` names it in errors (nil for bytes from no
    /// file). See `readNumbers(contentsOf:header:delimiter:columns:skipNonNumericColumns:maximumBytes:)`.
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - file: the file's name in error messages, or nil.
    ///   - header: whether the first row is column names.
    ///   - delimiter: the byte between cells.
    ///   - columns: the names of the columns to read, in this order; nil for all.
    ///   - skipNonNumericColumns: when `columns` is nil, leave out the columns whose cell in the
    ///     first data row is not a number.
    /// - Throws: `FileFormatError` of format `.csv`.
    public static func readNumbers(
        _ data: Data, file: String?, header: Header = .automatic, delimiter: Character = ",", columns: [String]? = nil,
        skipNonNumericColumns: Bool = false
    ) throws -> Numbers {
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .csv, reason: reason) }
        guard let separator = delimiter.asciiValue, ![0x22, 0x0A, 0x0D].contains(separator) else {
            throw fail(
                "cannot be read with delimiter \(delimiter.debugDescription): it must be an ASCII character other than a quote or line end")
        }
        return try data.withUnsafeBytes { raw in
            var reader = Reader(bytes: raw.bindMemory(to: UInt8.self), separator: separator, fail: fail)
            return try reader.read(header: header, columns: columns, skipNonNumeric: skipNonNumericColumns)
        }
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        let separator: UInt8
        let fail: (String) -> FileFormatError
        var position = 0
        var line = 0

        init(bytes: UnsafeBufferPointer<UInt8>, separator: UInt8, fail: @escaping (String) -> FileFormatError) {
            self.bytes = bytes
            self.separator = separator
            self.fail = fail
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        }

        /// The cells of the next non-empty line (each its bytes without quotes), or nil at the end.
        mutating func nextRow() throws -> [Range<Int>]? {
            while position < bytes.count {
                line += 1
                var cells: [Range<Int>] = []
                var start = position
                var quoted = false
                while true {
                    let byte: UInt8? = position < bytes.count ? bytes[position] : nil
                    if byte == UInt8(ascii: "\""), position == start || isBlank(start..<position) {
                        // A quoted cell: up to the closing quote, then only spaces before the delimiter or line end.
                        guard let close = bytes[(position + 1)...].firstIndex(where: { $0 == UInt8(ascii: "\"") || $0 == 0x0A }),
                            bytes[close] == UInt8(ascii: "\"")
                        else { throw fail("line \(line), column \(cells.count + 1): a quoted cell has no closing quote on its line") }
                        quoted = true
                        start = position + 1
                        position = close + 1
                        let cell = start..<close
                        while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x09 { position += 1 }
                        let after: UInt8? = position < bytes.count ? bytes[position] : nil
                        guard after == nil || after == separator || after == 0x0A || after == 0x0D else {
                            throw fail("line \(line), column \(cells.count + 1): a quoted cell has text after its closing quote")
                        }
                        cells.append(cell)
                        if after == separator {
                            position += 1
                            start = position
                            quoted = false
                            continue
                        }
                        if after == 0x0D { position += 1 }
                        if position < bytes.count, bytes[position] == 0x0A { position += 1 }
                        break
                    }
                    if byte == nil || byte == separator || byte == 0x0A {
                        var end = position
                        if byte == 0x0A, end > start, bytes[end - 1] == 0x0D { end -= 1 }
                        cells.append(start..<end)
                        position += byte == nil ? 0 : 1
                        if byte == separator {
                            start = position
                            quoted = false
                            continue
                        }
                        break
                    }
                    position += 1
                }
                // An empty line (or one of spaces) is skipped.
                if cells.count == 1, isBlank(cells[0]), !quoted { continue }
                return cells
            }
            return nil
        }

        func isBlank(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }

        /// The cell's text for a message: at most 40 characters, quoted.
        func shown(_ cell: Range<Int>) -> String {
            let text = String(decoding: bytes[cell], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            return "'" + (text.count > 40 ? text.prefix(39) + "…" : text) + "'"
        }

        /// The number a cell holds: a decimal number with spaces around it allowed; nil otherwise.
        func number(_ cell: Range<Int>) -> Double? {
            var lower = cell.lowerBound, upper = cell.upperBound
            while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
            while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 || bytes[upper - 1] == 0x0D { upper -= 1 }
            guard upper > lower, upper - lower <= 400 else { return nil }
            guard DecimalText.isDecimal(bytes, lower..<upper) else { return nil }
            guard let value = Double(String(decoding: bytes[lower..<upper], as: UTF8.self)), value.isFinite else {
                return nil
            }
            return value
        }

        mutating func read(header: Header, columns wanted: [String]?, skipNonNumeric: Bool) throws -> Numbers {
            guard let first = try nextRow() else {
                if wanted != nil { throw fail("is empty, so it has none of the columns asked for") }
                return Numbers(columnNames: header == .present ? [] : nil, values: [], rowCount: 0, columnCount: 0)
            }
            let width = first.count
            let hasHeader = header == .present || (header == .automatic && first.contains { number($0) == nil })
            let firstLine = line
            let headerNames =
                hasHeader ? first.map { String(decoding: bytes[$0], as: UTF8.self).trimmingCharacters(in: .whitespaces) } : nil
            // The columns read, in order.
            var selected = Array(0..<width)
            if let wanted {
                guard let headerNames else { throw fail("has no header row, so columns cannot be chosen by name") }
                selected = try wanted.map { name in
                    guard let index = headerNames.firstIndex(of: name) else {
                        let known = headerNames.prefix(12).map { "'\($0.prefix(40))'" }.joined(separator: ", ")
                        throw fail("has no column '\(name.prefix(40))' (its columns are \(known)\(headerNames.count > 12 ? ", …" : ""))")
                    }
                    return index
                }
            }
            var values: [Double] = []
            var rowCount = 0
            var row: [Range<Int>]? = hasHeader ? try nextRow() : first
            // A row of another width is refused below, naming both lengths.
            if skipNonNumeric, wanted == nil, let cells = row, cells.count == width {
                selected = selected.filter { number(cells[$0]) != nil }
                guard !selected.isEmpty else { throw fail("has no column of numbers: line \(line), the first data row, holds none") }
            }
            while let cells = row {
                guard cells.count == width else {
                    throw fail(
                        "line \(line) has \(cells.count) cell\(cells.count == 1 ? "" : "s"); line \(firstLine), the first, has \(width)")
                }
                for column in selected {
                    guard let value = number(cells[column]) else {
                        let name = headerNames.map { " (\($0[column].prefix(40)))" } ?? ""
                        let cell = cells[column]
                        let what = isBlank(cell) ? "is empty" : "is \(shown(cell)), not a finite decimal number"
                        throw fail("line \(line), column \(column + 1)\(name) \(what)")
                    }
                    values.append(value)
                }
                rowCount += 1
                row = try nextRow()
            }
            return Numbers(
                columnNames: wanted ?? headerNames.map { names in selected.map { names[$0] } }, values: values, rowCount: rowCount,
                columnCount: selected.count)
        }
    }
}
