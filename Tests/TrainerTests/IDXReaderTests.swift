import Foundation
import XCTest
@testable import RNNKit

/// The IDX reader on good files and on every kind of damage, all made here.
final class IDXReaderTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-idx-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    static func header(_ values: [UInt32]) -> Data {
        Data(values.flatMap { v in (0..<4).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } })
    }

    static func images(count: Int, rows: Int, columns: Int) -> Data {
        header([2051, UInt32(count), UInt32(rows), UInt32(columns)]) + Data((0..<(count * rows * columns)).map { UInt8($0 % 256) })
    }

    static func labels(_ values: [UInt8]) -> Data { header([2049, UInt32(values.count)]) + Data(values) }

    /// gzip through the system's gzip, so the reader is tested on real gzip streams.
    func gzip(_ data: Data) throws -> Data {
        let raw = folder.appendingPathComponent("raw-\(UUID())")
        try data.write(to: raw)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-n", raw.path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return try Data(contentsOf: raw.appendingPathExtension("gz"))
    }

    func assertFails(_ body: @autoclosure () throws -> Any, saying expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(expected), "«\(message)» should say «\(expected)»", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        }
    }

    func testReadsRawAndGzippedFiles() throws {
        let raw = try write(Self.images(count: 3, rows: 4, columns: 5), "i")
        let zipped = try write(gzip(Self.images(count: 3, rows: 4, columns: 5)), "i.gz")
        for url in [raw, zipped] {
            let (pixels, count, rows, columns) = try IDX.readImages(url)
            XCTAssertEqual([count, rows, columns], [3, 4, 5])
            XCTAssertEqual(pixels, (0..<60).map { UInt8($0) })
        }
        XCTAssertEqual(try IDX.readLabels(write(gzip(Self.labels([5, 0, 9])), "l.gz")), [5, 0, 9])
    }

    func testDamagedFiles() throws {
        let good = Self.images(count: 3, rows: 4, columns: 5)
        assertFails(try IDX.readImages(self.write(Self.labels([1, 2]), "a")), saying: "magic number 2049, expected 2051")
        assertFails(try IDX.readLabels(self.write(good, "b")), saying: "magic number 2051, expected 2049")
        assertFails(
            try IDX.readImages(self.write(good.dropLast(7), "c")), saying: "holds 69 bytes, but its header (3 images of 4×5) needs 76")
        assertFails(try IDX.readImages(self.write(good + Data([1]), "d")), saying: "needs 76")
        assertFails(try IDX.readImages(self.write(Data([0, 0, 8]), "e")), saying: "too short")
        assertFails(try IDX.readImages(self.write(Self.header([2051, 0, 28, 28]), "f")), saying: "all must be positive")
        assertFails(try IDX.readLabels(self.write(Self.labels([3, 10, 2]), "g")), saying: "label 1 is 10, expected 0–9")
        assertFails(try IDX.readLabels(self.write(Self.labels([3, 1]).dropLast(), "h")), saying: "needs 10")
        let zipped = try gzip(good)
        assertFails(try IDX.readImages(self.write(zipped.prefix(zipped.count - 10), "t.gz")), saying: "truncated")
        var corrupt = zipped
        corrupt[corrupt.count - 6] ^= 0xFF // inside the CRC-32
        assertFails(try IDX.readImages(self.write(corrupt, "crc.gz")), saying: "corrupt")
        assertFails(try IDX.readImages(self.write(zipped + Data([1, 2, 3]), "trail.gz")), saying: "trailing data")
        assertFails(try IDX.readImages(self.write(good, "notgzip.gz")), saying: "not gzip data")
        assertFails(try IDX.readImages(folder.appendingPathComponent("absent")), saying: "absent: does not exist")
    }

    func testMNISTFolderChecksNamesAndCounts() throws {
        try write(Self.images(count: 3, rows: 4, columns: 5), "train-images.idx3-ubyte") // the dotted mirror spelling
        try write(gzip(Self.labels([1, 2, 3])), "train-labels-idx1-ubyte.gz")
        try write(Self.images(count: 2, rows: 4, columns: 5), "t10k-images-idx3-ubyte")
        try write(Self.labels([4, 5]), "t10k-labels-idx1-ubyte")
        let mnist = try MNIST(folder: folder)
        XCTAssertEqual(mnist.train.count, 3)
        XCTAssertEqual(mnist.test.count, 2)
        XCTAssertEqual(mnist.train.sampleShape, .sequence(steps: 4, features: 5))

        try write(Self.labels([4, 5, 6]), "t10k-labels-idx1-ubyte")
        assertFails(try MNIST(folder: self.folder), saying: "has 3 labels but t10k-images-idx3-ubyte has 2 images")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("t10k-images-idx3-ubyte"))
        assertFails(
            try MNIST(folder: self.folder),
            saying: "t10k-images-idx3-ubyte: not found (looked for t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz")
    }

    @discardableResult
    func write(_ data: Data, _ name: String) throws -> URL {
        let url = folder.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    /// Crafted headers whose sizes overflow are refused, naming the file, not trapped on; and a
    /// small gzip that inflates far past what its header announces is stopped early.
    func testCraftedSizesAndMemoryBombs() throws {
        // 16 bytes: images magic, count ffffffff, rows ffffffff, columns 1 (the reported crash).
        let overflow = Self.header([2051, 0xFFFF_FFFF, 0xFFFF_FFFF, 1])
        assertFails(try IDX.parseImages(overflow, file: "crafted"), saying: "a size that overflows")
        assertFails(try IDX.parseImages(Self.header([2051, 0xFFFF_FFFF, 28, 28]), file: "crafted"), saying: "holds 16 bytes")
        let huge = Self.header([2051, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF])
        assertFails(try IDX.parseImages(huge, file: "crafted"), saying: "overflows")
        assertFails(try IDX.parseImages(gzip(huge), file: "crafted.gz"), saying: "overflows")
        // A header announcing one 28×28 image followed by 64 MiB of zeros: gzip makes that about
        // 64 KiB, and the reader must stop within the first MiB of output.
        let bomb = try gzip(Self.header([2051, 1, 28, 28]) + Data(count: 64 << 20))
        XCTAssertLessThan(bomb.count, 1 << 20)
        let started = Date()
        assertFails(try IDX.parseImages(bomb, file: "bomb.gz"), saying: "inflates to more than the 800 bytes")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "the bomb is refused without inflating it all")
        // A header announcing more than the compressed bytes could ever inflate to.
        let liar = try gzip(Self.header([2051, 60_000_000, 28, 28]))
        assertFails(try IDX.parseImages(liar, file: "liar.gz"), saying: "more than its")
        assertFails(
            try IDX.parseLabels(gzip(Self.header([2049, 5]) + Data(count: 4 << 20)), file: "l.gz"),
            saying: "inflates to more than the 13 bytes")
    }
}
