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

/// Writes `data` to `url` through a temporary file in the same folder and a rename, so an
/// interrupted write never leaves a half-written file where a good one was.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let folder = url.deletingLastPathComponent()
    try createFolder(folder)
    let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
    do {
        try data.write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            throw NSError(domain: NSCocoaErrorDomain, code: NSFileWriteUnknownError, userInfo: [
                NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(errno))])
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw FileWriteError(path: url.path, error: error)
    }
}
