import Foundation
import XCTest
import RNNKit
@testable import TrainerSupport

/// The trainer's lock on its output folder, which a link planted there cannot redirect: the lock
/// file is opened without following links, must be a regular file of its own, and is never truncated.
final class FolderLockTests: XCTestCase {
    var root: URL!
    /// The folder written into.
    var folder: URL { root.appendingPathComponent("out") }
    /// A file outside the folder that a planted link points at.
    var victim: URL { root.appendingPathComponent("victim.txt") }
    let victimBytes = Data("precious: must not change\n".utf8)

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-lock-\(UUID())")
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
            XCTAssertEqual(
                String(decoding: content.prefix(FolderLock.pidWidth), as: UTF8.self),
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
}
