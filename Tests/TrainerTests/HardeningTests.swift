import ArgumentParser
import Foundation
import XCTest
@testable import RNNKit
@testable import TrainerSupport

/// Hostile inputs to the trainer: links planted where it writes, flags at the edge of their
/// arithmetic, crafted checkpoints. Each is refused with one clear line, never a trap.
final class TrainerHardeningTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-hardening-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    // MARK: Writes

    /// A `.rnnkit.lock` in --output linked to a file elsewhere: the run is refused before it
    /// reads anything, naming the lock file, and the file keeps its bytes.
    func testALinkedLockFileInTheOutputFolderIsRefused() throws {
        let output = root.appendingPathComponent("out"), victim = root.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(atPath: output.appendingPathComponent(".rnnkit.lock").path, withDestinationPath: victim.path)
        XCTAssertThrowsError(try TrainBlas.parse(["--data", "/nonexistent", "--output", output.path]).run()) { error in
            XCTAssertTrue(error is TrainerFailure, "\(error)")
            XCTAssertEqual("\(error)", "--output \(output.path): cannot write \(output.path)/.rnnkit.lock: is a symbolic link; "
                           + "a lock file must be a regular file (remove the link if no run is writing there)")
        }
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "keep me")
    }

    // MARK: runs/latest

    /// `runs/latest` replaced by a rename over it: an old link to a folder elsewhere is not
    /// written into (that folder keeps its contents), a stale temporary is replaced, and a real
    /// folder of that name stays.
    func testTheLatestLinkIsReplacedWithoutFollowingIt() throws {
        let runs = root.appendingPathComponent("runs"), elsewhere = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: runs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let latest = runs.appendingPathComponent("latest").path
        try FileManager.default.createSymbolicLink(atPath: latest, withDestinationPath: elsewhere.path)
        let temporary = runs.appendingPathComponent(".latest.\(ProcessInfo.processInfo.processIdentifier).tmp").path
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: elsewhere.path)
        Trainer.link(latest: latest, to: "20260101-000000-simple_rnn-10")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: latest), "20260101-000000-simple_rnn-10")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs.path), ["latest"], "no temporary left")

        try FileManager.default.removeItem(atPath: latest)
        try FileManager.default.createDirectory(atPath: latest, withIntermediateDirectories: false)
        Trainer.link(latest: latest, to: "20260101-000001-simple_rnn-10")
        var status = stat()
        XCTAssertEqual(lstat(latest, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFDIR, "a real folder stays")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs.path), ["latest"])
    }
}
