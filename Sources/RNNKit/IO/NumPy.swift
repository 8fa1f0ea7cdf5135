import Foundation

/// The element types RNNKit reads from and writes to NumPy's `.npy` files, named by the `descr`
/// NumPy writes for them: little-endian (`<`), or byte-sized (`|`).
public enum NumPyDType: String, Sendable, Equatable, CaseIterable {
    /// `float32`, `<f4`.
    case float32 = "<f4"
    /// `float64`, `<f8`.
    case float64 = "<f8"
    /// `int32`, `<i4`.
    case int32 = "<i4"
    /// `int64`, `<i8`.
    case int64 = "<i8"
    /// `uint8`, `|u1`.
    case uint8 = "|u1"
    /// `bool`, `|b1`: one byte an element, 0 or 1.
    case bool = "|b1"

    /// Bytes an element.
    public var byteCount: Int {
        switch self {
        case .float32, .int32: 4
        case .float64, .int64: 8
        case .uint8, .bool: 1
        }
    }

    /// Whether the elements are floating point (`float32`, `float64`).
    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }
}

/// An array as a `.npy` file holds it: a shape, an element type, and the elements' bytes in C
/// (row-major) order, little-endian.
///
/// Made by `NumPy.read` (every size and byte checked against the file first), or from Swift
/// values to write with `NumPy.write`. The shape's product always equals the element count, and
/// `bytes` always holds `count × dtype.byteCount` bytes; a `bool` array's bytes are 0 or 1.
public struct NumPyArray: Equatable, Sendable {
    /// The extent of each axis; `[]` for a scalar (one element).
    public let shape: [Int]
    /// The element type.
    public let dtype: NumPyDType
    /// The elements, little-endian, in C order (the last axis varies fastest).
    public let bytes: Data

    /// The number of elements: the product of `shape`.
    public var count: Int { shape.reduce(1, *) }

    /// An array whose shape, dtype and byte count the caller has checked.
    init(checkedShape shape: [Int], dtype: NumPyDType, bytes: Data) {
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    private init<T>(shape: [Int], values: [T], dtype: NumPyDType) {
        precondition(shape.allSatisfy { $0 >= 0 }, "NumPyArray shape \(shape) has a negative extent")
        precondition(
            shape.reduce(1, *) == values.count, "NumPyArray shape \(shape) holds \(shape.reduce(1, *)) elements, not \(values.count)")
        self.init(checkedShape: shape, dtype: dtype, bytes: values.withUnsafeBytes { Data($0) }) // x86-64 and arm64 are little-endian
    }

    /// A `float32` array of `shape` holding `floats` in C order.
    /// - Precondition: `floats.count` is the product of `shape`, whose extents are not negative.
    public init(shape: [Int], floats: [Float]) { self.init(shape: shape, values: floats, dtype: .float32) }

    /// A `float64` array of `shape` holding `doubles` in C order.
    /// - Precondition: `doubles.count` is the product of `shape`, whose extents are not negative.
    public init(shape: [Int], doubles: [Double]) { self.init(shape: shape, values: doubles, dtype: .float64) }

    /// An `int64` array of `shape` holding `integers` in C order.
    /// - Precondition: `integers.count` is the product of `shape`, whose extents are not negative.
    public init(shape: [Int], integers: [Int]) { self.init(shape: shape, values: integers.map { Int64($0) }, dtype: .int64) }

    /// A `float32` or `float64` array (by `S`) of the tensor's shape and scalars.
    public init<S: BLASScalar>(_ tensor: Tensor<S>) {
        if let floats = tensor.scalars as? [Float] {
            self.init(shape: tensor.shape, floats: floats)
        } else {
            self.init(shape: tensor.shape, doubles: tensor.scalars.map { Double($0) })
        }
    }

    private func load<T>(_: T.Type, _ body: (T) -> Void) {
        bytes.withUnsafeBytes { raw in
            for index in 0..<count { body(raw.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)) }
        }
    }

    /// The elements in C order, converted to `S`: floating-point values rounded to `S` (NaN and
    /// infinities kept), integers converted (an `int64` beyond 2^53 rounds in `Double`), a `bool`
    /// as 0 or 1.
    public func floats<S: BinaryFloatingPoint>(as _: S.Type = S.self) -> [S] {
        if (S.self == Float.self && dtype == .float32) || (S.self == Double.self && dtype == .float64) {
            return [S](unsafeUninitializedCapacity: count) { buffer, initialized in
                _ = bytes.copyBytes(to: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            }
        }
        var values: [S] = []
        values.reserveCapacity(count)
        switch dtype {
        case .float32: load(Float.self) { values.append(S($0)) }
        case .float64: load(Double.self) { values.append(S($0)) }
        case .int32: load(Int32.self) { values.append(S($0)) }
        case .int64: load(Int64.self) { values.append(S($0)) }
        case .uint8, .bool: load(UInt8.self) { values.append(S($0)) }
        }
        return values
    }

    /// The elements in C order as integers: an integer, `uint8` or `bool` (0 or 1) array's values;
    /// a floating-point array's values when every one is a whole number that fits in an `Int`
    /// (labels saved as `0.0`, `1.0`, … read as classes).
    /// - Throws: `FileFormatError` of format `.npy` (with no file) naming the first element of a
    ///   floating-point array that is not a whole number.
    public func integers() throws -> [Int] {
        var values: [Int] = []
        values.reserveCapacity(count)
        var bad: (index: Int, value: Double)?
        func whole(_ value: Double) {
            if let integer = Int(exactly: value) {
                values.append(integer)
            } else {
                if bad == nil { bad = (values.count, value) }
                values.append(0)
            }
        }
        switch dtype {
        case .float32: load(Float.self) { whole(Double($0)) }
        case .float64: load(Double.self) { whole($0) }
        case .int32: load(Int32.self) { values.append(Int($0)) }
        case .int64: load(Int64.self) { values.append(Int($0)) }
        case .uint8, .bool: load(UInt8.self) { values.append(Int($0)) }
        }
        if let bad {
            throw FileFormatError(
                file: nil, format: .npy,
                reason: "element \(bad.index) of the \(dtype) array is \(bad.value), not a whole number an Int can hold")
        }
        return values
    }

    /// The array as a tensor of `S` (see `floats(as:)` for the conversion); a scalar array
    /// (shape `[]`) becomes a tensor of shape `[1]`.
    public func tensor<S: BLASScalar>(as _: S.Type = S.self) -> Tensor<S> {
        Tensor(shape: shape.isEmpty ? [1] : shape, scalars: floats(as: S.self))
    }
}

/// NumPy's array files: `.npy` (one array) read and written, `.npz` (a zip of `.npy` files, as
/// `numpy.savez` and `savez_compressed` write) read.
///
/// A file can come from anyone, so reading either ends in the arrays or in one
/// `FileFormatError` that names the file and what is wrong: a header is parsed as a strict
/// Python literal (never evaluated), every size is checked with overflow checks against the
/// file's real length before anything is allocated, and an `.npz` member is inflated no further
/// than it declares.
public enum NumPy {
    /// The longest `.npy` header read (NumPy writes about 128 bytes; NumPy's own reader stops at 10,000).
    public static let largestHeader = 65_536
    /// The most axes a shape may have (NumPy's own limit is 64).
    public static let largestRank = 64
    /// The most an `.npz` file's members may unpack to together, unless the caller allows more.
    public static let largestArchiveContents = 2 << 30

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The array in the `.npy` file at `url`.
    ///
    /// Reads format versions 1.0, 2.0 and 3.0 holding `<f4`, `<f8`, `<i4`, `<i8`, `|u1` or `|b1`
    /// elements in C order.
    /// - Throws: `FileFormatError` of format `.npy` naming the file when it is missing, not a
    ///   regular file, or not such an array (another dtype, Fortran order, a malformed header,
    ///   a shape that does not match the bytes that follow).
    public static func read(contentsOf url: URL) throws -> NumPyArray {
        try read(readRegularFile(url, format: .npy), file: url.path)
    }

    /// The array in the bytes of a `.npy` file; `file` names it in errors (nil for bytes from no file).
    /// - Throws: `FileFormatError` of format `.npy`, as `read(contentsOf:)`.
    public static func read(_ data: Data, file: String?) throws -> NumPyArray {
        func fail(_ reason: String) -> FileFormatError { FileFormatError(file: file, format: .npy, reason: reason) }
        let bytes = data.withUnsafeBytes { Array($0.prefix(12)) }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            throw fail("is a zip archive (an .npz file? read it with NumPy.readArchive), not a .npy file")
        }
        guard bytes.starts(with: magic) else {
            throw fail(data.isEmpty ? "is empty, not a .npy file" : "is not a .npy file (it does not start with \\x93NUMPY)")
        }
        guard bytes.count >= 10 else { throw fail("is cut short in its first 10 bytes (\(data.count) bytes)") }
        let major = bytes[6], minor = bytes[7]
        guard (1...3).contains(major), minor == 0 else {
            throw fail("is .npy format version \(major).\(minor); RNNKit reads versions 1.0, 2.0 and 3.0")
        }
        let headerStart = major == 1 ? 10 : 12
        guard bytes.count >= headerStart else { throw fail("is cut short in its first \(headerStart) bytes (\(data.count) bytes)") }
        let headerLength =
            major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard headerLength <= data.count - headerStart else {
            throw fail("has a header of \(headerLength) bytes, which runs past the end of the file (\(data.count) bytes)")
        }
        guard headerLength <= largestHeader else {
            throw fail("has a header of \(headerLength) bytes, more than the \(largestHeader) RNNKit reads (NumPy writes about 128)")
        }
        let header = data.withUnsafeBytes { Array($0[headerStart..<headerStart + headerLength]) }
        let (shape, dtype) = try parseHeader(header, fail: fail)
        var elements = 1
        for extent in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw fail("has shape \(describe(shape)), whose element count overflows") }
            elements = product
        }
        let (needed, overflow) = elements.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow else { throw fail("has shape \(describe(shape)), whose size in bytes overflows") }
        let dataStart = headerStart + headerLength, available = data.count - dataStart
        guard needed <= available else {
            throw fail(
                "is truncated: shape \(describe(shape)) of \(dtype.rawValue) needs \(needed) bytes after the header, the file holds \(available)"
            )
        }
        guard needed == available else {
            throw fail(
                "has \(available - needed) bytes after its data (shape \(describe(shape)) of \(dtype.rawValue) needs \(needed)): it is damaged or not one array"
            )
        }
        let payload = data.subdata(in: data.startIndex + dataStart..<data.endIndex)
        if dtype == .bool {
            let stray = payload.withUnsafeBytes { $0.firstIndex { $0 > 1 } }
            if let stray { throw fail("holds \(payload[stray]) at element \(stray) of a bool array, where only 0 and 1 are booleans") }
        }
        return NumPyArray(checkedShape: shape, dtype: dtype, bytes: payload)
    }

    /// A shape as Python writes a tuple: `(3, 4)`, `(3,)`, `()`.
    static func describe(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// The shape and dtype a header dict declares, every key and value checked.
    static func parseHeader(_ header: [UInt8], fail: (String) -> FileFormatError) throws -> ([Int], NumPyDType) {
        if let index = header.firstIndex(where: { $0 >= 0x80 || ($0 < 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09) }) {
            throw fail(String(format: "has a header with byte 0x%02X at offset %d, which is not printable ASCII", header[index], index))
        }
        let literal: PythonLiteral
        do { literal = try PythonLiteral.parse(header) } catch let error as PythonLiteral.SyntaxError {
            throw fail("has a malformed header (it \(error.reason))")
        }
        guard case .dict(let pairs) = literal else { throw fail("has a header that is \(literal.kind), not a dict") }
        var fields: [String: PythonLiteral] = [:]
        for (key, value) in pairs {
            guard ["descr", "fortran_order", "shape"].contains(key) else {
                throw fail("has a header with the key '\(key.prefix(40))'; a .npy header holds descr, fortran_order and shape")
            }
            guard fields.updateValue(value, forKey: key) == nil else { throw fail("has a header that names '\(key)' twice") }
        }
        for key in ["descr", "fortran_order", "shape"] where fields[key] == nil {
            throw fail("has a header without '\(key)'")
        }
        let dtype = try parseDType(fields["descr"]!, fail: fail)
        switch fields["fortran_order"]! {
        case .boolean(false): break
        case .boolean(true):
            throw fail("is stored in Fortran (column-major) order; RNNKit reads C order (save np.ascontiguousarray(a))")
        case let other: throw fail("has a header whose fortran_order is \(other.kind), not True or False")
        }
        guard case .tuple(let axes) = fields["shape"]! else {
            throw fail("has a header whose shape is \(fields["shape"]!.kind), not a tuple of integers")
        }
        guard axes.count <= largestRank else { throw fail("has a shape of \(axes.count) axes; at most \(largestRank) are read") }
        var shape: [Int] = []
        for axis in axes {
            switch axis {
            case .integer(let extent?) where extent >= 0: shape.append(extent)
            case .integer(let extent?): throw fail("has a negative extent \(extent) in its shape")
            case .integer(nil): throw fail("has an extent in its shape too large for any file")
            case let other: throw fail("has \(other.kind) in its shape, where an integer should be")
            }
        }
        return (shape, dtype)
    }

    static func parseDType(_ descr: PythonLiteral, fail: (String) -> FileFormatError) throws -> NumPyDType {
        let readable = NumPyDType.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .string(let name) = descr else {
            if case .list = descr {
                throw fail("holds a structured array (its descr is a list of fields); RNNKit reads plain arrays of \(readable)")
            }
            throw fail("has a header whose descr is \(descr.kind), not a dtype string")
        }
        if let dtype = NumPyDType(rawValue: name) { return dtype }
        let kind = name.drop { "<>|=".contains($0) }.first
        let what: String =
            switch kind {
            case _ where name.hasPrefix(">"): "big-endian"
            case "c": "complex numbers"
            case "U", "S", "a": "strings"
            case "O": "Python objects (pickled), which RNNKit never reads"
            case "V": "raw or structured records"
            case "M", "m": "dates or times"
            case "f": "floating point of another width"
            case "i", "u": "integers of another width"
            default: "a type RNNKit does not read"
            }
        throw fail(
            "has dtype '\(name.prefix(40))' (\(what)); RNNKit reads \(readable) (convert with a.astype('<f4') or another of these)")
    }

    /// The `.npy` file (format 1.0, as NumPy writes it: the header padded so the data start on a
    /// 64-byte boundary) that holds `array`.
    public static func encode(_ array: NumPyArray) -> Data {
        var header = "{'descr': '\(array.dtype.rawValue)', 'fortran_order': False, 'shape': \(describe(array.shape)), }"
        let unpadded = magic.count + 4 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var file = Data(magic + [1, 0])
        let length = UInt16(header.utf8.count)
        file.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        file.append(contentsOf: header.utf8)
        file.append(array.bytes)
        return file
    }

    /// Writes `array` to a `.npy` file at `url` (see `encode(_:)`), atomically: the file is
    /// whole or untouched.
    /// - Throws: `FileWriteError` when the system refuses the write.
    public static func write(_ array: NumPyArray, to url: URL) throws {
        try writeAtomically(encode(array), to: url)
    }
}
