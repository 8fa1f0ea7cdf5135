import CGzip
import Foundation
import XCTest
@testable import RNNKit

/// NumPy's `.npy` and `.npz` files: round trips, files written by NumPy itself (when python3 has
/// numpy), and every refusal of a damaged or crafted file, each with its message.
final class NumPyTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-numpy-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// A `.npy` file of `header` (padded to 64 bytes unless `pad` is false) and `payload`.
    static func npy(_ header: String, version: UInt8 = 1, payload: Data = Data(), pad: Bool = true) -> Data {
        var text = Array(header.utf8)
        let prefix = version == 1 ? 10 : 12
        if pad {
            while (prefix + text.count + 1) % 64 != 0 { text.append(0x20) }
            text.append(0x0A)
        }
        var file = Data([0x93] + Array("NUMPY".utf8) + [version, 0])
        let length = UInt32(text.count)
        file.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF)])
        if version != 1 { file.append(contentsOf: [UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]) }
        return file + Data(text) + payload
    }

    static func header(_ descr: String = "'<f4'", fortran: String = "False", shape: String = "(2,)") -> String {
        "{'descr': \(descr), 'fortran_order': \(fortran), 'shape': \(shape), }"
    }

    /// The reason `NumPy.read` refuses `data` with, checking it is a `.npy` refusal naming `file`.
    func refusal(_ data: Data, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let array = try NumPy.read(data, file: "x.npy")
            XCTFail("read \(array.shape) \(array.dtype), not refused", file: file, line: line)
        } catch let error as FileFormatError {
            XCTAssertEqual(error.format, .npy, file: file, line: line)
            XCTAssertEqual(error.file, "x.npy", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix("x.npy: "), error.description, file: file, line: line)
            XCTAssertLessThan(error.description.count, 300, error.description, file: file, line: line)
            return error.reason
        } catch {
            XCTFail("refused with \(error)", file: file, line: line)
        }
        return ""
    }

    func assertRefused(_ data: Data, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let reason = refusal(data, file: file, line: line)
        XCTAssertTrue(reason.contains(expected), "\(reason) does not say \(expected)", file: file, line: line)
    }

    func testRoundTripsEachWrittenType() throws {
        let arrays = [
            NumPyArray(shape: [2, 3], floats: [1, -2, 3.5, .infinity, 0, -0.25]),
            NumPyArray(shape: [4], doubles: [1e-300, -2, .pi, 0]),
            NumPyArray(shape: [3, 1], integers: [Int.min, 0, Int.max]),
            NumPyArray(shape: [], doubles: [42]),
            NumPyArray(shape: [0, 5], floats: []),
        ]
        for (index, array) in arrays.enumerated() {
            let url = root.appendingPathComponent("a\(index).npy")
            try NumPy.write(array, to: url)
            let data = try Data(contentsOf: url)
            // As NumPy writes it: the data start on a 64-byte boundary.
            XCTAssertEqual((Int(data[8]) + Int(data[9]) << 8 + 10) % 64, 0)
            XCTAssertEqual(try NumPy.read(contentsOf: url), array)
        }
        XCTAssertEqual(arrays[0].floats(as: Float.self), [1, -2, 3.5, .infinity, 0, -0.25])
        XCTAssertEqual(arrays[0].floats(as: Double.self), [1, -2, 3.5, .infinity, 0, -0.25])
        XCTAssertEqual(try arrays[2].integers(), [Int.min, 0, Int.max])
        XCTAssertEqual(arrays[3].count, 1)
        XCTAssertEqual(arrays[3].tensor(as: Float.self), Tensor(shape: [1], scalars: [42]))
        XCTAssertEqual(NumPyArray(Tensor<Double>(shape: [2], scalars: [1, 2])).dtype, .float64)
        let encoded = NumPy.encode(arrays[0])
        let text = String(decoding: encoded.dropFirst(10).prefix(Int(encoded[8]) | Int(encoded[9]) << 8), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }   "), text)
        XCTAssertTrue(text.hasSuffix(" \n"), text)
    }

    func testReadsEveryDTypeAndVersion() throws {
        let int32 = try NumPy.read(
            Self.npy(Self.header("'<i4'", shape: "(2,)"), payload: Data([255, 255, 255, 255, 7, 0, 0, 0])), file: nil)
        XCTAssertEqual(try int32.integers(), [-1, 7])
        XCTAssertEqual(int32.floats(as: Float.self), [-1, 7])
        let bytes = try NumPy.read(Self.npy(Self.header("'|u1'", shape: "(3,)"), version: 2, payload: Data([0, 128, 255])), file: nil)
        XCTAssertEqual(try bytes.integers(), [0, 128, 255])
        let flags = try NumPy.read(Self.npy(Self.header("'|b1'", shape: "(1, 2)"), version: 3, payload: Data([1, 0])), file: nil)
        XCTAssertEqual(flags.shape, [1, 2])
        XCTAssertEqual(flags.floats(as: Double.self), [1, 0])
        // Python 2's NumPy wrote long integers (3L), double quotes and no trailing comma are Python too.
        let old = try NumPy.read(
            Self.npy("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (1L, 1L)}", payload: Data(count: 8)), file: nil)
        XCTAssertEqual(old.shape, [1, 1])
        // Whole floats read as integers (labels); others are refused by element.
        XCTAssertEqual(try NumPyArray(shape: [2], doubles: [3, -1]).integers(), [3, -1])
        XCTAssertThrowsError(try NumPyArray(shape: [3], floats: [1, 0.5, 2]).integers()) { error in
            XCTAssertTrue("\(error)".contains("element 1 of the float32 array is 0.5"), "\(error)")
        }
        XCTAssertThrowsError(try NumPyArray(shape: [1], doubles: [.nan]).integers())
    }

    func testRefusesOtherDTypesAndFortranOrder() {
        let payload = Data(count: 8)
        assertRefused(Self.npy(Self.header("'>f4'"), payload: payload), "has dtype '>f4' (big-endian); RNNKit reads <f4, <f8")
        assertRefused(Self.npy(Self.header("'<c8'", shape: "(1,)"), payload: payload), "(complex numbers)")
        assertRefused(Self.npy(Self.header("'<U1'"), payload: payload), "(strings)")
        assertRefused(Self.npy(Self.header("'|O'", shape: "(1,)"), payload: payload), "(Python objects (pickled)")
        assertRefused(Self.npy(Self.header("'<f2'", shape: "(4,)"), payload: payload), "floating point of another width")
        assertRefused(Self.npy(Self.header("[('a', '<f4')]"), payload: payload), "structured array")
        assertRefused(Self.npy(Self.header(fortran: "True"), payload: payload), "Fortran (column-major) order")
        assertRefused(Self.npy(Self.header(fortran: "1"), payload: payload), "fortran_order is an integer")
        assertRefused(Self.npy(Self.header("'|b1'", shape: "(2,)"), payload: Data([1, 2])), "holds 2 at element 1 of a bool array")
    }

    func testRefusesMalformedHeaders() {
        let payload = Data(count: 8)
        let cases: [(String, String)] = [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "malformed header (it ends inside a dict"),
            ("{'descr': '<f4', 'fortran_order': False}", "without 'shape'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "the key 'extra'"),
            ("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "names 'descr' twice"),
            ("[('descr', '<f4')]", "header that is a list, not a dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} {}", "text after its dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "shape is a list, not a tuple"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "shape is an integer, not a tuple"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", "number that is not an integer"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': ('2',)}", "a string in its shape"),
            ("{'descr': '<' 'f4', 'fortran_order': False, 'shape': (2,)}", "two strings in a row"),
            ("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}", "backslash"),
            ("{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (2,)}", "the name __import__"),
            ("{'descr': {'descr': '<f4'}, 'fortran_order': False, 'shape': (2,)}", "descr is a dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}", "names 'shape' twice"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': " + String(repeating: "(", count: 50) + "2"
                    + String(repeating: ",)", count: 50) + "}", "nests deeper than 8 levels"
            ),
            ("{'descr': '<f4', 'fortran_order': False, 'shäpe': (2,)}", "byte 0xC3 at offset 44, which is not printable ASCII"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,),\0}", "byte 0x00"),
            ("", "malformed header (it ends where a value should be"),
        ]
        for (header, expected) in cases { assertRefused(Self.npy(header, payload: payload), expected) }
    }

    func testRefusesSizesThatDoNotMatchTheFile() {
        assertRefused(Self.npy(Self.header(shape: "(2, 3)"), payload: Data(count: 20)), "is truncated: shape (2, 3) of <f4 needs 24 bytes")
        assertRefused(Self.npy(Self.header(shape: "(2, 3)"), payload: Data(count: 28)), "has 4 bytes after its data")
        assertRefused(Self.npy(Self.header(shape: "(1099511627776,)")), "needs 4398046511104 bytes after the header, the file holds 0")
        assertRefused(Self.npy(Self.header(shape: "(4611686018427387904, 4)")), "whose element count overflows")
        assertRefused(Self.npy(Self.header(shape: "(2305843009213693952,)")), "whose size in bytes overflows")
        assertRefused(Self.npy(Self.header(shape: "(99999999999999999999999,)")), "too large for any file")
        assertRefused(Self.npy(Self.header(shape: "(-1, 4)")), "negative extent -1")
        assertRefused(Self.npy(Self.header(shape: "(" + String(repeating: "1,", count: 65) + ")")), "65 axes; at most 64")
        // The header's length runs past the file, or past what RNNKit reads.
        let short = Self.npy(Self.header(), pad: false)
        var longer = short
        longer[8] = 0xFF
        longer[9] = 0xFF
        assertRefused(longer, "header of 65535 bytes, which runs past the end of the file")
        var version2 = Self.npy(Self.header(), version: 2, pad: false)
        version2[10] = 0xFF
        assertRefused(version2, "header of 16711737 bytes, which runs past the end")
        let huge = Self.npy(Self.header() + String(repeating: " ", count: 70_000), version: 2, payload: Data(count: 8))
        assertRefused(huge, "more than the 65536 RNNKit reads")
        assertRefused(Data([0x93] + Array("NUMPY".utf8) + [4, 0, 0, 0]), "version 4.0; RNNKit reads versions 1.0, 2.0 and 3.0")
        assertRefused(Data([0x93] + Array("NUMPY".utf8) + [1]), "is cut short in its first 10 bytes")
        assertRefused(Data("hello".utf8), "is not a .npy file")
        assertRefused(Data(), "is empty")
        assertRefused(Data([0x50, 0x4B, 3, 4, 0, 0]), "is a zip archive (an .npz file?")
    }

    func testFilesAreNamedAndMissingOnesRefused() throws {
        let missing = root.appendingPathComponent("absent.npy")
        XCTAssertThrowsError(try NumPy.read(contentsOf: missing)) { error in
            XCTAssertEqual("\(error)", "\(missing.path): does not exist")
        }
        XCTAssertThrowsError(try NumPy.read(contentsOf: root)) { error in
            XCTAssertEqual("\(error)", "\(root.path): is not a regular file (a folder, a pipe or a device)")
        }
        XCTAssertThrowsError(try NumPy.read(Data("abc".utf8), file: nil)) { error in
            XCTAssertEqual("\(error)", "is not a .npy file (it does not start with \\x93NUMPY)")
        }
    }

    // MARK: .npz

    /// A zip of `members` (name, bytes, deflated or stored), as numpy.savez writes one; `declared`
    /// overrides a member's uncompressed size in both headers.
    static func zip(_ members: [(String, Data, Bool)], declared: [String: Int] = [:]) -> Data {
        func le<T: FixedWidthInteger>(_ value: T) -> Data { withUnsafeBytes(of: value.littleEndian) { Data($0) } }
        var body = Data(), directory = Data()
        for (name, data, deflated) in members {
            let crc = data.withUnsafeBytes { UInt32(crc32(0, $0.bindMemory(to: UInt8.self).baseAddress, uInt($0.count))) }
            let stored = deflated ? Self.deflate(data) : data
            let size = UInt32(declared[name] ?? data.count), method = UInt16(deflated ? 8 : 0)
            let fields = le(method) + le(UInt32(0)) + le(crc) + le(UInt32(stored.count)) + le(size) + le(UInt16(name.utf8.count))
            let offset = UInt32(body.count)
            body += le(UInt32(0x0403_4B50)) + le(UInt16(20)) + le(UInt16(0)) + fields + le(UInt16(0)) + Data(name.utf8) + stored
            directory += le(UInt32(0x0201_4B50)) + le(UInt16(20)) + le(UInt16(20)) + le(UInt16(0)) + fields
            directory += le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + le(offset) + Data(name.utf8)
        }
        let count = UInt16(members.count)
        return body + directory + le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(count) + le(count)
            + le(UInt32(directory.count)) + le(UInt32(body.count)) + le(UInt16(0))
    }

    static func deflate(_ data: Data) -> Data {
        var stream = z_stream()
        deflateInit2_(&stream, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        var output = Data(count: Int(deflateBound(&stream, uLong(data.count))))
        let produced: Int = data.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: UInt8.self).baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.bindMemory(to: UInt8.self).baseAddress
                stream.avail_out = uInt(out.count)
                CGzip.deflate(&stream, Z_FINISH)
                return Int(stream.total_out)
            }
        }
        return output.prefix(produced)
    }

    func archiveRefusal(_ data: Data, maximumBytes: Int = NumPy.largestArchiveContents) -> FileFormatError? {
        do {
            _ = try NumPy.readArchive(data, file: "x.npz", maximumBytes: maximumBytes)
        } catch let error as FileFormatError {
            return error
        } catch {
            XCTFail("refused with \(error)")
        }
        return nil
    }

    func testReadsArchivesOfStoredAndDeflatedMembers() throws {
        let x = NumPyArray(shape: [2, 2], floats: [1, 2, 3, 4]), y = NumPyArray(shape: [3], integers: [0, 1, 2])
        let data = Self.zip([("x.npy", NumPy.encode(x), false), ("y.npy", NumPy.encode(y), true)])
        let url = root.appendingPathComponent("xy.npz")
        try data.write(to: url)
        XCTAssertEqual(try NumPy.readArchive(contentsOf: url), ["x": x, "y": y])
        XCTAssertEqual(try NumPy.readArchive(Self.zip([]), file: "empty.npz"), [:])
    }

    func testRefusesDamagedAndCraftedArchives() throws {
        let x = NumPy.encode(NumPyArray(shape: [2], floats: [1, 2]))
        let notArray = archiveRefusal(Self.zip([("x.npy", x, false), ("notes.txt", Data("hi".utf8), false)]))
        XCTAssertEqual(notArray?.format, .npz)
        XCTAssertEqual(
            notArray?.description, "x.npz: holds member notes.txt, which is not an array (numpy.savez writes only NAME.npy members)")
        let twice = archiveRefusal(Self.zip([("x.npy", x, false), ("x.npy.npy", x, false), ("x.npy", x, true)]))
        XCTAssertTrue(twice?.reason.contains("holds two members named x.npy") ?? false, "\(String(describing: twice))")
        // A damaged array inside: a .npy refusal naming the archive and the member.
        let damaged = archiveRefusal(Self.zip([("x.npy", x.dropLast(), true)]))
        XCTAssertEqual(damaged?.format, .npy)
        XCTAssertEqual(damaged?.file, "x.npz: x.npy")
        XCTAssertTrue(damaged?.reason.hasPrefix("is truncated") ?? false, "\(String(describing: damaged))")
        XCTAssertEqual(archiveRefusal(x)?.reason, "is a .npy file, not an .npz archive (read it with NumPy.read)")
        XCTAssertEqual(archiveRefusal(Data("a,b".utf8))?.reason, "is not an .npz archive (a zip file starts with PK)")
        let truncated = archiveRefusal(Self.zip([("x.npy", x, true)]).dropLast(3))
        XCTAssertTrue(truncated?.reason.contains("end-of-central-directory") ?? false, "\(String(describing: truncated))")
        let many = archiveRefusal(Self.zip((0..<1_025).map { ("a\($0).npy", x, false) }))
        XCTAssertTrue(
            many?.reason.contains("has 1025 members; at most 1024 are read from an .npz file") ?? false, "\(String(describing: many))")
    }

    /// 16 MiB of zeros deflate to 16 KiB: refused by the caller's cap before anything is inflated,
    /// and when the member lies about its size, inflation stops at what it declares.
    func testRefusesDeflateBombs() throws {
        let zeros = NumPy.encode(NumPyArray(shape: [4 << 20], floats: Array(repeating: 0, count: 4 << 20)))
        let bomb = Self.zip([("a.npy", zeros, true)])
        XCTAssertLessThan(bomb.count, 40_000)
        let capped = archiveRefusal(bomb, maximumBytes: 1 << 20)
        XCTAssertEqual(capped?.format, .npz)
        XCTAssertTrue(
            capped?.reason.hasPrefix("unpacks to 16777344 bytes, more than the 1048576 RNNKit reads from an .npz file") ?? false,
            "\(String(describing: capped))")
        let lying = archiveRefusal(Self.zip([("a.npy", zeros, true)], declared: ["a.npy": 1_000]))
        XCTAssertTrue(
            lying?.reason.contains("member a.npy unpacks to more than the 1000 bytes it declares") ?? false, "\(String(describing: lying))")
        let impossible = archiveRefusal(Self.zip([("a.npy", x16, true)], declared: ["a.npy": 1 << 30]))
        XCTAssertTrue(impossible?.reason.contains("more than its") ?? false, "\(String(describing: impossible))")
    }

    private var x16: Data { NumPy.encode(NumPyArray(shape: [4], floats: [1, 2, 3, 4])) }

    // MARK: Files NumPy wrote

    func testReadsWhatNumPyWritesAndRefusesWhatRNNKitDoesNot() throws {
        let probe = try? PythonInteropTests.python(["-c", "import numpy"], backend: "jax")
        guard let probe, probe.status == 0 else {
            let reason = probe.map { $0.output.split(separator: "\n").last.map(String.init) ?? "" } ?? "python3 cannot be started"
            let message = "skipped: files written by NumPy were not read, python3 cannot import numpy here (\(reason))"
            print(message)
            throw XCTSkip(message)
        }
        let script = """
            import sys, numpy as np
            from numpy.lib import format as f
            d = sys.argv[1]
            a = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
            np.save(d + '/f4.npy', a)
            np.save(d + '/f8.npy', a.astype(np.float64)[:, 1:3])
            np.save(d + '/i4.npy', np.array([-3, 2**31 - 1], dtype=np.int32))
            np.save(d + '/i8.npy', np.array([[-(2**40)], [7]], dtype=np.int64))
            np.save(d + '/u1.npy', np.array([0, 200, 255], dtype=np.uint8))
            np.save(d + '/b1.npy', np.array([True, False, True]))
            np.save(d + '/scalar.npy', np.float64(2.5))
            np.save(d + '/empty.npy', np.zeros((0, 3), dtype=np.float32))
            for v in [(2, 0), (3, 0)]:
                with open(d + '/v%d.npy' % v[0], 'wb') as out:
                    f.write_array(out, a, version=v)
            np.savez(d + '/plain.npz', a, y=np.array([1, 2, 3]))
            np.savez_compressed(d + '/compressed.npz', x=a, z=np.zeros(100000, dtype=np.float32))
            np.save(d + '/big-endian.npy', a.astype('>f4'))
            np.save(d + '/fortran.npy', np.asfortranarray(a))
            np.save(d + '/complex.npy', np.array([1 + 2j]))
            np.save(d + '/strings.npy', np.array(['ab', 'c']))
            np.save(d + '/objects.npy', np.array([{'a': 1}, None], dtype=object), allow_pickle=True)
            np.save(d + '/rnnkit-check.npy', np.load(d + '/rnnkit.npy') * 2)
            """
        let quarters = (0..<12).map { Float($0) / 4 }
        try NumPy.write(NumPyArray(shape: [2, 3], doubles: [1, 2, 3, 4, 5, 6]), to: root.appendingPathComponent("rnnkit.npy"))
        let result = try PythonInteropTests.python(["-c", script, root.path], backend: "jax")
        XCTAssertEqual(result.status, 0, result.output)
        func read(_ name: String) throws -> NumPyArray { try NumPy.read(contentsOf: root.appendingPathComponent(name)) }
        XCTAssertEqual(try read("f4.npy"), NumPyArray(shape: [3, 4], floats: quarters))
        XCTAssertEqual(try read("f8.npy").floats(as: Float.self), [0.25, 0.5, 1.25, 1.5, 2.25, 2.5])
        XCTAssertEqual(try read("i4.npy").integers(), [-3, Int(Int32.max)])
        XCTAssertEqual(try read("i8.npy").shape, [2, 1])
        XCTAssertEqual(try read("i8.npy").integers(), [-(1 << 40), 7])
        XCTAssertEqual(try read("u1.npy").integers(), [0, 200, 255])
        XCTAssertEqual(try read("b1.npy").integers(), [1, 0, 1])
        XCTAssertEqual(try read("scalar.npy").shape, [])
        XCTAssertEqual(try read("scalar.npy").floats(as: Double.self), [2.5])
        XCTAssertEqual(try read("empty.npy").shape, [0, 3])
        XCTAssertEqual(try read("v2.npy"), NumPyArray(shape: [3, 4], floats: quarters))
        XCTAssertEqual(try read("v3.npy"), NumPyArray(shape: [3, 4], floats: quarters))
        XCTAssertEqual(try read("rnnkit-check.npy").floats(as: Double.self), [2, 4, 6, 8, 10, 12])
        let plain = try NumPy.readArchive(contentsOf: root.appendingPathComponent("plain.npz"))
        XCTAssertEqual(Set(plain.keys), ["arr_0", "y"])
        XCTAssertEqual(plain["arr_0"], NumPyArray(shape: [3, 4], floats: quarters))
        XCTAssertEqual(try plain["y"]?.integers(), [1, 2, 3])
        let compressed = try NumPy.readArchive(contentsOf: root.appendingPathComponent("compressed.npz"))
        XCTAssertEqual(compressed["x"], NumPyArray(shape: [3, 4], floats: quarters))
        XCTAssertEqual(compressed["z"]?.shape, [100_000])
        let refused = [
            ("big-endian.npy", "has dtype '>f4' (big-endian)"), ("fortran.npy", "is stored in Fortran (column-major) order"),
            ("complex.npy", "has dtype '<c16' (complex numbers)"), ("strings.npy", "has dtype '<U2' (strings)"),
            ("objects.npy", "has dtype '|O' (Python objects"),
        ]
        for (name, expected) in refused {
            let path = root.appendingPathComponent(name).path
            XCTAssertThrowsError(try read(name)) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(path): \(expected)"), "\(error)")
            }
        }
    }
}
