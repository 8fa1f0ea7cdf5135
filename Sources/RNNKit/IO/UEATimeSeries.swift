import Foundation

/// The `.ts` text files of the UEA/UCR time-series classification archive (and of sktime), read
/// into ragged sequences with class labels.
///
/// A file is `#` comment lines, header lines (`@problemName JapaneseVowels`, `@timeStamps false`,
/// `@missing false`, `@univariate false`, `@dimensions 12`, `@equalLength false`,
/// `@seriesLength 29`, `@classLabel true 1 2 3`), then `@data` and one case a line: the
/// dimensions separated by `:`, each dimension's values by `,`, the case's class label last
/// (`0.1,0.2,0.3:1.5,1.4,1.2:3`). Headers are matched without regard to case, as sktime does.
public enum UEATimeSeries {
    /// The cases of a classification file: one sequence and one class each.
    public struct Classification: Equatable, Sendable {
        /// The `@problemName` header's name.
        public let problemName: String
        /// The class labels in the `@classLabel` header's order; a case's label is an index into them.
        public let classNames: [String]
        /// Features per step: the file's number of dimensions.
        public let dimensions: Int
        /// One sequence per case, time-major: `sequences[case][step][dimension]`.
        public let sequences: [[[Float]]]
        /// Each case's class, an index into ``classNames``.
        public let labels: [Int]

        /// The number of cases.
        public var count: Int { sequences.count }

        /// Each case's number of steps.
        public var lengths: [Int] { sequences.map(\.count) }

        /// The cases as a ``RaggedDataset`` with one class label each, padded to `steps` (the
        /// longest case by default) and masked to each case's own length.
        ///
        /// - Parameter steps: the steps every case is padded to; nil for the longest case's.
        /// - Throws: `ModelError.invalidConfiguration` for a case longer than `steps`.
        public func dataset(steps: Int? = nil) throws -> RaggedDataset {
            try RaggedDataset(sequences: sequences, labels: labels, classCount: classNames.count, steps: steps)
        }
    }

    /// The largest file read unless the caller allows more.
    public static let largestFile = 512 << 20
    /// The most values read from a file unless the caller allows more (2²⁶, 256 MiB of `Float`).
    public static let mostValues = 1 << 26
    /// The most steps read from a file, all cases together (2²², each an array of its own).
    public static let mostSteps = 1 << 22
    /// The most cases read from a file.
    public static let mostCases = 1 << 20
    /// The most classes a `@classLabel` header may declare.
    public static let mostClasses = 1 << 16
    /// The longest line read, in bytes.
    public static let longestLine = 1 << 26

    /// The cases of the `.ts` classification file at `url`.
    ///
    /// Required headers: `@problemName`, `@timeStamps false`, `@univariate`, `@classLabel true`
    /// with the labels, and `@data`; `@dimensions`, `@equalLength`, `@seriesLength` and
    /// `@missing` are optional and, when present, checked against the cases. Every case has the
    /// same number of dimensions (`@dimensions`, else the first case's), all of one length
    /// within the case, of finite decimal numbers, and a declared label. Refused: time stamps,
    /// missing values (`?`), regression files (`@targetLabel`, `@classLabel false`).
    /// - Parameters:
    ///   - url: the `.ts` file.
    ///   - maximumBytes: the largest file read (default ``largestFile``, 512 MiB).
    ///   - maximumValues: the most values read, all cases together (default ``mostValues``).
    /// - Throws: `FileFormatError` of format `.ts` naming the file and, for a bad line, its number.
    public static func readClassification(
        contentsOf url: URL, maximumBytes: Int = largestFile, maximumValues: Int = mostValues
    ) throws -> Classification {
        let data = try readRegularFile(url, format: .ts, maximumBytes: maximumBytes)
        return try readClassification(data, file: url.path, maximumValues: maximumValues)
    }

    /// The cases of the bytes of a `.ts` classification file; `file` names it in errors (nil for
    /// bytes from no file). See ``readClassification(contentsOf:maximumBytes:maximumValues:)``.
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - file: the name errors give the bytes, or nil.
    ///   - maximumValues: the most values read, all cases together (default ``mostValues``).
    /// - Throws: `FileFormatError` of format `.ts` naming `file` and, for a bad line, its number.
    public static func readClassification(_ data: Data, file: String?, maximumValues: Int = mostValues) throws -> Classification {
        try data.withUnsafeBytes { raw in
            var reader = TSReader(bytes: raw.bindMemory(to: UInt8.self), file: file, maximumValues: maximumValues)
            return try reader.read()
        }
    }
}

/// One pass over a `.ts` file's bytes: headers, then cases.
private struct TSReader {
    let bytes: UnsafeBufferPointer<UInt8>
    let file: String?
    let maximumValues: Int
    var position = 0
    var line = 0

    init(bytes: UnsafeBufferPointer<UInt8>, file: String?, maximumValues: Int) {
        self.bytes = bytes
        self.file = file
        self.maximumValues = maximumValues
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
    }

    func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .ts, reason: reason) }
    func failLine(_ reason: String) -> FileFormatError { fail("line \(line) " + reason) }

    /// Text from the file for a message: at most 40 characters, quoted.
    func shown(_ range: Range<Int>) -> String {
        let text = String(decoding: bytes[range], as: UTF8.self)
        return "'" + (text.count > 40 ? text.prefix(39) + "…" : text) + "'"
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    func trimmed(_ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, Self.isSpace(bytes[lower]) { lower += 1 }
        while upper > lower, Self.isSpace(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    /// The next line that is neither blank nor a comment, without its spaces at either end; nil at the end.
    mutating func nextLine() throws -> Range<Int>? {
        while position < bytes.count {
            line += 1
            let start = position
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            position = min(end + 1, bytes.count)
            guard end - start <= UEATimeSeries.longestLine else {
                throw failLine("is \(end - start) bytes long, more than the \(UEATimeSeries.longestLine) RNNKit reads")
            }
            let text = trimmed(start..<end)
            if text.isEmpty || bytes[text.lowerBound] == UInt8(ascii: "#") { continue }
            return text
        }
        return nil
    }

    /// The line's words, split at spaces and tabs.
    func words(_ range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var index = range.lowerBound
        while index < range.upperBound {
            while index < range.upperBound, Self.isSpace(bytes[index]) { index += 1 }
            let start = index
            while index < range.upperBound, !Self.isSpace(bytes[index]) { index += 1 }
            if index > start { result.append(start..<index) }
        }
        return result
    }

    func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    /// The headers read before `@data`.
    struct Headers {
        var problemName: String?
        var timeStamps: Bool?
        var univariate: Bool?
        var missing: Bool?
        var equalLength: Bool?
        var dimensions: Int?
        var seriesLength: Int?
        var classNames: [String]?
    }

    mutating func readHeaders() throws -> Headers {
        var headers = Headers()
        var seen: Set<String> = []
        while true {
            guard let range = try nextLine() else { throw fail("has no @data line: the headers never end") }
            guard bytes[range.lowerBound] == UInt8(ascii: "@") else {
                throw failLine("is \(shown(range)) before @data: a header line starts with @ (or the @data line is missing)")
            }
            let parts = words(range)
            let name = text(parts[0]).lowercased()
            let arguments = parts.dropFirst()
            guard seen.insert(name).inserted else { throw failLine("repeats the header \(shown(parts[0]))") }
            func flag() throws -> Bool {
                guard arguments.count == 1, let value = ["true": true, "false": false][text(arguments.first!).lowercased()] else {
                    throw failLine("is \(shown(range)): \(text(parts[0])) takes true or false")
                }
                return value
            }
            func count() throws -> Int {
                guard arguments.count == 1, let value = Int(text(arguments.first!)), value > 0, value <= UEATimeSeries.mostValues else {
                    throw failLine("is \(shown(range)): \(text(parts[0])) takes a whole number from 1 to \(UEATimeSeries.mostValues)")
                }
                return value
            }
            switch name {
            case "@data":
                guard arguments.isEmpty else { throw failLine("is \(shown(range)): @data takes nothing after it") }
                return headers
            case "@problemname":
                guard !arguments.isEmpty else { throw failLine("is @problemName with no name") }
                headers.problemName = text(arguments.first!.lowerBound..<arguments.last!.upperBound)
            case "@timestamps":
                headers.timeStamps = try flag()
                if headers.timeStamps == true { throw failLine("says @timeStamps true: time stamps are not supported") }
            case "@univariate": headers.univariate = try flag()
            case "@missing": headers.missing = try flag()
            case "@equallength": headers.equalLength = try flag()
            case "@dimensions": headers.dimensions = try count()
            case "@serieslength": headers.seriesLength = try count()
            case "@classlabel":
                guard let first = arguments.first, let labelled = ["true": true, "false": false][text(first).lowercased()] else {
                    throw failLine("is \(shown(range)): @classLabel takes true and the labels, or false")
                }
                guard labelled else { throw failLine("says @classLabel false: only classification files (with class labels) are read") }
                let names = arguments.dropFirst().map { text($0) }
                guard !names.isEmpty else { throw failLine("says @classLabel true but declares no labels") }
                guard names.count <= UEATimeSeries.mostClasses else {
                    throw failLine("declares \(names.count) class labels, more than the \(UEATimeSeries.mostClasses) RNNKit reads")
                }
                guard Set(names).count == names.count else { throw failLine("declares a class label twice") }
                headers.classNames = names
            case "@targetlabel":
                throw failLine("has @targetLabel: regression files are not supported, only classification (@classLabel true …)")
            default:
                throw failLine("has the unknown header \(shown(parts[0]))")
            }
        }
    }

    mutating func read() throws -> UEATimeSeries.Classification {
        let headers = try readHeaders()
        for (key, present) in [
            ("@problemName", headers.problemName != nil), ("@timeStamps", headers.timeStamps != nil),
            ("@univariate", headers.univariate != nil), ("@classLabel", headers.classNames != nil),
        ] where !present {
            throw fail("has no \(key) header before @data")
        }
        let classNames = headers.classNames!
        if headers.univariate == true, let dimensions = headers.dimensions, dimensions != 1 {
            throw fail("says @univariate true but @dimensions \(dimensions)")
        }
        var classIndex: [String: Int] = [:]
        for (index, name) in classNames.enumerated() { classIndex[name] = index }
        var dimensions = headers.dimensions ?? (headers.univariate == true ? 1 : nil)
        var sequences: [[[Float]]] = [], labels: [Int] = []
        var values = 0, steps = 0
        var firstLength: (length: Int, line: Int)?
        while let range = try nextLine() {
            guard sequences.count < UEATimeSeries.mostCases else {
                throw failLine("is a case beyond the \(UEATimeSeries.mostCases) RNNKit reads from a file")
            }
            // The fields: the dimensions, then the label.
            var fields: [Range<Int>] = []
            var start = range.lowerBound
            for index in range where bytes[index] == UInt8(ascii: ":") {
                fields.append(start..<index)
                start = index + 1
            }
            fields.append(start..<range.upperBound)
            guard fields.count >= 2 else {
                throw failLine("is \(shown(range)): a case is its dimensions separated by ':', then ':' and its class label")
            }
            let labelRange = trimmed(fields.removeLast())
            let labelText = text(labelRange)
            guard let label = classIndex[labelText] else {
                throw failLine("has the class label \(shown(labelRange)), which @classLabel does not declare")
            }
            if let dimensions, fields.count != dimensions {
                throw failLine("has \(fields.count) dimension\(fields.count == 1 ? "" : "s"); the file has \(dimensions)")
            }
            dimensions = fields.count
            var series: [[Float]] = []
            for (dimension, field) in fields.enumerated() {
                let row = try numbers(field, dimension: dimension + 1)
                if let first = series.first, row.count != first.count {
                    throw failLine("has \(row.count) values in dimension \(dimension + 1) but \(first.count) in dimension 1")
                }
                values += row.count
                guard values <= maximumValues else {
                    throw failLine("brings the values read to more than the \(maximumValues) RNNKit reads from a file")
                }
                series.append(row)
            }
            let length = series[0].count
            steps += length
            guard steps <= UEATimeSeries.mostSteps else {
                throw failLine("brings the steps read to more than the \(UEATimeSeries.mostSteps) RNNKit reads from a file")
            }
            if headers.equalLength == true, let firstLength, firstLength.length != length {
                throw failLine(
                    "has \(length) steps but line \(firstLength.line) has \(firstLength.length), and the file says @equalLength true")
            }
            if headers.equalLength == true, let seriesLength = headers.seriesLength, seriesLength != length {
                throw failLine("has \(length) steps; @seriesLength says \(seriesLength)")
            }
            if firstLength == nil { firstLength = (length, line) }
            // Time-major: step t holds every dimension's t-th value.
            sequences.append((0..<length).map { t in series.map { $0[t] } })
            labels.append(label)
        }
        guard let dimensions, !sequences.isEmpty else { throw fail("has no cases after @data") }
        return UEATimeSeries.Classification(
            problemName: headers.problemName!, classNames: classNames, dimensions: dimensions, sequences: sequences, labels: labels)
    }

    /// The comma-separated values of one dimension of a case.
    func numbers(_ field: Range<Int>, dimension: Int) throws -> [Float] {
        var result: [Float] = []
        var start = field.lowerBound
        var index = field.lowerBound
        while true {
            if index == field.upperBound || bytes[index] == UInt8(ascii: ",") {
                let cell = trimmed(start..<index)
                guard !cell.isEmpty else {
                    let what = field.isEmpty || trimmed(field).isEmpty ? "is empty" : "has an empty value (value \(result.count + 1))"
                    throw failLine("dimension \(dimension) \(what)")
                }
                if cell.count == 1, bytes[cell.lowerBound] == UInt8(ascii: "?") {
                    throw failLine("dimension \(dimension) has a missing value ('?'): missing values are not supported")
                }
                guard let value = number(cell) else {
                    throw failLine("dimension \(dimension), value \(result.count + 1) is \(shown(cell)), not a finite decimal number")
                }
                result.append(value)
                if index == field.upperBound { return result }
                start = index + 1
            }
            index += 1
        }
    }

    /// A decimal number (`3`, `-0.5`, `1e-3`) that is finite as a `Float`; nil otherwise.
    func number(_ cell: Range<Int>) -> Float? {
        guard cell.count <= 400, DecimalText.isDecimal(bytes, cell) else { return nil }
        guard let value = Double(text(cell)), value.isFinite, Float(value).isFinite else { return nil }
        return Float(value)
    }
}
