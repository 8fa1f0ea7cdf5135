import Foundation

/// A file could not be written; names the path and the system's reason.
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public var description: String { "cannot write \(path): \(reason)" }

    init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    init(path: String, error: any Error) {
        self.path = path
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let underlying, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else {
            reason = (underlying ?? error as NSError).localizedDescription
        }
    }
}

/// Creates `folder` (and its parents) if needed; throws `FileWriteError` naming the folder and
/// the system's reason (e.g. "Not a directory" when a parent is a file) otherwise.
public func createFolder(_ folder: URL) throws {
    var path = folder.path.hasPrefix("/") ? "" : "."
    for component in folder.path.split(separator: "/") {
        path += "/" + component
        if mkdir(path, 0o755) == 0 { continue }
        let code = errno
        var status = stat()
        if code == EEXIST, stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR { continue }
        let reason = code == EEXIST ? "\(path) exists and is not a folder" : String(cString: strerror(code))
        throw FileWriteError(path: folder.path, reason: reason)
    }
}

/// Checks that files can be created in `folder` (creating the folder if needed) by creating and
/// removing a probe file: permissions alone do not tell (a read-only mount, a full disk, root
/// squash), and a long run should not find out only when it writes its results.
public func checkWritable(folder: URL) throws {
    try createFolder(folder)
    let probe = folder.appendingPathComponent(".rnnkit-probe-\(ProcessInfo.processInfo.processIdentifier)")
    guard FileManager.default.createFile(atPath: probe.path, contents: Data()) else {
        throw FileWriteError(path: folder.path, reason: String(cString: strerror(errno == 0 ? EACCES : errno)))
    }
    try? FileManager.default.removeItem(at: probe)
}

/// Writes `data` to `url` through a temporary file in the same folder, flushed to disk, then a
/// rename and a flush of the folder: an interrupted write never leaves a half-written file where
/// a good one was, and once this returns the file survives a crash. Temporary files that earlier,
/// interrupted writes of the same file left (`.<name>.<pid>.tmp` of a process no longer running)
/// are removed.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let folder = url.deletingLastPathComponent()
    try createFolder(folder)
    removeStaleTemporaries(of: url)
    let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
    do {
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw posixError() }
        var failure: (any Error)?
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = posixError()
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = posixError() }
        close(descriptor)
        if let failure { throw failure }
        guard rename(temporary.path, url.path) == 0 else { throw posixError() }
        // The rename is durable only once the folder's entry is on disk.
        let folderDescriptor = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folderDescriptor >= 0 {
            fsync(folderDescriptor)
            close(folderDescriptor)
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw FileWriteError(path: url.path, error: error)
    }
}

/// The current `errno` as an error `FileWriteError` can describe.
private func posixError() -> NSError {
    NSError(domain: NSCocoaErrorDomain, code: NSFileWriteUnknownError, userInfo: [
        NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(errno))])
}

/// Removes `.<name>.<pid>.tmp` files beside `url` whose process no longer runs.
func removeStaleTemporaries(of url: URL) {
    let folder = url.deletingLastPathComponent(), prefix = ".\(url.lastPathComponent).", suffix = ".tmp"
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
    for name in names where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
        guard let pid = Int32(name.dropFirst(prefix.count).dropLast(suffix.count)), pid > 0,
              kill(pid, 0) != 0, errno == ESRCH else { continue }
        try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
    }
}

/// An advisory lock on a folder (`flock` on `<folder>/.rnnkit.lock`), held while the value lives:
/// two runs that write the same outputs would otherwise leave a mix of both.
public final class FolderLock {
    private let descriptor: Int32
    public let folder: URL

    /// Takes the lock without waiting.
    /// - Throws: `FileWriteError` saying another process holds it (with its pid when known), or
    ///   why the lock file could not be opened.
    public init(_ folder: URL) throws {
        try createFolder(folder)
        let path = folder.appendingPathComponent(".rnnkit.lock").path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileWriteError(path: path, reason: String(cString: strerror(errno))) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            throw FileWriteError(path: folder.path, reason: "another run\(holder.isEmpty ? "" : " (process \(holder))") is writing there; wait for it or choose another folder")
        }
        self.folder = folder
        let pid = "\(ProcessInfo.processInfo.processIdentifier)\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { write(descriptor, $0, strlen($0)) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
