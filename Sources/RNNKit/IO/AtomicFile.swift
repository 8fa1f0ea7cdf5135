import Foundation

/// A file could not be written; names the path and the system's reason.
///
/// Separate from `FileFormatError` on purpose: that one says a file's *contents* are wrong (the
/// caller fixes or replaces the file), this one that the system refused a write or a folder (a
/// full disk, a read-only mount, no permission, a file where a folder should be): the caller
/// fixes the file system, and there is no format to name.
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
    /// The file or folder that could not be written.
    public let path: String
    /// Why: the system's reason (`No space left on device`) or a sentence that follows the path.
    public let reason: String
    /// `cannot write PATH: REASON`.
    public var description: String { "cannot write \(path): \(reason)" }

    /// `path` and why it cannot be written (the system's reason, or a sentence that follows the path).
    public init(path: String, reason: String) {
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
    // Created anew (never a file or link already there, which could point elsewhere), then removed.
    let descriptor = createExclusively(probe.path)
    guard descriptor >= 0 else {
        throw FileWriteError(path: folder.path, reason: String(cString: strerror(errno == 0 ? EACCES : errno)))
    }
    close(descriptor)
    unlink(probe.path)
}

/// Opens a new file at `path` for writing (mode 0644), never following a link there nor
/// reusing a file: `O_CREAT | O_EXCL | O_NOFOLLOW`. A name already taken (a stale file of an
/// interrupted write, or a link planted with that name) is unlinked (a link itself, never its
/// target) and the creation tried once more. Returns the descriptor, or -1 with `errno` set.
func createExclusively(_ path: String) -> Int32 {
    let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
    let descriptor = open(path, flags, 0o644)
    guard descriptor < 0, errno == EEXIST else { return descriptor }
    guard unlink(path) == 0 || errno == ENOENT else {
        errno = EEXIST
        return -1
    }
    return open(path, flags, 0o644)
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
    // Only a temporary this call created is removed on failure.
    var created = false
    do {
        let descriptor = createExclusively(temporary.path)
        guard descriptor >= 0 else {
            let code = errno
            if code == EEXIST {
                throw FileWriteError(path: url.path, reason: "its temporary file \(temporary.path) is already there and cannot be removed")
            }
            throw FileWriteError(path: url.path, reason: String(cString: strerror(code)))
        }
        created = true
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
    } catch let error as FileWriteError {
        throw error
    } catch {
        if created { unlink(temporary.path) }
        throw FileWriteError(path: url.path, error: error)
    }
}

/// The current `errno` as an error `FileWriteError` can describe.
private func posixError() -> NSError {
    NSError(
        domain: NSCocoaErrorDomain, code: NSFileWriteUnknownError,
        userInfo: [
            NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(errno))
        ])
}

/// Removes `.<name>.<pid>.tmp` files beside `url` whose process no longer runs.
func removeStaleTemporaries(of url: URL) {
    let folder = url.deletingLastPathComponent(), prefix = ".\(url.lastPathComponent).", suffix = ".tmp"
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
    for name in names where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
        guard let pid = Int32(name.dropFirst(prefix.count).dropLast(suffix.count)), pid > 0,
            kill(pid, 0) != 0, errno == ESRCH
        else { continue }
        // unlink, not removeItem: a folder or a link of that name is never emptied or followed.
        unlink(folder.appendingPathComponent(name).path)
    }
}
