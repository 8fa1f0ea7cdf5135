import Foundation
import XCTest

/// An example's release binary (`make test` builds them: `swift build -c release --product NAME`),
/// run as a user runs it, for the examples' tests.
struct ExampleBinary {
    /// Thrown after the failure that names what is missing, to end the test there.
    struct Missing: Error {}

    /// The package's root folder.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    let name: String

    /// What the binary printed on each stream, its exit status, and whether it exited (rather than
    /// being ended by a signal). Fails the test, naming the build command, when it is not built.
    func run(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> (
        output: String, errors: String, status: Int32, exited: Bool
    ) {
        let binary = Self.root.appendingPathComponent(".build/release/\(name)")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("\(binary.path) is missing: `make test` builds it (swift build -c release --product \(name))", file: file, line: line)
            throw Missing()
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read both pipes at once: a child that fills one while the other is read would wait forever.
        nonisolated(unsafe) var errorData = Data()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errorData = errors.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        done.wait()
        process.waitUntilExit()
        return (out, String(decoding: errorData, as: UTF8.self), process.terminationStatus, process.terminationReason == .exit)
    }

    /// A file of the shared data sets beside the package (`../shared/…`), or a failure naming it.
    static func sharedFile(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let url = root.deletingLastPathComponent().appendingPathComponent("shared/\(path)")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("\(url.path) is missing: the examples' data (../shared/\(path)) must be beside the package", file: file, line: line)
            throw Missing()
        }
        return url
    }
}
