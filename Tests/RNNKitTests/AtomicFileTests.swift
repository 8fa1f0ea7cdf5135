import Foundation
import XCTest
@testable import RNNKit

/// Writes that a link planted in the output folder cannot redirect: the temporary files are
/// opened without following links (the trainer's lock file: Tests/TrainerTests/FolderLockTests.swift).
final class AtomicFileTests: XCTestCase {
    var root: URL!
    /// The folder written into.
    var folder: URL { root.appendingPathComponent("out") }
    /// A file outside the folder that a planted link points at.
    var victim: URL { root.appendingPathComponent("victim.txt") }
    let victimBytes = Data("precious: must not change\n".utf8)

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-atomic-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try victimBytes.write(to: victim)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// A link planted at writeAtomically's temporary name: the link is replaced, not followed;
    /// the target keeps its bytes and the real file is written.
    func testALinkAtTheTemporaryNameIsNotFollowed() throws {
        let destination = folder.appendingPathComponent("weights.safetensors")
        let temporary = folder.appendingPathComponent(".weights.safetensors.\(ProcessInfo.processInfo.processIdentifier).tmp")
        try FileManager.default.createSymbolicLink(atPath: temporary.path, withDestinationPath: victim.path)
        try writeAtomically(Data("the real weights".utf8), to: destination)
        XCTAssertEqual(try Data(contentsOf: victim), victimBytes)
        XCTAssertEqual(try String(contentsOf: destination, encoding: .utf8), "the real weights")
        var status = stat()
        XCTAssertEqual(lstat(destination.path, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFREG, "a regular file, not the planted link")
        XCTAssertEqual(status.st_mode & 0o777, 0o644)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary.path))

        // A stale temporary file of ours is replaced too; a folder at that name is refused clearly.
        try Data("stale".utf8).write(to: temporary)
        try writeAtomically(Data("again".utf8), to: destination)
        XCTAssertEqual(try String(contentsOf: destination, encoding: .utf8), "again")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: false)
        try Data("inside".utf8).write(to: temporary.appendingPathComponent("kept"))
        XCTAssertThrowsError(try writeAtomically(Data("third".utf8), to: destination)) { error in
            XCTAssertEqual((error as? FileWriteError)?.path, destination.path)
            XCTAssertTrue("\(error)".contains("its temporary file \(temporary.path) is already there"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: destination, encoding: .utf8), "again")
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary.appendingPathComponent("kept").path), "never emptied")
    }

    /// checkWritable's probe: a link planted at its name is not followed, and nothing is left behind.
    func testTheWritableProbeDoesNotFollowALink() throws {
        let probe = folder.appendingPathComponent(".rnnkit-probe-\(ProcessInfo.processInfo.processIdentifier)")
        let absent = root.appendingPathComponent("absent.txt")
        try FileManager.default.createSymbolicLink(atPath: probe.path, withDestinationPath: absent.path)
        try checkWritable(folder: folder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: absent.path), "the link's target was not created")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }
}
