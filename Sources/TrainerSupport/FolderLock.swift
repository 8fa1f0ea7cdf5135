import Foundation
import RNNKit

/// An advisory lock on a folder (`flock` on `<folder>/.rnnkit.lock`), held while the value lives:
/// two runs that write the same outputs would otherwise leave a mix of both.
///
/// The lock file is opened without following a link (`O_NOFOLLOW`) and must be a regular file
/// of one link, so a link planted there cannot point the write elsewhere; it is never truncated:
/// the pid is written over its first `pidWidth` bytes, padded with spaces.
package final class FolderLock {
    private let descriptor: Int32
    package let folder: URL

    /// The bytes the holder's pid takes at the start of the lock file: 19 characters (the digits
    /// of any pid, padded with spaces) and a newline.
    package static let pidWidth = 20

    /// Takes the lock without waiting.
    /// - Throws: `FileWriteError` saying another process holds it (with its pid when known), that
    ///   the lock file is a link or not a regular file of its own, or why it could not be opened.
    package init(_ folder: URL) throws {
        try createFolder(folder)
        let path = folder.appendingPathComponent(".rnnkit.lock").path
        descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let code = errno
            throw FileWriteError(
                path: path,
                reason: code == ELOOP
                    ? "is a symbolic link; a lock file must be a regular file (remove the link if no run is writing there)"
                    : String(cString: strerror(code)))
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_nlink == 1 else {
            let reason =
                (status.st_mode & S_IFMT) != S_IFREG
                ? "is not a regular file"
                : "has \(status.st_nlink) hard links; a lock file must be a regular file of its own"
            close(descriptor)
            throw FileWriteError(path: path, reason: reason + " (remove it if no run is writing there)")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.holder(descriptor)
            close(descriptor)
            throw FileWriteError(
                path: folder.path,
                reason: "another run\(holder.map { " (process \($0))" } ?? "") is writing there; wait for it or choose another folder")
        }
        self.folder = folder
        let pid = String(ProcessInfo.processInfo.processIdentifier)
        let line = pid.padding(toLength: Self.pidWidth - 1, withPad: " ", startingAt: 0) + "\n"
        _ = line.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    /// The pid at the start of the lock file, when it holds one.
    private static func holder(_ descriptor: Int32) -> String? {
        var bytes = [UInt8](repeating: 0, count: pidWidth)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return nil }
        let first =
            String(decoding: bytes.prefix(count), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        let pid = first.trimmingCharacters(in: .whitespaces)
        return !pid.isEmpty && pid.allSatisfy(\.isASCII) && Int32(pid) != nil ? pid : nil
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
