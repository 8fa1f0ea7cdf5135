import Foundation
import XCTest
@testable import RNNKit

/// Writes that a link planted in the output folder cannot redirect: the lock file and the
/// temporary files are opened without following links, and the lock file is never truncated.
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

    /// `.rnnkit.lock` a symbolic link to a file outside the folder: refused by name, the target untouched.
    func testALinkedLockFileIsRefusedAndItsTargetUntouched() throws {
        let lock = folder.appendingPathComponent(".rnnkit.lock")
        try FileManager.default.createSymbolicLink(atPath: lock.path, withDestinationPath: victim.path)
        XCTAssertThrowsError(try FolderLock(folder)) { error in
            let failure = error as? FileWriteError
            XCTAssertEqual(failure?.path, lock.path)
            XCTAssertTrue(failure?.reason.contains("is a symbolic link") ?? false, "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: victim), victimBytes)
        // A dangling link does not create its target either.
        let absent = root.appendingPathComponent("absent.txt")
        try FileManager.default.removeItem(at: lock)
        try FileManager.default.createSymbolicLink(atPath: lock.path, withDestinationPath: absent.path)
        XCTAssertThrowsError(try FolderLock(folder))
        XCTAssertFalse(FileManager.default.fileExists(atPath: absent.path))
    }

    /// `.rnnkit.lock` a hard link to a file elsewhere (two links): refused, the file untouched.
    func testAHardLinkedLockFileIsRefused() throws {
        let lock = folder.appendingPathComponent(".rnnkit.lock")
        XCTAssertEqual(link(victim.path, lock.path), 0, String(cString: strerror(errno)))
        XCTAssertThrowsError(try FolderLock(folder)) { error in
            XCTAssertTrue("\(error)".contains("has 2 hard links"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: victim), victimBytes)
        // A folder of that name is refused too.
        try FileManager.default.removeItem(at: lock)
        try FileManager.default.createDirectory(at: lock, withIntermediateDirectories: false)
        XCTAssertThrowsError(try FolderLock(folder))
    }

    /// An existing lock file keeps its length: the pid is written over its first bytes, padded,
    /// and what follows stays; a short one grows to the pid's width. The holder's pid is still read.
    func testTheLockFileIsNeverTruncated() throws {
        let lock = folder.appendingPathComponent(".rnnkit.lock")
        let old = Data(String(repeating: "x", count: 100).utf8)
        try old.write(to: lock)
        let pid = "\(ProcessInfo.processInfo.processIdentifier)"
        do {
            let held = try FolderLock(folder)
            let content = try Data(contentsOf: lock)
            XCTAssertEqual(content.count, 100, "not truncated")
            XCTAssertEqual(String(decoding: content.prefix(FolderLock.pidWidth), as: UTF8.self),
                           pid + String(repeating: " ", count: FolderLock.pidWidth - 1 - pid.count) + "\n")
            XCTAssertEqual(content.dropFirst(FolderLock.pidWidth), old.dropFirst(FolderLock.pidWidth))
            // A second lock on the same folder names the holder.
            XCTAssertThrowsError(try FolderLock(folder)) { error in
                XCTAssertTrue("\(error)".contains("another run (process \(pid)) is writing there"), "\(error)")
            }
            withExtendedLifetime(held) {}
        }
        try Data("12".utf8).write(to: lock)
        let again = try FolderLock(folder)
        let content = try Data(contentsOf: lock)
        XCTAssertEqual(content.count, FolderLock.pidWidth)
        XCTAssertEqual(String(decoding: content, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), pid)
        withExtendedLifetime(again) {}
    }

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
