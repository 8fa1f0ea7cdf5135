import XCTest
@testable import RNNKit

/// Images held as bytes in their own (huge-page) memory: copies in and out, the gather into a
/// time-major scaled batch, and the edges (no images, a prefix).
final class ImageDatasetTests: XCTestCase {
    /// Three 2×3 images whose bytes say where they are: image i, row r, column c = 100i + 10r + c.
    func makeData() throws -> ImageDataset {
        var pixels: [UInt8] = []
        for image in 0..<3 {
            for row in 0..<2 {
                for column in 0..<3 { pixels.append(UInt8(100 * image + 10 * row + column)) }
            }
        }
        return try ImageDataset(pixels: pixels, labels: [7, 8, 9], rows: 2, columns: 3)
    }

    func testBytesRoundTripAndImagesComeOutWhole() throws {
        let data = try makeData()
        XCTAssertEqual(data.pixels.count, 18)
        XCTAssertEqual(data.image(at: 1), [100, 101, 102, 110, 111, 112])
        XCTAssertEqual(data.prefix(2).pixels, Array(data.pixels[0..<12]))
        XCTAssertEqual(data.prefix(2).count, 2)
    }

    func testGatherIsTimeMajorAndScaled() throws {
        let data = try makeData()
        let x = Buffer<Float>(count: 2 * 2 * 3)
        var labels = [Int32](repeating: 0, count: 2)
        [2, 0].withUnsafeBufferPointer { indices in data.gather(indices, into: x.pointer, labels: &labels) }
        XCTAssertEqual(labels, [9, 7])
        // [T = 2, B = 2, D = 3]: step 0 holds image 2's row 0, then image 0's row 0.
        let expected: [UInt8] = [200, 201, 202, 0, 1, 2, 210, 211, 212, 10, 11, 12]
        XCTAssertEqual(x.array, expected.map { Float($0) * (1 / Float(255)) }) // as the engine scales: times 1/255
        let doubles = Buffer<Double>(count: 12)
        [2, 0].withUnsafeBufferPointer { indices in data.gather(indices, into: doubles.pointer, labels: &labels) }
        for (a, b) in zip(doubles.array, expected) { XCTAssertEqual(a, Double(b) / 255, accuracy: 1e-12) }
    }

    func testNoImages() throws {
        let empty = try ImageDataset(pixels: [], labels: [], rows: 2, columns: 3)
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.pixels, [])
        XCTAssertEqual(try makeData().prefix(0).count, 0)
    }
}
